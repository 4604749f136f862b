#include "authz/authorizer.h"

#include "authz/forbidden.h"
#include "cache/coalescing_cache.h"
#include "gtest/gtest.h"

namespace aaproxy {
namespace {

using Kind = AuthorizationVerdict::Kind;
using namespace std::chrono_literals;

RequestInfo resolve(std::string_view method, std::string_view url) {
  auto info = resolveRequestInfo(method, url);
  EXPECT_TRUE(info.ok()) << info.status();
  return *info;
}

UserInfo user(std::string name, std::vector<std::string> groups = {}) {
  UserInfo u;
  u.name = std::move(name);
  u.groups = std::move(groups);
  return u;
}

std::shared_ptr<const StaticPolicy> policy() {
  auto p = StaticPolicy::parse(R"(
- users: [alice]
  verbs: [list]
  apiGroups: [sample-api-server]
  resources: [samples]
)");
  EXPECT_TRUE(p.ok()) << p.status();
  return std::make_shared<const StaticPolicy>(*p);
}

std::unique_ptr<Authorizer> make(AuthorizerOptions options) {
  auto a = Authorizer::create(std::move(options));
  EXPECT_TRUE(a.ok()) << a.status();
  return *std::move(a);
}

const char kSamples[] = "/apis/sample-api-server/v1alpha1/namespaces/default/samples";

TEST(Authorizer, Modes) {
  EXPECT_EQ(*parseAuthorizationMode("static"), AuthorizationMode::kStatic);
  EXPECT_EQ(*parseAuthorizationMode("webhook"), AuthorizationMode::kWebhook);
  EXPECT_EQ(*parseAuthorizationMode("static,webhook"), AuthorizationMode::kStaticThenWebhook);
  EXPECT_EQ(parseAuthorizationMode("webhook,static").status().message(),
            R"(invalid --authorization-mode "webhook,static": want static, webhook or static,webhook)");
  EXPECT_FALSE(Authorizer::create({.mode = AuthorizationMode::kStatic}).ok());
}

TEST(Authorizer, PrivilegedGroupsAllowEverything) {
  for (auto mode : {AuthorizationMode::kStatic, AuthorizationMode::kWebhook,
                    AuthorizationMode::kStaticThenWebhook}) {
    auto a = make({.mode = mode, .policy = policy()});
    // The aggregator's availability probe.
    auto v = a->authorize(user("system:kube-aggregator", {"system:masters"}),
                          resolve("GET", "/apis/sample-api-server/v1alpha1"));
    EXPECT_EQ(v.kind, Kind::kAllow);
    v = a->authorize(user("x", {"a", "system:masters"}), resolve("DELETE", kSamples));
    EXPECT_EQ(v.kind, Kind::kAllow);
    v = a->authorize(user("system:masters"), resolve("DELETE", kSamples));  // a user, not a group
    EXPECT_NE(v.kind, Kind::kAllow);
  }
}

TEST(Authorizer, AlwaysAllowPathsAreForNonResourceRequestsOnly) {
  auto a = make({.mode = AuthorizationMode::kWebhook});
  UserInfo anonymous = user(kAnonymousUser, {kUnauthenticatedGroup});
  EXPECT_EQ(a->authorize(anonymous, resolve("GET", "/healthz")).kind, Kind::kAllow);
  EXPECT_EQ(a->authorize(anonymous, resolve("POST", "/readyz?verbose")).kind, Kind::kAllow);
  EXPECT_EQ(a->authorize(anonymous, resolve("GET", "/livez")).kind, Kind::kAllow);
  EXPECT_EQ(a->authorize(anonymous, resolve("GET", "/healthz/etcd")).kind, Kind::kNeedsSubjectAccessReview);
  // upstream trims one leading "/" only.
  EXPECT_EQ(a->authorize(anonymous, resolve("GET", "//healthz")).kind, Kind::kNeedsSubjectAccessReview);
  EXPECT_EQ(a->authorize(anonymous, resolve("GET", "/healthz%2F..%2Fsecrets")).kind,
            Kind::kNeedsSubjectAccessReview);

  auto b = make({.mode = AuthorizationMode::kWebhook, .alwaysAllowPaths = {"/metrics*", "/", "openapi/v2"}});
  EXPECT_EQ(b->authorize(anonymous, resolve("GET", "/metrics/cadvisor")).kind, Kind::kAllow);
  EXPECT_EQ(b->authorize(anonymous, resolve("GET", "/metricsfoo")).kind, Kind::kAllow);
  EXPECT_EQ(b->authorize(anonymous, resolve("GET", "/")).kind, Kind::kAllow);
  EXPECT_EQ(b->authorize(anonymous, resolve("GET", "/openapi/v2")).kind, Kind::kAllow);
  EXPECT_EQ(b->authorize(anonymous, resolve("GET", "/healthz")).kind, Kind::kNeedsSubjectAccessReview);
  // A resource request never matches a path rule, even "*".
  auto c = make({.mode = AuthorizationMode::kWebhook, .alwaysAllowPaths = {"*"}});
  EXPECT_EQ(c->authorize(anonymous, resolve("GET", "/anything")).kind, Kind::kAllow);
  EXPECT_EQ(c->authorize(anonymous, resolve("GET", kSamples)).kind, Kind::kNeedsSubjectAccessReview);

  auto bad = Authorizer::create({.mode = AuthorizationMode::kWebhook, .alwaysAllowPaths = {"/a*b"}});
  EXPECT_EQ(bad.status().message(), R"(only trailing * allowed in "a*b")");
}

TEST(Authorizer, StaticModes) {
  auto s = make({.mode = AuthorizationMode::kStatic, .policy = policy()});
  EXPECT_EQ(s->authorize(user("alice"), resolve("GET", kSamples)).kind, Kind::kAllow);
  auto v = s->authorize(user("bob"), resolve("GET", kSamples));
  EXPECT_EQ(v.kind, Kind::kForbidden);
  EXPECT_EQ(v.reason, "");

  auto sw = make({.mode = AuthorizationMode::kStaticThenWebhook, .policy = policy()});
  EXPECT_EQ(sw->authorize(user("alice"), resolve("GET", kSamples)).kind, Kind::kAllow);
  EXPECT_EQ(sw->authorize(user("bob"), resolve("GET", kSamples)).kind, Kind::kNeedsSubjectAccessReview);

  // webhook mode ignores a policy even when one is given.
  auto w = make({.mode = AuthorizationMode::kWebhook, .policy = policy()});
  EXPECT_EQ(w->authorize(user("alice"), resolve("GET", kSamples)).kind, Kind::kNeedsSubjectAccessReview);
}

TEST(Authorizer, FinishWithSubjectAccessReview) {
  auto a = make({.mode = AuthorizationMode::kWebhook});
  auto v = a->finishWithSubjectAccessReview(SubjectAccessReviewStatus{true, false, "RBAC: ok", ""});
  EXPECT_EQ(v.kind, Kind::kAllow);
  EXPECT_EQ(v.reason, "RBAC: ok");
  v = a->finishWithSubjectAccessReview(SubjectAccessReviewStatus{false, true, "denied by policy", ""});
  EXPECT_EQ(v.kind, Kind::kForbidden);
  EXPECT_EQ(v.reason, "denied by policy");
  v = a->finishWithSubjectAccessReview(SubjectAccessReviewStatus{false, false, "", "rbac eval failed"});
  EXPECT_EQ(v.kind, Kind::kForbidden);  // evaluationError alone does not make an error
  EXPECT_EQ(v.reason, "");
  v = a->finishWithSubjectAccessReview(SubjectAccessReviewStatus{true, true, "confused", ""});
  EXPECT_EQ(v.kind, Kind::kInternalError);
  EXPECT_EQ(v.error, "webhook subject access review returned both allow and deny response");
  v = a->finishWithSubjectAccessReview(absl::UnavailableError(
      R"(Post "https://10.0.0.1:443/apis/authorization.k8s.io/v1/subjectaccessreviews": dial tcp 10.0.0.1:443: connect: connection refused)"));
  EXPECT_EQ(v.kind, Kind::kInternalError);
  EXPECT_EQ(internalErrorResponse("/apis/sample-api-server/v1alpha1/samples", v.error).body,
            "Internal Server Error: \"/apis/sample-api-server/v1alpha1/samples\": Post "
            "\"https://10.0.0.1:443/apis/authorization.k8s.io/v1/subjectaccessreviews\": dial tcp "
            "10.0.0.1:443: connect: connection refused\n");
}

TEST(Authorizer, CacheTtl) {
  auto a = make({.mode = AuthorizationMode::kWebhook, .authorizedTtl = 5min, .unauthorizedTtl = 30s});
  RequestInfo info = resolve("GET", kSamples);
  EXPECT_EQ(a->subjectAccessReviewCacheTtl(info, {true, false, "", ""}), 5min);
  EXPECT_EQ(a->subjectAccessReviewCacheTtl(info, {false, true, "", ""}), 30s);
  EXPECT_EQ(a->subjectAccessReviewCacheTtl(info, {false, false, "", ""}), 30s);
  EXPECT_EQ(a->subjectAccessReviewCacheTtl(info, {true, true, "", ""}), 5min);
  info.name = std::string(10000, 'n');
  EXPECT_EQ(a->subjectAccessReviewCacheTtl(info, {true, false, "", ""}), 0ns);
}

// The whole flow an integrator runs, with a fake kube-apiserver answer.
TEST(Authorizer, DeniedListEndToEnd) {
  ManualClock clock;
  CoalescingCache<SubjectAccessReviewStatus> cache({.clock = &clock});
  auto a = make({.mode = AuthorizationMode::kWebhook});
  UserInfo bob = user("bob", {"dev", kAuthenticatedGroup});
  RequestInfo info = resolve("GET", kSamples);

  ASSERT_EQ(a->authorize(bob, info).kind, Kind::kNeedsSubjectAccessReview);
  std::string key;  // keyed as the proxy keys it
  appendSubjectAccessReviewCacheKey(key, bob, info);
  auto lookup = cache.lookup(key, nullptr, [](const auto&) {});
  ASSERT_EQ(lookup.outcome, decltype(cache)::Outcome::kLeader);
  auto status = parseSubjectAccessReviewResponse(
      R"({"kind":"SubjectAccessReview","apiVersion":"authorization.k8s.io/v1","status":{"allowed":false}})");
  ASSERT_TRUE(status.ok());
  cache.complete(key, *status, a->subjectAccessReviewCacheTtl(info, *status));
  auto verdict = a->finishWithSubjectAccessReview(*status);
  ASSERT_EQ(verdict.kind, Kind::kForbidden);
  EXPECT_EQ(forbiddenResponse(bob, info, verdict.reason).body,
            R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":)"
            R"("samples.sample-api-server is forbidden: User \"bob\" cannot list resource \"samples\" )"
            R"(in API group \"sample-api-server\" in the namespace \"default\"","reason":"Forbidden",)"
            R"("details":{"group":"sample-api-server","kind":"samples"},"code":403})"
            "\n");
  // A second identical request within the TTL is answered from the cache.
  EXPECT_EQ(cache.lookup(key, nullptr, [](const auto&) {}).outcome, decltype(cache)::Outcome::kHit);
  clock.advance(10s);
  EXPECT_EQ(cache.lookup(key, nullptr, [](const auto&) {}).outcome, decltype(cache)::Outcome::kLeader);
}

}  // namespace
}  // namespace aaproxy
