// Plain client-certificate authentication against client-ca-file: k8s.io/apiserver's
// x509.Authenticator with CommonNameUserConversion.
#pragma once

#include <memory>
#include <optional>

#include "absl/status/statusor.h"
#include "authn/authenticator.h"
#include "authn/certificate_pool.h"
#include "authn/request_header_authenticator.h"  // Clock

namespace aaproxy {

// Extra key carrying the credential id (user.CredentialIDKey upstream).
inline constexpr char kCredentialIdExtraKey[] = "authentication.kubernetes.io/credential-id";
// Subject attribute parsed as the user UID (feature AllowParsingUserUIDFromCertAuth, beta and
// on by default since 1.34).
inline constexpr char kUserUidOid[] = "1.3.6.1.4.1.57683.2";

// CommonNameUserConversion: nullopt (no opinion) when the CN is empty; otherwise name = CN,
// groups = O values in order, uid from kUserUidOid, extra credential-id =
// "X509SHA256=<lowercase hex sha256 of the DER>". Errors (Go's text): `expected 1 UID, but found
// multiple: [a b]`, `UID cannot be an empty string`, `unable to parse UID into a string`.
absl::StatusOr<std::optional<UserInfo>> userFromCertificate(X509* leaf);

class X509Authenticator : public Authenticator {
 public:
  // Null clientCa: never accepts (no opinion), as upstream with no CA content.
  explicit X509Authenticator(
      std::shared_ptr<const CertificatePool> clientCa, Clock clock = [] { return absl::Now(); })
      : clientCa_(std::move(clientCa)), clock_(std::move(clock)) {}

  // Verification failure: kFailed with `verifying certificate SN=.., SKID=.., AKID=.. failed:
  // <Go x509 error>`. Conversion error: kFailed with its text. Empty CN: no opinion.
  AuthenticationResult authenticate(const AuthenticationRequest& request) const override;

 private:
  std::shared_ptr<const CertificatePool> clientCa_;
  Clock clock_;
};

}  // namespace aaproxy
