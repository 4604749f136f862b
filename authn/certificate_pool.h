// A parsed PEM CA bundle (Go's x509.CertPool built by client-go's cert.ParseCertsPEM).
#pragma once

#include <atomic>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "common/mutex.h"
#include "absl/time/time.h"
#include "authn/openssl_handles.h"

namespace aaproxy {

// Client chains that verified against one pool, keyed by the digests of their certificates, each
// with the time it verified and how long the success may be reused. Shared by every connection
// and thread (see verifyClientCertificate): a client that reconnects, or resumes its TLS
// session, is not verified again. Only successes are kept, at most kMaxEntries.
class VerifiedChainCache {
 public:
  static constexpr size_t kMaxEntries = 4096;

  // Until when the chain's success holds, if it verified at or before `now` and still holds.
  std::optional<absl::Time> validUntil(const std::string& key, absl::Time now) const {
    MutexLock lock(&mu_);
    auto it = entries_.find(key);
    if (it == entries_.end() || now < it->second.verified_at || now >= it->second.valid_until) {
      return std::nullopt;
    }
    return it->second.valid_until;
  }

  void insert(std::string key, absl::Time verified_at, absl::Time valid_until) {
    MutexLock lock(&mu_);
    if (entries_.size() >= kMaxEntries) {
      absl::erase_if(entries_, [verified_at](const auto& e) {
        return e.second.valid_until <= verified_at;
      });
      if (entries_.size() >= kMaxEntries) {
        entries_.clear();  // all still valid: verifying them again is the only cost
      }
    }
    entries_.insert_or_assign(std::move(key), Entry{verified_at, valid_until});
  }

  size_t size() const {
    MutexLock lock(&mu_);
    return entries_.size();
  }

 private:
  struct Entry {
    absl::Time verified_at;
    absl::Time valid_until;
  };
  mutable Mutex mu_;
  absl::flat_hash_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
};

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

  // Chains verified against this pool; a new pool (a CA rotation) starts empty.
  VerifiedChainCache& verifiedChains() const { return *verified_chains_; }

 private:
  CertificatePool() = default;

  std::vector<X509Ptr> certificates_;
  X509StorePtr store_;
  uint64_t id_ = nextId();
  std::unique_ptr<VerifiedChainCache> verified_chains_ = std::make_unique<VerifiedChainCache>();

  static uint64_t nextId() {
    static std::atomic<uint64_t> next{1};
    return next.fetch_add(1, std::memory_order_relaxed);
  }
};

}  // namespace aaproxy
