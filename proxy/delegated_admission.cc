// The request's journey through authentication and authorization. Synchronous stages run inline
// on the worker loop; TokenReview and SubjectAccessReview go through per-loop kube-apiserver
// clients and shared coalescing caches, and continue on the same loop.
#include "proxy/delegated_admission.h"

#include <simdjson.h>

#include <algorithm>
#include <chrono>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "authn/authentication_chain.h"
#include "authn/extension_apiserver_authentication.h"
#include "authn/identity_headers.h"
#include "authn/request_header_authenticator.h"
#include "authn/token_review.h"
#include "authn/x509_authenticator.h"
#include "authz/authorizer.h"
#include "authz/forbidden.h"
#include "authz/impersonation.h"
#include "authz/request_info.h"
#include "authz/static_policy.h"
#include "authz/subject_access_review.h"
#include "authz/go_text.h"
#include "config/route_table.h"
#include "cache/coalescing_cache.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/mutex.h"
#include "k8s/status.h"
#include "kube/apiserver_client.h"

namespace aaproxy {

// What authenticates requests right now; replaced whole when the ConfigMap changes.
class AuthenticationSnapshot {
 public:
  AuthenticationSnapshot(AuthenticationChainConfig config, IdentityHeaderNames names)
      : chain(std::move(config)), header_names(std::move(names)) {}
  const AuthenticationChain chain;
  const IdentityHeaderNames header_names;
};

namespace {

// The fraction of a cached SubjectAccessReview decision's TTL after which a hit also renews it.
constexpr double kSubjectAccessReviewRefreshAfter = 0.8;

struct AdmissionMetrics {
  Counter& authn_success;
  Counter& authn_failure;
  Counter& authn_anonymous;
  Counter& token_cache_hit;
  Counter& token_cache_miss;
  Counter& token_cache_coalesced;
  Counter& sar_cache_hit;
  Counter& sar_cache_miss;
  Counter& sar_cache_coalesced;
  Counter& token_review_errors;
  Counter& sar_errors;
  Counter& sar_stale_allows;
  Histogram& token_review_latency;
  Histogram& sar_latency;

  static AdmissionMetrics& get() {
    static AdmissionMetrics* m = [] {
      MetricsRegistry& r = MetricsRegistry::global();
      const char* attempts = "Counter of authenticated attempts.";
      const char* token_cache = "TokenReview cache lookups by outcome.";
      const char* sar_cache = "SubjectAccessReview cache lookups by outcome.";
      std::vector<double> buckets = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1,
                                     0.25,  0.5,   1,    2.5,   5,    10};
      return new AdmissionMetrics{
          r.counter("authentication_attempts", attempts, "result=\"success\""),
          r.counter("authentication_attempts", attempts, "result=\"failure\""),
          r.counter("authentication_attempts", attempts, "result=\"anonymous\""),
          r.counter("aaproxy_token_review_cache_total", token_cache, "result=\"hit\""),
          r.counter("aaproxy_token_review_cache_total", token_cache, "result=\"miss\""),
          r.counter("aaproxy_token_review_cache_total", token_cache, "result=\"coalesced\""),
          r.counter("aaproxy_subject_access_review_cache_total", sar_cache, "result=\"hit\""),
          r.counter("aaproxy_subject_access_review_cache_total", sar_cache, "result=\"miss\""),
          r.counter("aaproxy_subject_access_review_cache_total", sar_cache, "result=\"coalesced\""),
          r.counter("aaproxy_kube_request_errors_total", "Failed calls to kube-apiserver.",
                    "resource=\"tokenreviews\""),
          r.counter("aaproxy_kube_request_errors_total", "Failed calls to kube-apiserver.",
                    "resource=\"subjectaccessreviews\""),
          r.counter("aaproxy_authorization_stale_allows_total",
                    "Requests allowed by an expired 'allowed' decision while SubjectAccessReviews "
                    "failed (--authorization-stale-allow-grace-period).",
                    ""),
          r.histogram("apiserver_delegated_authn_request_duration_seconds",
                      "Request latency in seconds of TokenReviews.", "", buckets),
          r.histogram("apiserver_delegated_authz_request_duration_seconds",
                      "Request latency in seconds of SubjectAccessReviews.", "", buckets),
      };
    }();
    return *m;
  }
};

std::chrono::nanoseconds toChrono(absl::Duration d) { return absl::ToChronoNanoseconds(d); }

AdmissionVerdict fromHttpError(const HttpErrorResponse& error) {
  AdmissionVerdict v = AdmissionVerdict::respond(error.code, error.body);
  for (const auto& [name, value] : error.headers) {
    if (name == "Content-Type") {
      v.content_type = value;
    } else {
      v.headers.add(name, value);
    }
  }
  return v;
}

std::string upperVerb(const RequestInfo& info) { return absl::AsciiStrToUpper(info.verb); }

// The error client-go's Result.Error() reports for a non-2xx answer: a Status body's message,
// else a generic text with the status code.
std::string apiErrorMessage(const ApiResponse& response) {
  simdjson::ondemand::parser parser;
  simdjson::padded_string json(response.body);
  simdjson::ondemand::document doc;
  std::string_view kind;
  std::string_view message;
  if (!parser.iterate(json).get(doc) && !doc["kind"].get_string().get(kind) && kind == "Status" &&
      !doc["message"].get_string().get(message) && !message.empty()) {
    return std::string(message);
  }
  return absl::StrCat("the server responded with the status code ", response.status,
                      " but did not return more information");
}

// What the asynchronous continuations need after the request head is gone.
struct PendingRequest {
  std::string target;
  // The attributes to authorize: the request's RequestInfo, or what its route makes of it.
  RequestInfo info;
  // Further attributes that must all be allowed too (a route's rewritten resource attributes).
  std::vector<RequestInfo> more_checks;
  // What the request's route decided (copied: the table may be reloaded while a review runs).
  bool routed = false;
  RouteAuthorization route_authorization = RouteAuthorization::kKubernetes;
  size_t upstream = 0;
  // Impersonate-* headers, read before they were stripped; applied after authentication.
  absl::StatusOr<ImpersonationPlan> impersonation = ImpersonationPlan{};
  JsonStyle style = JsonStyle::kCompact;
  // The user being authorized (the impersonated one when impersonating).
  UserInfo user;
  std::function<void(AdmissionVerdict)> done;
};

// What aa-proxy answers itself when no route claims it (client_connection.cc's
// serveLocalEndpoint): /metrics and the health endpoints with their subpaths.
bool isLocalEndpointPath(std::string_view path) {
  if (path == "/metrics") {
    return true;
  }
  for (std::string_view endpoint : {"/healthz", "/livez", "/readyz"}) {
    if (path.starts_with(endpoint) &&
        (path.size() == endpoint.size() || path[endpoint.size()] == '/')) {
      return true;
    }
  }
  return false;
}

bool matchesAnyPattern(const std::vector<std::string>& patterns, std::string_view path) {
  for (const std::string& pattern : patterns) {
    absl::StatusOr<bool> match = goPathMatch(pattern, path);  // validated at start
    if (match.ok() && *match) {
      return true;
    }
  }
  return false;
}

// kube-rbac-proxy's verb for fixed resource attributes (HEAD reads like GET, as in RequestInfo).
std::string resourceAttributesVerb(std::string_view method) {
  if (method == "GET" || method == "HEAD") {
    return "get";
  }
  if (method == "POST") {
    return "create";
  }
  if (method == "PUT") {
    return "update";
  }
  if (method == "PATCH") {
    return "patch";
  }
  if (method == "DELETE") {
    return "delete";
  }
  return "*";
}

// The values of a route's "{{ .Value }}": query parameter values, then header values, then the
// path segment, in that order; each gives its own attributes.
std::vector<std::string> rewriteValues(const AttributeRewrites& rewrites, const RequestHead& head,
                                       const RequestInfo& info) {
  std::vector<std::string> values;
  if (!rewrites.query_parameter.empty()) {
    std::string_view target = head.target;
    size_t q = target.find('?');
    if (q != std::string_view::npos) {
      GoQuery query = GoQuery::parse(target.substr(q + 1));
      for (std::string_view v : query.all(rewrites.query_parameter)) {
        values.emplace_back(v);
      }
    }
  }
  if (!rewrites.http_header.empty()) {
    for (std::string_view v : head.headers.getAll(rewrites.http_header)) {
      values.emplace_back(v);
    }
  }
  if (rewrites.path_segment >= 0) {
    std::string_view path = info.path;
    int index = 0;
    size_t start = 1;
    while (start <= path.size()) {
      size_t end = path.find('/', start);
      if (end == std::string_view::npos) {
        end = path.size();
      }
      if (index == rewrites.path_segment) {
        if (end > start) {
          values.emplace_back(path.substr(start, end - start));
        }
        break;
      }
      ++index;
      start = end + 1;
    }
  }
  return values;
}

RequestInfo resourceAttributesFor(const ResourceAttributesTemplate& t, std::string_view value,
                                  const std::string& verb) {
  RequestInfo info;
  info.isResourceRequest = true;
  info.verb = verb;
  info.namespaceName = t.namespace_name.fill(value);
  info.apiGroup = t.api_group.fill(value);
  info.apiVersion = t.api_version.fill(value);
  info.resource = t.resource.fill(value);
  info.subresource = t.subresource.fill(value);
  info.name = t.name.fill(value);
  return info;
}

}  // namespace

