// Test-only: generates keys and certificates in memory, so no private key is ever committed.
#pragma once

#include <openssl/evp.h>
#include <openssl/obj_mac.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "authn/openssl_handles.h"

namespace aaproxy::testing {

inline constexpr char kUidOid[] = "1.3.6.1.4.1.57683.2";

struct CertificateSpec {
  std::string commonName;  // Empty: no CN attribute.
  std::vector<std::string> organizations;
  std::vector<std::string> uids;  // Subject attributes with OID 1.3.6.1.4.1.57683.2.
  bool isCa = false;
  // nullopt: no extendedKeyUsage extension. Otherwise the NIDs listed (may be empty).
  std::optional<std::vector<int>> extKeyUsages = std::vector<int>{NID_client_auth};
  // subjectAltName entries in OpenSSL's config syntax ("DNS:backend", "IP:127.0.0.1"); empty: none.
  std::vector<std::string> subjectAltNames;
  absl::Time notBefore = absl::Now() - absl::Hours(1);
  absl::Time notAfter = absl::Now() + absl::Hours(24);
  long serial = 1;
  const EVP_MD* digest = nullptr;  // Signature hash; nullptr = SHA-256.
};

struct TestCertificate {
  X509Ptr cert;
  EvpPkeyPtr key;
  std::string pem() const;
  std::string der() const;
  std::string keyPem() const;  // PKCS#8
};

// Signs with `issuer`'s key, or self-signs when `issuer` is null. Aborts on OpenSSL failure.
TestCertificate makeCertificate(const CertificateSpec& spec,
                                const TestCertificate* issuer = nullptr);

// A CA certificate spec (CA:TRUE, keyCertSign, no EKU).
CertificateSpec caSpec(std::string commonName);

// A new owning stack holding references to `certs`, in order.
X509StackPtr makeStack(const std::vector<const TestCertificate*>& certs);

}  // namespace aaproxy::testing
