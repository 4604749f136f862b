// Delegated authentication and authorization, as k8s.io/apiserver's filter chain runs them:
// authenticate (request header, x509, TokenReview), strip credentials, resolve RequestInfo,
// authorize (privileged groups, always-allow paths, static policy, SubjectAccessReview).
// Kept free of authn/authz/kube headers so the proxy's translation units stay small.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "config/proxy_options.h"
#include "proxy/admission.h"

namespace aaproxy {

class AuthenticationSnapshot;
class ApiServerClient;
struct ExtensionApiserverAuthentication;
class KubeTransport;
class StaticPolicy;

struct DelegatedAdmissionOptions {
  bool anonymous_auth = true;
  std::vector<std::string> token_audiences;
  absl::Duration token_cache_ttl = absl::Seconds(10);
  std::vector<std::string> authorization_modes = {"webhook"};
  std::string authorization_policy_file;
  std::vector<std::string> always_allow_groups = {"system:masters"};
  std::vector<std::string> always_allow_paths = {"/healthz", "/readyz", "/livez"};
  absl::Duration authorized_ttl = absl::Seconds(10);
  absl::Duration unauthorized_ttl = absl::Seconds(10);
  size_t cache_size = 8192;
  // An "allowed" decision may be used this long past its TTL while SubjectAccessReviews fail
  // with connection errors or 5xx (0: never, as upstream). Denials are never extended.
  absl::Duration stale_allow_grace_period = absl::ZeroDuration();
  // Routing (config/route_table.h); null: every path to backend 0 with kubernetes authorization.
  std::shared_ptr<const RouteTable> routes;
  std::vector<std::string> allow_paths;   // Go path.Match patterns; others 404
  std::vector<std::string> ignore_paths;  // Go path.Match patterns; no authn/authz
  // Header names that carry the identity to the backend besides X-Remote-* (removed from
  // requests and trailers like X-Remote-*).
  std::vector<std::string> extra_identity_headers;
};

class DelegatedAdmission : public RequestAdmission {
 public:
  // `authn_transport` / `authz_transport` may be null (no cluster): then bearer tokens are not
  // reviewed and the webhook authorizer must not be configured.
  static absl::StatusOr<std::unique_ptr<DelegatedAdmission>> create(
      DelegatedAdmissionOptions options, std::shared_ptr<const KubeTransport> authn_transport,
      std::shared_ptr<const KubeTransport> authz_transport);
  ~DelegatedAdmission() override;

  // Registers a worker loop before it starts; each loop gets its own kube-apiserver clients.
  void attachLoop(Dispatcher& loop);
  // Releases the loop's clients; call on the loop's thread before the loop goes away.
  void detachLoop(Dispatcher& loop);

  // Installs new client-certificate / request-header authentication configuration (live reload).
  // Safe from any thread; connections see it from their next request.
  absl::Status updateAuthentication(const ExtensionApiserverAuthentication& config);
  // Live reload of the static policy (--authorization-policy-file) and of the route table; safe
  // from any thread, seen by each loop's next request. A route table may only name backends of
  // the table given at start (Worker pools are made once).
  absl::Status updatePolicy(std::shared_ptr<const StaticPolicy> policy);
  absl::Status updateRoutes(std::shared_ptr<const RouteTable> routes);

  void admit(RequestHead& head, const ConnectionInfo& connection, Dispatcher& loop,
             std::function<void(AdmissionVerdict)> done) override;
  void stripTrailers(HeaderMap& trailers, Dispatcher& loop) override;

 private:
  class Impl;
  explicit DelegatedAdmission(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace aaproxy