class DelegatedAdmission::Impl {
 public:
  struct LoopState {
    std::shared_ptr<const AuthenticationSnapshot> authn;
    std::unique_ptr<ApiServerClient> authn_client;
    std::unique_ptr<ApiServerClient> authz_client;
    std::string sar_key;  // decide()'s reusable SubjectAccessReview cache key buffer
    // Swapped by tasks posted to the loop (live reload), like `authn`.
    std::shared_ptr<const Authorizer> authorizer;
    std::shared_ptr<const RouteTable> routes;
  };

  Impl(DelegatedAdmissionOptions options, std::shared_ptr<const KubeTransport> authn_transport,
       std::shared_ptr<const KubeTransport> authz_transport, AuthorizerOptions authorizer_options,
       std::shared_ptr<const Authorizer> authorizer)
      : options_(std::move(options)),
        authn_transport_(std::move(authn_transport)),
        authz_transport_(std::move(authz_transport)),
        authorizer_options_(std::move(authorizer_options)),
        token_cache_(CoalescingCacheOptions{.capacity = options_.cache_size}),
        // A busy decision is renewed in its last fifth, so that its requests do not all wait
        // for kube-apiserver when it expires (a slow kube-apiserver stalled them for as long).
        sar_cache_(CoalescingCacheOptions{.capacity = options_.cache_size,
                                          .refresh_after = kSubjectAccessReviewRefreshAfter}),
        current_authorizer_(std::move(authorizer)),
        current_routes_(options_.routes) {}

  absl::Status updatePolicy(std::shared_ptr<const StaticPolicy> policy);
  absl::Status updateRoutes(std::shared_ptr<const RouteTable> routes);

  absl::Status update(const ExtensionApiserverAuthentication& config);
  void attach(Dispatcher& loop);
  void detach(Dispatcher& loop);
  void admit(RequestHead& head, const ConnectionInfo& connection, Dispatcher& loop,
             std::function<void(AdmissionVerdict)> done);
  void stripTrailers(HeaderMap& trailers, Dispatcher& loop);

