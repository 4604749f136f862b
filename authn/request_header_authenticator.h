// The front-proxy authenticator: k8s.io/apiserver's requestheader authenticator wrapped in the
// x509 Verifier (request/headerrequest/requestheader.go + request/x509/x509.go Verifier).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "authn/authenticator.h"
#include "authn/certificate_pool.h"

namespace aaproxy {

using Clock = std::function<absl::Time()>;

struct RequestHeaderConfig {
  // CAs for the front proxy's client certificate. Null: no CA loaded yet, so the authenticator
  // never accepts (no opinion), as upstream does before the ConfigMap has been read.
  std::shared_ptr<const CertificatePool> clientCa;
  // Empty: any CN signed by clientCa is accepted.
  std::vector<std::string> allowedNames;
  std::vector<std::string> usernameHeaders;
  std::vector<std::string> uidHeaders;
  std::vector<std::string> groupHeaders;
  std::vector<std::string> extraHeaderPrefixes;
};

class RequestHeaderAuthenticator : public Authenticator {
 public:
  // Header names are whitespace-trimmed; an empty one is an error (`empty header "<name>"`), as
  // upstream's headerrequest.New/NewSecure.
  static absl::StatusOr<std::unique_ptr<RequestHeaderAuthenticator>> create(
      RequestHeaderConfig config, Clock clock = [] { return absl::Now(); });

  // No client certificate or no CA: no opinion. Verification failure or a CN not allowed:
  // kFailed with Go's error text. Then the identity comes from the headers (userFromHeaders);
  // no non-empty username header: no opinion.
  AuthenticationResult authenticate(const AuthenticationRequest& request) const override;

  // The header half alone (upstream's requestHeaderAuthRequestHandler), with no certificate
  // check: nullopt when no username header has a non-empty first value.
  std::optional<UserInfo> userFromHeaders(const HeaderMap& headers) const;

  const RequestHeaderConfig& config() const { return config_; }

 private:
  RequestHeaderAuthenticator(RequestHeaderConfig config, Clock clock)
      : config_(std::move(config)), clock_(std::move(clock)) {}

  RequestHeaderConfig config_;
  Clock clock_;
};

// url.PathUnescape: decodes %XX; nullopt when a '%' is not followed by two hex digits.
std::optional<std::string> pathUnescape(std::string_view s);

}  // namespace aaproxy
