#include "authz/static_policy.h"

#include "gtest/gtest.h"

namespace aaproxy {
namespace {

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

constexpr char kPolicy[] = R"(
rules:
  - users: ["alice"]
    groups: ["sample-readers"]
    verbs: ["get", "list", "watch"]
    apiGroups: ["sample-api-server"]
    resources: ["samples"]
    namespaces: ["default"]
  - users: ["bob"]
    verbs: ["update"]
    apiGroups: ["*"]
    resources: ["samples/status", "*/scale"]
  - users: ["carol"]
    verbs: ["*"]
    apiGroups: [""]
    resources: ["*"]
    names: ["only-this"]
  - groups: ["system:authenticated"]
    verbs: ["get"]
    nonResourceURLs: ["/openapi/*", "/apis/sample-api-server/v1alpha1", "/exact"]
)";

TEST(StaticPolicy, Evaluates) {
  auto policy = StaticPolicy::parse(kPolicy);
  ASSERT_TRUE(policy.ok()) << policy.status();
  const auto& p = *policy;
  const std::string samples = "/apis/sample-api-server/v1alpha1/namespaces/default/samples";
  EXPECT_TRUE(p.allows(user("alice"), resolve("GET", samples)));
  EXPECT_TRUE(p.allows(user("dave", {"sample-readers"}), resolve("GET", samples + "/s1?watch=1")));
  EXPECT_FALSE(p.allows(user("alice"), resolve("POST", samples)));
  EXPECT_FALSE(p.allows(user("alice"), resolve("GET", "/apis/sample-api-server/v1alpha1/namespaces/other/samples")));
  // Cluster scope is not "default".
  EXPECT_FALSE(p.allows(user("alice"), resolve("GET", "/apis/sample-api-server/v1alpha1/samples")));
  // "samples" does not cover its subresources.
  EXPECT_FALSE(p.allows(user("alice"), resolve("GET", samples + "/s1/status")));
  EXPECT_FALSE(p.allows(user("mallory"), resolve("GET", samples)));

  EXPECT_TRUE(p.allows(user("bob"), resolve("PUT", samples + "/s1/status")));
  EXPECT_TRUE(p.allows(user("bob"), resolve("PUT", "/apis/apps/v1/namespaces/x/deployments/d/scale")));
  EXPECT_FALSE(p.allows(user("bob"), resolve("PUT", samples + "/s1")));

  EXPECT_TRUE(p.allows(user("carol"), resolve("DELETE", "/api/v1/namespaces/x/pods/only-this")));
  EXPECT_FALSE(p.allows(user("carol"), resolve("DELETE", "/api/v1/namespaces/x/pods")));  // no name
  EXPECT_FALSE(p.allows(user("carol"), resolve("GET", "/apis/g/v1/x/only-this")));

  auto authed = user("x", {"system:authenticated"});
  EXPECT_TRUE(p.allows(authed, resolve("GET", "/openapi/v2")));
  EXPECT_TRUE(p.allows(authed, resolve("GET", "/openapi/v3/apis/x")));
  EXPECT_TRUE(p.allows(authed, resolve("GET", "/apis/sample-api-server/v1alpha1")));
  EXPECT_FALSE(p.allows(authed, resolve("GET", "/exact/more")));
  EXPECT_FALSE(p.allows(authed, resolve("POST", "/openapi/v2")));
  EXPECT_FALSE(p.allows(user("anon", {"system:unauthenticated"}), resolve("GET", "/openapi/v2")));
  // A non-resource rule never matches resource requests, and vice versa.
  EXPECT_FALSE(p.allows(authed, resolve("GET", "/apis/sample-api-server/v1alpha1/samples")));
  EXPECT_FALSE(p.allows(user("alice"), resolve("GET", "/healthz")));
}

TEST(StaticPolicy, TopLevelListAndWildcards) {
  auto policy = StaticPolicy::parse(R"(
- users: ["*"]
  verbs: ["get"]
  nonResourceURLs: ["*"]
- groups: ["*"]
  verbs: ["list"]
  apiGroups: ["*"]
  resources: ["*"]
  namespaces: ["*"]
)");
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_TRUE(policy->allows(user("anyone"), resolve("GET", "/anything")));
  EXPECT_TRUE(policy->allows(user("anyone"), resolve("GET", "/api/v1/pods")));
  EXPECT_TRUE(policy->allows(user("anyone"), resolve("GET", "/api/v1/namespaces/n/pods")));
  EXPECT_FALSE(policy->allows(user("anyone"), resolve("GET", "/api/v1/namespaces/n/pods/p")));
}

TEST(StaticPolicy, EmptyPolicyAllowsNothing) {
  for (const char* yaml : {"", "rules: []", "rules:", "[]"}) {
    auto policy = StaticPolicy::parse(yaml);
    ASSERT_TRUE(policy.ok()) << yaml << ": " << policy.status();
    EXPECT_FALSE(policy->allows(user("alice"), resolve("GET", "/healthz")));
  }
}

struct ErrorCase {
  std::string yaml;
  std::string message;
};

class StaticPolicyErrorTest : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(StaticPolicyErrorTest, NamesFieldAndIndex) {
  auto policy = StaticPolicy::parse(GetParam().yaml);
  ASSERT_FALSE(policy.ok());
  EXPECT_EQ(policy.status().message(), GetParam().message);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, StaticPolicyErrorTest,
    ::testing::Values(
        ErrorCase{"rules:\n- users: [a]\n  verb: [get]\n", R"(authorization policy: rules[0]: unknown field "verb")"},
        ErrorCase{"rules:\n- users: [a]\n  verbs: [get]\n  nonResourceURLs: [/x]\n- users: [a]\n  apiGroups: ['']\n  resources: [pods]\n",
                  "authorization policy: rules[1].verbs: required"},
        ErrorCase{"- verbs: [get]\n  nonResourceURLs: [/x]\n", "authorization policy: rules[0].users: users or groups is required"},
        ErrorCase{"- users: alice\n  verbs: [get]\n", "authorization policy: rules[0].users: must be a list of strings"},
        ErrorCase{"- users: [[a]]\n  verbs: [get]\n", "authorization policy: rules[0].users[0]: must be a string"},
        ErrorCase{"- users: [a]\n  verbs: [get]\n  resources: [pods]\n", "authorization policy: rules[0].apiGroups: required (use \"\" for the core group)"},
        ErrorCase{"- users: [a]\n  verbs: [get]\n  apiGroups: ['']\n", "authorization policy: rules[0].resources: required"},
        ErrorCase{"- users: [a]\n  verbs: [get]\n  apiGroups: ['']\n  resources: [x]\n  nonResourceURLs: [/x]\n",
                  "authorization policy: rules[0].nonResourceURLs: cannot be combined with apiGroups, resources, namespaces or names"},
        ErrorCase{"- users: [a]\n  verbs: [get]\n  nonResourceURLs: [x]\n", "authorization policy: rules[0].nonResourceURLs[0]: must start with \"/\""},
        ErrorCase{"- users: [a]\n  verbs: [get]\n  nonResourceURLs: ['/a*b']\n", "authorization policy: rules[0].nonResourceURLs[0]: \"*\" is only allowed at the end"},
        ErrorCase{"- just a string\n", "authorization policy: rules[0]: must be a mapping"},
        ErrorCase{"policy: []\n", "authorization policy: unknown field \"policy\" (expected \"rules\")"},
        ErrorCase{"rules: {a: b}\n", "authorization policy: rules must be a list"}));

TEST(StaticPolicy, SyntaxErrorIsReported) {
  auto policy = StaticPolicy::parse("rules: [\n");
  ASSERT_FALSE(policy.ok());
  EXPECT_NE(policy.status().message().find("authorization policy: "), std::string::npos);
}

TEST(StaticPolicy, MissingFile) {
  EXPECT_EQ(StaticPolicy::loadFile("/nonexistent/policy.yaml").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace aaproxy