 private:
  void reviewToken(LoopState& state, Dispatcher& loop,
                   std::shared_ptr<const AuthenticationSnapshot> snap, ChainDecision pending,
                   std::shared_ptr<PendingRequest> request);
  void onAuthenticated(LoopState& state, Dispatcher& loop, ChainDecision decision,
                       std::shared_ptr<PendingRequest> request);
  using VerdictCallback = std::function<void(const AuthorizationVerdict&)>;
  // Authorizes one set of attributes: the synchronous chain, then a (cached) SAR if needed.
  // `done` (callable with const AuthorizationVerdict&) runs once, at once on a decision from
  // the chain or the cache; it becomes a VerdictCallback only when the decision must wait.
  template <typename Done>
  void decide(LoopState& state, Dispatcher& loop, const UserInfo& user, const RequestInfo& info,
              Done&& done);
  // Sends the SubjectAccessReview; `key` (empty: not cacheable) is completed in the cache.
  void sendSubjectAccessReview(LoopState& state, const UserInfo& user, const RequestInfo& info,
                               std::string key, VerdictCallback done);
  void checkImpersonation(LoopState& state, Dispatcher& loop, UserInfo requestor, size_t index,
                          std::shared_ptr<PendingRequest> request);
  void authorize(LoopState& state, Dispatcher& loop, UserInfo user,
                 std::shared_ptr<PendingRequest> request);
  void finishAuthorization(const AuthorizationVerdict& verdict, PendingRequest& request,
                           const RequestInfo& attributes);
  // Routing: the request's route and its attributes go into `request`; a verdict when the route
  // answers without authentication (404, 400, a public route).
  std::optional<AdmissionVerdict> route(const LoopState& state, RequestHead& head,
                                        const AuthenticationSnapshot& snap,
                                        PendingRequest& request);
  // Removes credentials, identity and impersonation fields: nothing of them reaches a backend.
  void stripCredentials(HeaderMap& headers, const AuthenticationSnapshot& snap) const;
  // Authorizes request.more_checks[index..] one after another, after request.info.
  void authorizeMore(LoopState& state, Dispatcher& loop, size_t index,
                     std::shared_ptr<PendingRequest> request);

  const DelegatedAdmissionOptions options_;
  const std::shared_ptr<const KubeTransport> authn_transport_;
  const std::shared_ptr<const KubeTransport> authz_transport_;
  // The chain's settings, kept to build an Authorizer again around a reloaded policy.
  const AuthorizerOptions authorizer_options_;
  const TokenReviewCacheKeyer token_keyer_;
  CoalescingCache<TokenReviewResult> token_cache_;
  CoalescingCache<SubjectAccessReviewStatus> sar_cache_;

  // --authorization-stale-allow-grace-period: until when each "allowed" decision may still be
  // used once its TTL is over, should kube-apiserver be unreachable or failing (5xx).
  Mutex stale_mutex_;
  absl::flat_hash_map<std::string, absl::Time> stale_allows_ ABSL_GUARDED_BY(stale_mutex_);
  void rememberAllow(const std::string& key, std::chrono::nanoseconds ttl);
  // Whether the stale allow for `key` was still within its grace period at `asked`, the time
  // the review was started (its retries may take seconds).
  bool staleAllowUsable(const std::string& key, absl::Time asked);

  // Filled by attach() before the loops start, so the loops' lookups need no lock. The
  // configuration can change meanwhile (the ConfigMap watch runs on the control thread): each
  // update stores the new value and posts it to every loop under mutex_, and attach() copies
  // the current values and inserts under it too, so no loop misses an update, none gets two
  // out of order, and loops_ is never walked while it grows.
  absl::flat_hash_map<Dispatcher*, std::unique_ptr<LoopState>> loops_;
  Mutex mutex_;
  std::shared_ptr<const AuthenticationSnapshot> current_ ABSL_GUARDED_BY(mutex_);
  std::shared_ptr<const Authorizer> current_authorizer_ ABSL_GUARDED_BY(mutex_);
  std::shared_ptr<const RouteTable> current_routes_ ABSL_GUARDED_BY(mutex_);
};

void DelegatedAdmission::Impl::rememberAllow(const std::string& key,
                                             std::chrono::nanoseconds ttl) {
  if (options_.stale_allow_grace_period <= absl::ZeroDuration()) {
    return;
  }
  absl::Time until = absl::Now() + absl::FromChrono(ttl) + options_.stale_allow_grace_period;
  MutexLock lock(&stale_mutex_);
  if (stale_allows_.size() >= options_.cache_size && !stale_allows_.contains(key)) {
    // Bounded like the decision cache: drop what has run out, else the whole set (rare).
    absl::Time now = absl::Now();
    absl::erase_if(stale_allows_, [now](const auto& entry) { return entry.second <= now; });
    if (stale_allows_.size() >= options_.cache_size) {
      stale_allows_.clear();
    }
  }
  stale_allows_[key] = until;
}

bool DelegatedAdmission::Impl::staleAllowUsable(const std::string& key, absl::Time asked) {
  if (options_.stale_allow_grace_period <= absl::ZeroDuration()) {
    return false;
  }
  MutexLock lock(&stale_mutex_);
  auto it = stale_allows_.find(key);
  if (it == stale_allows_.end()) {
    return false;
  }
  if (it->second <= asked) {
    stale_allows_.erase(it);
    return false;
  }
  return true;
}

