// A parsed PEM CA bundle (Go's x509.CertPool built by client-go's cert.ParseCertsPEM).
#pragma once

#include <atomic>

#include <memory>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "authn/openssl_handles.h"

namespace aaproxy {

class CertificatePool {
 public:
  // Parses every CERTIFICATE block of a PEM bundle; other block types are skipped, as Go does.
  // Errors: no certificate at all (empty input, garbage, only keys), or a CERTIFICATE block
  // whose contents are not a valid certificate.
  static absl::StatusOr<std::shared_ptr<const CertificatePool>> fromPem(std::string_view pem);

  const std::vector<X509Ptr>& certificates() const { return certificates_; }
  size_t size() const { return certificates_.size(); }

  // Every certificate of the pool is a trust anchor (X509_V_FLAG_PARTIAL_CHAIN is used when
  // verifying), matching Go, where any certificate in VerifyOptions.Roots terminates a chain.
  // X509_STORE is internally locked, so one pool verifies concurrently from many threads.
  X509_STORE* store() const { return store_.get(); }

  // Unique per pool for the life of the process (addresses can be reused; ids are not).
  uint64_t id() const { return id_; }

 private:
  CertificatePool() = default;

  std::vector<X509Ptr> certificates_;
  X509StorePtr store_;
  uint64_t id_ = nextId();

  static uint64_t nextId() {
    static std::atomic<uint64_t> next{1};
    return next.fetch_add(1, std::memory_order_relaxed);
  }
};

}  // namespace aaproxy
