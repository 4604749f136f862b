// PEM bundle parsing into an X509_STORE.
#include "authn/certificate_pool.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace aaproxy {
namespace {

std::string lastOpenSslError() {
  unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) {
    return "unknown error";
  }
  char buf[256];
  ERR_error_string_n(code, buf, sizeof(buf));
  return buf;
}

struct OpenSslFree {
  void operator()(void* p) const { OPENSSL_free(p); }
};

}  // namespace

absl::StatusOr<std::shared_ptr<const CertificatePool>> CertificatePool::fromPem(
    std::string_view pem) {
  ERR_clear_error();
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (bio == nullptr) {
    return absl::InternalError("cannot allocate a BIO");
  }
  std::shared_ptr<CertificatePool> pool(new CertificatePool());
  int block = 0;
  for (;;) {
    char* name = nullptr;
    char* header = nullptr;
    unsigned char* data = nullptr;
    long len = 0;
    if (PEM_read_bio(bio.get(), &name, &header, &data, &len) != 1) {
      // End of input (PEM_R_NO_START_LINE) is the normal way out of the loop.
      ERR_clear_error();
      break;
    }
    std::unique_ptr<char, OpenSslFree> nameOwner(name);
    std::unique_ptr<char, OpenSslFree> headerOwner(header);
    std::unique_ptr<unsigned char, OpenSslFree> dataOwner(data);
    ++block;
    // Go's ParseCertsPEM only takes CERTIFICATE blocks without PEM headers.
    if (std::strcmp(name, "CERTIFICATE") != 0 || std::strlen(header) != 0) {
      continue;
    }
    const unsigned char* p = data;
    X509Ptr cert(d2i_X509(nullptr, &p, len));
    if (cert == nullptr || p != data + len) {
      return absl::InvalidArgumentError(
          absl::StrCat("PEM block #", block, " is not a valid certificate: ", lastOpenSslError()));
    }
    // OpenSSL parses a certificate's extensions into cached fields on first use (issuer and
    // purpose checks during X509_verify_cert), and OpenSSL 3.0 lets two threads making that
    // first use both write them. A pool is shared by every worker: fill the cache now, while
    // this thread is the only one to hold the certificate. The result (whether the extensions
    // are valid) is for verification to judge, as before.
    X509_check_purpose(cert.get(), -1, 0);
    ERR_clear_error();
    pool->certificates_.push_back(std::move(cert));
  }
  if (pool->certificates_.empty()) {
    return absl::InvalidArgumentError(
        block == 0 ? "PEM bundle contains no PEM data (no certificates found)"
                   : "PEM bundle contains no CERTIFICATE block (no certificates found)");
  }
  pool->store_.reset(X509_STORE_new());
  if (pool->store_ == nullptr) {
    return absl::InternalError("cannot allocate an X509_STORE");
  }
  for (const X509Ptr& cert : pool->certificates_) {
    // Duplicates in a bundle are fine (HA clusters concatenate bundles).
    if (X509_STORE_add_cert(pool->store_.get(), cert.get()) != 1) {
      ERR_clear_error();
    }
  }
  return std::shared_ptr<const CertificatePool>(std::move(pool));
}

}  // namespace aaproxy