absl::Status DelegatedAdmission::Impl::update(const ExtensionApiserverAuthentication& config) {
  AuthenticationChainConfig chain;
  chain.anonymousEnabled = options_.anonymous_auth;
  chain.tokenReviewEnabled = authn_transport_ != nullptr;
  IdentityHeaderNames names;
  if (config.requestHeaderCaPem.has_value()) {
    absl::StatusOr<std::shared_ptr<const CertificatePool>> pool =
        CertificatePool::fromPem(*config.requestHeaderCaPem);
    if (!pool.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("requestheader-client-ca-file: ", pool.status().message()));
    }
    RequestHeaderConfig rh;
    rh.clientCa = *std::move(pool);
    rh.allowedNames = config.requestHeaderAllowedNames.value_or(std::vector<std::string>{});
    rh.usernameHeaders = config.requestHeaderUsernameHeaders.value_or(std::vector<std::string>{});
    rh.uidHeaders = config.requestHeaderUidHeaders.value_or(std::vector<std::string>{});
    rh.groupHeaders = config.requestHeaderGroupHeaders.value_or(std::vector<std::string>{});
    rh.extraHeaderPrefixes =
        config.requestHeaderExtraHeaderPrefixes.value_or(std::vector<std::string>{});
    names = {rh.usernameHeaders, rh.uidHeaders, rh.groupHeaders, rh.extraHeaderPrefixes};
    absl::StatusOr<std::unique_ptr<RequestHeaderAuthenticator>> authenticator =
        RequestHeaderAuthenticator::create(std::move(rh));
    if (!authenticator.ok()) {
      return authenticator.status();
    }
    chain.authenticators.push_back(std::shared_ptr<const Authenticator>(*std::move(authenticator)));
  }
  if (config.clientCaPem.has_value()) {
    absl::StatusOr<std::shared_ptr<const CertificatePool>> pool =
        CertificatePool::fromPem(*config.clientCaPem);
    if (!pool.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("client-ca-file: ", pool.status().message()));
    }
    chain.authenticators.push_back(std::make_shared<X509Authenticator>(*std::move(pool)));
  }
  auto snapshot =
      std::make_shared<const AuthenticationSnapshot>(std::move(chain), std::move(names));
  MutexLock lock(&mutex_);
  current_ = snapshot;
  for (auto& [loop, state] : loops_) {
    LoopState* s = state.get();
    loop->post([s, snapshot] { s->authn = snapshot; });
  }
  return absl::OkStatus();
}

absl::Status DelegatedAdmission::Impl::updatePolicy(std::shared_ptr<const StaticPolicy> policy) {
  AuthorizerOptions options = authorizer_options_;
  if (!options.policy) {
    return absl::FailedPreconditionError(
        "--authorization-mode has no static authorizer: nothing to reload");
  }
  options.policy = std::move(policy);
  absl::StatusOr<std::unique_ptr<Authorizer>> created = Authorizer::create(std::move(options));
  if (!created.ok()) {
    return created.status();
  }
  std::shared_ptr<const Authorizer> authorizer = *std::move(created);
  MutexLock lock(&mutex_);
  current_authorizer_ = authorizer;
  for (auto& [loop, state] : loops_) {
    LoopState* s = state.get();
    loop->post([s, authorizer] { s->authorizer = authorizer; });
  }
  return absl::OkStatus();
}

absl::Status DelegatedAdmission::Impl::updateRoutes(std::shared_ptr<const RouteTable> routes) {
  MutexLock lock(&mutex_);
  current_routes_ = routes;
  for (auto& [loop, state] : loops_) {
    LoopState* s = state.get();
    loop->post([s, routes] { s->routes = routes; });
  }
  return absl::OkStatus();
}

void DelegatedAdmission::Impl::attach(Dispatcher& loop) {
  auto state = std::make_unique<LoopState>();
  if (authn_transport_) {
    state->authn_client = std::make_unique<ApiServerClient>(loop.base(), authn_transport_);
  }
  if (authz_transport_) {
    state->authz_client = std::make_unique<ApiServerClient>(loop.base(), authz_transport_);
  }
  // Under the lock the updates hold while they publish: a ConfigMap change on the control
  // thread reaches this loop either through the copies made here or through its post.
  MutexLock lock(&mutex_);
  state->authn = current_;
  state->authorizer = current_authorizer_;
  state->routes = current_routes_;
  loops_[&loop] = std::move(state);
}

void DelegatedAdmission::Impl::detach(Dispatcher& loop) {
  auto it = loops_.find(&loop);
  if (it != loops_.end()) {
    it->second->authn_client.reset();
    it->second->authz_client.reset();
  }
}

void DelegatedAdmission::Impl::admit(RequestHead& head, const ConnectionInfo& connection,
                                     Dispatcher& loop, std::function<void(AdmissionVerdict)> done) {
  auto it = loops_.find(&loop);
  if (it == loops_.end() || !it->second->authn) {
    done(AdmissionVerdict::respond(
        500, failureStatusJson(500, "InternalError", "authentication is not configured")));
    return;
  }
  LoopState& state = *it->second;
  // Replaced only by tasks posted to this loop, so it stays put while admit() runs; the shared
  // pointer is copied only for a TokenReview (no reference-count traffic between the worker
  // threads on every request).
  const std::shared_ptr<const AuthenticationSnapshot>& snap = state.authn;

  auto request = std::make_shared<PendingRequest>();
  request->target = head.target;
  request->done = std::move(done);
  std::string_view target = head.target;
  size_t q = target.find('?');
  std::string_view raw_query = q == std::string_view::npos ? "" : target.substr(q + 1);
  std::optional<std::string_view> user_agent = head.headers.get("User-Agent");
  request->style = prettyPrintRequested(raw_query, user_agent.value_or("")) ? JsonStyle::kPretty
                                                                            : JsonStyle::kCompact;

  // Upstream resolves RequestInfo in an outer filter, before authentication.
  absl::StatusOr<RequestInfo> info = resolveRequestInfo(head.method, head.target);
  if (!info.ok()) {
    if (info.status().code() == absl::StatusCode::kInvalidArgument) {
      // Go's net/http rejects an unparsable request URI before any handler runs.
      AdmissionVerdict v = AdmissionVerdict::respond(400, "400 Bad Request");
      v.content_type = "text/plain; charset=utf-8";
      request->done(std::move(v));
    } else {
      request->done(fromHttpError(internalErrorResponse(
          head.target, absl::StrCat("failed to create RequestInfo: ", info.status().message()))));
    }
    return;
  }
  request->info = *std::move(info);
  if (absl::Status timeout = checkRequestTimeoutParameter(request->info, head.target);
      !timeout.ok()) {
    AdmissionVerdict v = AdmissionVerdict::respond(
        400, failureStatusJson(400, "BadRequest", std::string(timeout.message()), std::nullopt,
                               request->style));
    v.verb = upperVerb(request->info);
    request->done(std::move(v));
    return;
  }

  if (std::optional<AdmissionVerdict> routed = route(state, head, *snap, *request);
      routed.has_value()) {
    request->done(*std::move(routed));
    return;
  }

  AuthenticationRequest authn_request{
      head.headers, {connection.peer_leaf, connection.peer_chain, connection.verification_cache}};
  ChainDecision decision = snap->chain.authenticate(authn_request);
  request->impersonation = planImpersonation(head.headers);
  // Credentials, identity and impersonation headers never travel further, whatever the outcome.
  stripCredentials(head.headers, *snap);

  if (decision.kind == ChainDecision::Kind::kNeedsTokenReview) {
    reviewToken(state, loop, snap, std::move(decision), std::move(request));
    return;
  }
  onAuthenticated(state, loop, std::move(decision), std::move(request));
}

void DelegatedAdmission::Impl::stripTrailers(HeaderMap& trailers, Dispatcher& loop) {
  auto it = loops_.find(&loop);
  if (it == loops_.end() || !it->second->authn) {
    trailers.clear();  // no names to go by: forward none
    return;
  }
  // The same removals as admit()'s on the head, with the names configured now.
  stripIdentityHeaders(trailers, it->second->authn->header_names);
  removeImpersonationHeaders(trailers);
  for (const std::string& name : options_.extra_identity_headers) {
    trailers.remove(name);
  }
}

// `pending` is copied into the review's callback and still read after it: by value on purpose.
// NOLINTBEGIN(performance-unnecessary-value-param)
void DelegatedAdmission::Impl::reviewToken(LoopState& state, Dispatcher& loop,
                                           std::shared_ptr<const AuthenticationSnapshot> snap,
                                           ChainDecision pending,
                                           std::shared_ptr<PendingRequest> request) {
  // NOLINTEND(performance-unnecessary-value-param)
  AdmissionMetrics& metrics = AdmissionMetrics::get();
  std::string key = token_keyer_.key(pending.token, options_.token_audiences);
  auto finish = [this, &state, &loop, snap, pending, request](const TokenReviewResult& result) {
    onAuthenticated(state, loop, snap->chain.finishWithTokenReview(pending, result), request);
  };
  auto lookup = token_cache_.lookup(
      key, [&loop](std::function<void()> fn) { loop.post(std::move(fn)); },
      [finish](const absl::StatusOr<TokenReviewResult>& result) {
        finish(result.ok() ? *result
                           : TokenReviewResult::failed(std::string(result.status().message())));
      });
  if (lookup.outcome == CoalescingCache<TokenReviewResult>::Outcome::kHit) {
    metrics.token_cache_hit.inc();
    finish(*lookup.value);
    return;
  }
  if (lookup.outcome == CoalescingCache<TokenReviewResult>::Outcome::kJoined) {
    metrics.token_cache_coalesced.inc();
    return;
  }
  metrics.token_cache_miss.inc();
  HeaderMap headers;
  headers.add("Content-Type", "application/json");
  headers.add("Accept", "application/json");
  absl::Time start = absl::Now();
  std::vector<std::string> audiences = options_.token_audiences;
  state.authn_client->request(
      "POST", kTokenReviewPath, tokenReviewRequestBody(pending.token, audiences),
      std::move(headers),
      [this, key, audiences, start, finish](absl::StatusOr<ApiResponse> response) {
        AdmissionMetrics& metrics = AdmissionMetrics::get();
        metrics.token_review_latency.observe(absl::ToDoubleSeconds(absl::Now() - start));
        TokenReviewResult result;
        if (!response.ok()) {
          result = TokenReviewResult::failed(std::string(response.status().message()));
        } else if (response->status != 200 && response->status != 201) {
          result = TokenReviewResult::failed(apiErrorMessage(*response));
        } else if (absl::StatusOr<TokenReviewStatus> status =
                       parseTokenReviewResponse(response->body);
                   !status.ok()) {
          result = TokenReviewResult::failed(std::string(status.status().message()));
        } else {
          result = interpretTokenReview(*status, audiences);
        }
        if (!result.cacheable()) {
          metrics.token_review_errors.inc();
          AA_LOG(E) << "TokenReview failed: " << result.error;
        }
        token_cache_.complete(key, result,
                              result.cacheable() ? toChrono(options_.token_cache_ttl)
                                                 : std::chrono::nanoseconds::zero());
        finish(result);
      });
}

void DelegatedAdmission::Impl::onAuthenticated(LoopState& state, Dispatcher& loop,
                                               ChainDecision decision,
                                               std::shared_ptr<PendingRequest> request) {
  AdmissionMetrics& metrics = AdmissionMetrics::get();
  switch (decision.kind) {
    case ChainDecision::Kind::kAuthenticated:
    case ChainDecision::Kind::kAnonymous:
      (decision.kind == ChainDecision::Kind::kAuthenticated ? metrics.authn_success
                                                            : metrics.authn_anonymous)
          .inc();
      if (!request->impersonation.ok()) {
        AdmissionVerdict v = fromHttpError(
            impersonationErrorResponse(request->impersonation.status(), request->style));
        v.verb = upperVerb(request->info);
        request->done(std::move(v));
        return;
      }
      if (request->impersonation->requested) {
        checkImpersonation(state, loop, std::move(decision.user), 0, std::move(request));
        return;
      }
      authorize(state, loop, std::move(decision.user), std::move(request));
      return;
    case ChainDecision::Kind::kNeedsTokenReview:
    case ChainDecision::Kind::kUnauthorized:
      break;
  }
  metrics.authn_failure.inc();
  if (!decision.errors.empty()) {
    AA_VLOG(2) << "Unable to authenticate the request: " << decision.errorMessage();
  }
  AdmissionVerdict v = AdmissionVerdict::respond(401, unauthorizedStatusJson(request->style));
  v.verb = upperVerb(request->info);
  request->done(std::move(v));
}

template <typename Done>
void DelegatedAdmission::Impl::decide(LoopState& state, Dispatcher& loop, const UserInfo& user,
                                      const RequestInfo& info, Done&& done) {
  AuthorizationVerdict verdict = state.authorizer->authorize(user, info);
  if (verdict.kind != AuthorizationVerdict::Kind::kNeedsSubjectAccessReview) {
    done(verdict);
    return;
  }
  if (!state.authz_client) {
    done({AuthorizationVerdict::Kind::kForbidden, "", ""});
    return;
  }
  AdmissionMetrics& metrics = AdmissionMetrics::get();
  const bool cacheable = shouldCacheSubjectAccessReview(info);
  if (cacheable) {
    // The loop's key buffer: a hit allocates nothing. It is not touched after done() runs,
    // which may come back here for the next check.
    std::string& key = state.sar_key;
    key.clear();
    appendSubjectAccessReviewCacheKey(key, user, info);
    auto lookup = sar_cache_.lookup(
        key, [&loop](std::function<void()> fn) { loop.post(std::move(fn)); },
        [&state, done](const absl::StatusOr<SubjectAccessReviewStatus>& status) {
          done(state.authorizer->finishWithSubjectAccessReview(status));
        });
    if (lookup.outcome == CoalescingCache<SubjectAccessReviewStatus>::Outcome::kHit) {
      metrics.sar_cache_hit.inc();
      done(state.authorizer->finishWithSubjectAccessReview(*std::move(lookup.value)));
      return;
    }
    if (lookup.outcome == CoalescingCache<SubjectAccessReviewStatus>::Outcome::kHitRefresh) {
      // Answered from the cache; the review renews the entry for whoever comes next.
      metrics.sar_cache_hit.inc();
      sendSubjectAccessReview(state, user, info, key, [](const AuthorizationVerdict&) {});
      done(state.authorizer->finishWithSubjectAccessReview(*std::move(lookup.value)));
      return;
    }
    if (lookup.outcome == CoalescingCache<SubjectAccessReviewStatus>::Outcome::kJoined) {
      metrics.sar_cache_coalesced.inc();
      return;
    }
    metrics.sar_cache_miss.inc();
  }
  // This loop's leader (or an uncacheable request): ask kube-apiserver.
  sendSubjectAccessReview(state, user, info, cacheable ? state.sar_key : std::string(),
                          VerdictCallback(std::forward<Done>(done)));
}

void DelegatedAdmission::Impl::sendSubjectAccessReview(LoopState& state, const UserInfo& user,
                                                       const RequestInfo& info, std::string key,
                                                       VerdictCallback done) {
  const bool cacheable = !key.empty();
  HeaderMap headers;
  headers.add("Content-Type", "application/json");
  headers.add("Accept", "application/json");
  absl::Time start = absl::Now();
  state.authz_client->request(
      "POST", kSubjectAccessReviewPath, subjectAccessReviewRequestBody(user, info),
      std::move(headers),
      [this, &state, key = std::move(key), cacheable, start, done = std::move(done),
       info](absl::StatusOr<ApiResponse> response) {
        AdmissionMetrics& metrics = AdmissionMetrics::get();
        metrics.sar_latency.observe(absl::ToDoubleSeconds(absl::Now() - start));
        absl::StatusOr<SubjectAccessReviewStatus> status;
        // Connection errors and 5xx answers: what a stale "allowed" decision may bridge.
        bool outage = false;
        if (!response.ok()) {
          status = response.status();
          outage = true;
        } else if (response->status != 200 && response->status != 201) {
          status = absl::UnavailableError(apiErrorMessage(*response));
          outage = response->status >= 500;
        } else {
          status = parseSubjectAccessReviewResponse(response->body);
        }
        std::chrono::nanoseconds ttl = std::chrono::nanoseconds::zero();
        if (!status.ok()) {
          metrics.sar_errors.inc();
          AA_LOG(E) << "SubjectAccessReview failed: " << status.status();
          if (outage && cacheable && staleAllowUsable(key, start)) {
            metrics.sar_stale_allows.inc();
            AA_VLOG(2) << "SubjectAccessReview failed; allowing by an expired decision (within "
                          "--authorization-stale-allow-grace-period): "
                       << status.status().message();
            status = SubjectAccessReviewStatus{.allowed = true};  // not cached: ttl stays 0
          }
        } else if (cacheable) {
          ttl = state.authorizer->subjectAccessReviewCacheTtl(info, *status);
          if (status->allowed) {
            rememberAllow(key, ttl);
          }
        }
        if (cacheable) {
          sar_cache_.complete(key, status, ttl);
        }
        done(state.authorizer->finishWithSubjectAccessReview(status));
      });
}

// Upstream's impersonation filter: every requested identity piece needs an "impersonate"
// permission of the authenticated user, checked one after another; any denial (or error) is 403.
// `requestor` is copied into each check's callback and used beside it: by value on purpose.
// NOLINTBEGIN(performance-unnecessary-value-param)
void DelegatedAdmission::Impl::checkImpersonation(LoopState& state, Dispatcher& loop,
                                                  UserInfo requestor, size_t index,
                                                  std::shared_ptr<PendingRequest> request) {
  // NOLINTEND(performance-unnecessary-value-param)
  const ImpersonationPlan& plan = *request->impersonation;
  if (index == plan.checks.size()) {
    AA_VLOG(2) << "user \"" << requestor.name << "\" impersonates \"" << plan.impersonated.name
               << "\"";
    authorize(state, loop, plan.impersonated, std::move(request));
    return;
  }
  const ImpersonationCheck& check = plan.checks[index];
  decide(state, loop, requestor, check.attributes,
         [this, &state, &loop, requestor, index, request](const AuthorizationVerdict& verdict) {
           if (verdict.kind == AuthorizationVerdict::Kind::kAllow) {
             checkImpersonation(state, loop, requestor, index + 1, request);
             return;
           }
           const ImpersonationCheck& denied = request->impersonation->checks[index];
           AdmissionVerdict v = fromHttpError(
               forbiddenResponse(requestor, denied.attributes, verdict.reason, request->style));
           v.verb = upperVerb(request->info);
           v.user = requestor;
           request->done(std::move(v));
         });
}

void DelegatedAdmission::Impl::stripCredentials(HeaderMap& headers,
                                                const AuthenticationSnapshot& snap) const {
  stripIdentityHeaders(headers, snap.header_names);
  removeImpersonationHeaders(headers);
  stripWebSocketBearerProtocols(headers);
  for (const std::string& name : options_.extra_identity_headers) {
    headers.remove(name);
  }
}

std::optional<AdmissionVerdict> DelegatedAdmission::Impl::route(const LoopState& state,
                                                                RequestHead& head,
                                                                const AuthenticationSnapshot& snap,
                                                                PendingRequest& request) {
  const RouteTable* table = state.routes.get();
  const std::string& path = request.info.path;
  const bool routing = (table != nullptr && !table->isDefault()) || !options_.allow_paths.empty() ||
                       !options_.ignore_paths.empty();
  if (!routing) {
    return std::nullopt;  // one backend, kubernetes authorization: nothing to decide here
  }
  auto status = [&](int code, std::string_view reason, std::string_view message) {
    AdmissionVerdict v = AdmissionVerdict::respond(
        code, failureStatusJson(code, reason, message,
                                code == 404 ? std::optional(StatusDetails{}) : std::nullopt,
                                request.style));
    v.verb = upperVerb(request.info);
    return v;
  };
  // A backend may resolve "..", "." and "//" to a path of another route: refuse them.
  if (hasAmbiguousSegments(path)) {
    return status(400, "BadRequest",
                  absl::StrCat("the request path ", goQuote(path),
                               " has empty, \".\" or \"..\" segments"));
  }
  const RouteConfig* route = table != nullptr ? table->match(path) : nullptr;
  // A route other than "/", or a path named by --allow-paths / --ignore-paths, takes the path
  // from aa-proxy's own endpoints (kube-rbac-proxy users expect the backend's /metrics).
  // Each pattern list is matched once per request.
  const bool allow_listed = matchesAnyPattern(options_.allow_paths, path);
  const bool ignored = matchesAnyPattern(options_.ignore_paths, path);
  const bool claimed = route != nullptr && (route->path != "/" || allow_listed || ignored);
  if (!claimed && isLocalEndpointPath(path)) {
    return std::nullopt;  // aa-proxy's own endpoints, authorized as always
  }
  if (route == nullptr ||
      (!options_.allow_paths.empty() && !allow_listed)) {
    return status(404, "NotFound", "the server could not find the requested resource");
  }
  request.routed = true;
  request.route_authorization = route->authorization;
  request.upstream = route->upstream_index;
  if (route->authorization == RouteAuthorization::kPublic || ignored) {
    stripCredentials(head.headers, snap);
    AdmissionVerdict v = AdmissionVerdict::forward(UserInfo{});
    v.send_identity = false;
    v.upstream = route->upstream_index;
    v.serve_local_endpoints = !claimed;
    v.verb = upperVerb(request.info);
    return v;
  }
  switch (route->authorization) {
    case RouteAuthorization::kKubernetes:
    case RouteAuthorization::kDeny:
    case RouteAuthorization::kPublic:
      break;
    case RouteAuthorization::kNonResource: {
      RequestInfo info;
      info.path = path;
      info.verb = goAsciiLower(head.method);
      request.info = std::move(info);
      break;
    }
    case RouteAuthorization::kResourceAttributes: {
      const std::string verb = resourceAttributesVerb(head.method);
      const ResourceAttributesTemplate& attributes = route->resource_attributes;
      if (!route->rewrites.any()) {
        request.info = resourceAttributesFor(attributes, "", verb);
        break;
      }
      std::vector<std::string> values = rewriteValues(route->rewrites, head, request.info);
      if (values.empty()) {
        std::vector<std::string> sources;
        if (!route->rewrites.query_parameter.empty()) {
          sources.push_back(absl::StrCat("query parameter ", goQuote(route->rewrites.query_parameter)));
        }
        if (!route->rewrites.http_header.empty()) {
          sources.push_back(absl::StrCat("header ", goQuote(route->rewrites.http_header)));
        }
        if (route->rewrites.path_segment >= 0) {
          sources.push_back(absl::StrCat("path segment ", route->rewrites.path_segment));
        }
        return status(400, "BadRequest",
                      absl::StrCat("the request has no value for the route's resource attributes (",
                                   absl::StrJoin(sources, ", "), ")"));
      }
      request.info = resourceAttributesFor(attributes, values[0], verb);
      for (size_t i = 1; i < values.size(); ++i) {
        request.more_checks.push_back(resourceAttributesFor(attributes, values[i], verb));
      }
      break;
    }
  }
  return std::nullopt;
}

void DelegatedAdmission::Impl::authorize(LoopState& state, Dispatcher& loop, UserInfo user,
                                         std::shared_ptr<PendingRequest> request) {
  const RequestInfo& info = request->info;
  // The pending request owns the user until the decision (at once from a cache, later from a
  // SubjectAccessReview), so neither the call nor the callback copies it.
  request->user = std::move(user);
  if (request->routed && request->route_authorization == RouteAuthorization::kDeny) {
    // As kube-apiserver's AlwaysDeny authorizer.
    finishAuthorization({AuthorizationVerdict::Kind::kForbidden, "Everything is forbidden.", ""},
                        *request, info);
    return;
  }
  decide(state, loop, request->user, info,
         [this, &state, &loop, request](const AuthorizationVerdict& verdict) {
           if (verdict.kind == AuthorizationVerdict::Kind::kAllow && !request->more_checks.empty()) {
             authorizeMore(state, loop, 0, request);
             return;
           }
           finishAuthorization(verdict, *request, request->info);
         });
}

void DelegatedAdmission::Impl::authorizeMore(LoopState& state, Dispatcher& loop, size_t index,
                                             std::shared_ptr<PendingRequest> request) {
  const RequestInfo& info = request->more_checks[index];
  decide(state, loop, request->user, info,
         [this, &state, &loop, index, request](const AuthorizationVerdict& verdict) {
           if (verdict.kind == AuthorizationVerdict::Kind::kAllow &&
               index + 1 < request->more_checks.size()) {
             authorizeMore(state, loop, index + 1, request);
             return;
           }
           finishAuthorization(verdict, *request, request->more_checks[index]);
         });
}

void DelegatedAdmission::Impl::finishAuthorization(const AuthorizationVerdict& verdict,
                                                   PendingRequest& request,
                                                   const RequestInfo& attributes) {
  AdmissionVerdict v;
  switch (verdict.kind) {
    case AuthorizationVerdict::Kind::kAllow:
      v = AdmissionVerdict::forward(std::move(request.user));  // the request ends here
      v.verb = upperVerb(request.info);
      if (request.routed) {
        v.upstream = request.upstream;
        v.serve_local_endpoints = false;  // route() left local endpoints unrouted
      }
      request.done(std::move(v));
      return;
    case AuthorizationVerdict::Kind::kForbidden:
      AA_VLOG(2) << "Forbidden: \"" << request.target << "\", Reason: \"" << verdict.reason << "\"";
      v = fromHttpError(forbiddenResponse(request.user, attributes, verdict.reason, request.style));
      break;
    case AuthorizationVerdict::Kind::kInternalError:
    case AuthorizationVerdict::Kind::kNeedsSubjectAccessReview:
      v = fromHttpError(internalErrorResponse(request.target, verdict.error));
      break;
  }
  v.verb = upperVerb(request.info);
  v.user = std::move(request.user);  // for the access log
  request.done(std::move(v));
}

absl::StatusOr<std::unique_ptr<DelegatedAdmission>> DelegatedAdmission::create(
    DelegatedAdmissionOptions options, std::shared_ptr<const KubeTransport> authn_transport,
    std::shared_ptr<const KubeTransport> authz_transport) {
  AuthorizerOptions authz;
  bool has_static =
      std::find(options.authorization_modes.begin(), options.authorization_modes.end(), "static") !=
      options.authorization_modes.end();
  bool has_webhook =
      std::find(options.authorization_modes.begin(), options.authorization_modes.end(),
                "webhook") != options.authorization_modes.end();
  authz.mode = has_static && has_webhook ? AuthorizationMode::kStaticThenWebhook
               : has_static              ? AuthorizationMode::kStatic
                                         : AuthorizationMode::kWebhook;
  if (has_webhook && !authz_transport) {
    return absl::InvalidArgumentError(
        "--authorization-mode: webhook needs a kube-apiserver (--authorization-kubeconfig, "
        "--kubeconfig or in-cluster); use --authorization-mode static without a cluster");
  }
  if (has_static) {
    absl::StatusOr<StaticPolicy> policy = StaticPolicy::loadFile(options.authorization_policy_file);
    if (!policy.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--authorization-policy-file: ", policy.status().message()));
    }
    authz.policy = std::make_shared<const StaticPolicy>(*std::move(policy));
  }
  authz.privilegedGroups = options.always_allow_groups;
  authz.alwaysAllowPaths = options.always_allow_paths;
  authz.authorizedTtl = toChrono(options.authorized_ttl);
  authz.unauthorizedTtl = toChrono(options.unauthorized_ttl);
  AuthorizerOptions authz_options_copy = authz;
  absl::StatusOr<std::unique_ptr<Authorizer>> authorizer = Authorizer::create(std::move(authz));
  if (!authorizer.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--authorization-always-allow-paths: ", authorizer.status().message()));
  }
  AuthorizerOptions kept = authz_options_copy;
  auto impl = std::make_unique<Impl>(std::move(options), std::move(authn_transport),
                                     std::move(authz_transport), std::move(kept),
                                     std::shared_ptr<const Authorizer>(*std::move(authorizer)));
  return std::unique_ptr<DelegatedAdmission>(new DelegatedAdmission(std::move(impl)));
}

DelegatedAdmission::DelegatedAdmission(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DelegatedAdmission::~DelegatedAdmission() = default;

void DelegatedAdmission::attachLoop(Dispatcher& loop) { impl_->attach(loop); }
void DelegatedAdmission::detachLoop(Dispatcher& loop) { impl_->detach(loop); }

absl::Status DelegatedAdmission::updateAuthentication(
    const ExtensionApiserverAuthentication& config) {
  return impl_->update(config);
}

absl::Status DelegatedAdmission::updatePolicy(std::shared_ptr<const StaticPolicy> policy) {
  return impl_->updatePolicy(std::move(policy));
}

absl::Status DelegatedAdmission::updateRoutes(std::shared_ptr<const RouteTable> routes) {
  return impl_->updateRoutes(std::move(routes));
}

void DelegatedAdmission::admit(RequestHead& head, const ConnectionInfo& connection,
                               Dispatcher& loop, std::function<void(AdmissionVerdict)> done) {
  impl_->admit(head, connection, loop, std::move(done));
}

void DelegatedAdmission::stripTrailers(HeaderMap& trailers, Dispatcher& loop) {
  impl_->stripTrailers(trailers, loop);
}

}  // namespace aaproxy
