#include "authz/forbidden.h"

#include "gtest/gtest.h"

namespace aaproxy {
namespace {

RequestInfo resolve(std::string_view method, std::string_view url) {
  auto info = resolveRequestInfo(method, url);
  EXPECT_TRUE(info.ok()) << info.status();
  return *info;
}

UserInfo user(std::string name) {
  UserInfo u;
  u.name = std::move(name);
  return u;
}

struct MessageCase {
  std::string method;
  std::string url;
  std::string user;
  std::string reason;
  std::string want;
};

class ForbiddenMessageTest : public ::testing::TestWithParam<MessageCase> {};

TEST_P(ForbiddenMessageTest, MatchesUpstream) {
  const MessageCase& c = GetParam();
  EXPECT_EQ(forbiddenMessage(user(c.user), resolve(c.method, c.url), c.reason), c.want);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ForbiddenMessageTest,
    ::testing::Values(
        MessageCase{"GET", "/apis/sample-api-server/v1alpha1/namespaces/default/samples", "alice", "",
                    R"(samples.sample-api-server is forbidden: User "alice" cannot list resource "samples" in API group "sample-api-server" in the namespace "default")"},
        MessageCase{"GET", "/apis/sample-api-server/v1alpha1/namespaces/default/samples/s1", "alice", "",
                    R"(samples.sample-api-server "s1" is forbidden: User "alice" cannot get resource "samples" in API group "sample-api-server" in the namespace "default")"},
        MessageCase{"GET", "/apis/sample-api-server/v1alpha1/samples", "alice", "",
                    R"(samples.sample-api-server is forbidden: User "alice" cannot list resource "samples" in API group "sample-api-server" at the cluster scope)"},
        MessageCase{"PUT", "/apis/sample-api-server/v1alpha1/namespaces/ns/samples/s1/status", "alice", "",
                    R"(samples.sample-api-server "s1" is forbidden: User "alice" cannot update resource "samples/status" in API group "sample-api-server" in the namespace "ns")"},
        MessageCase{"GET", "/api/v1/namespaces/ns/pods", "bob", "",
                    R"(pods is forbidden: User "bob" cannot list resource "pods" in API group "" in the namespace "ns")"},
        MessageCase{"GET", "/metrics", "bob", "",
                    R"(forbidden: User "bob" cannot get path "/metrics")"},
        MessageCase{"GET", "/apis/sample-api-server/v1alpha1/samples", "alice", "no RBAC policy matched",
                    R"(samples.sample-api-server is forbidden: User "alice" cannot list resource "samples" in API group "sample-api-server" at the cluster scope: no RBAC policy matched)"},
        // The semantics doc says user names are %q-quoted then HTML-escaped. Upstream escapes the
        // whole "User ... cannot ..." sentence (path, namespace and resource too), but neither
        // the appended reason nor the name in the "<resource> \"<name>\" is forbidden" prefix.
        MessageCase{"GET", "/metrics", "<a&b> \"q\"\n", "<r>",
                    R"(forbidden: User "&lt;a&amp;b&gt; \"q\"\n" cannot get path "/metrics": <r>)"},
        MessageCase{"GET", "/api/v1/namespaces/ns/pods/%3Cx%3E", "u", "",
                    R"(pods "<x>" is forbidden: User "u" cannot get resource "pods" in API group "" in the namespace "ns")"},
        // Not in the semantics doc: upstream passes the message to fmt.Errorf as the format
        // string (responsewriters.Forbidden), so '%' sequences are rewritten.
        MessageCase{"GET", "/healthz%25s", "u", "50%",
                    R"m(forbidden: User "u" cannot get path "/healthz%!s(MISSING)": 50%!(NOVERB))m"},
        MessageCase{"GET", "/x", "u", "100%% sure", R"(forbidden: User "u" cannot get path "/x": 100% sure)"},
        // Empty resource and group with a name: GroupResource is empty, so "forbidden: ".
        MessageCase{"GET", "/api/v1//x", "u", "",
                    R"(forbidden: User "u" cannot get resource "" in API group "" at the cluster scope)"},
        MessageCase{"GET", "/metrics", "", "", R"(forbidden: User "" cannot get path "/metrics")"}));

TEST(Forbidden, ResponseBody) {
  auto r = forbiddenResponse(user("alice"),
                             resolve("GET", "/apis/sample-api-server/v1alpha1/namespaces/default/samples/s1"),
                             "");
  EXPECT_EQ(r.code, 403);
  ASSERT_EQ(r.headers.size(), 2u);
  EXPECT_EQ(r.headers[0], (std::pair<std::string, std::string>{"Content-Type", "application/json"}));
  EXPECT_EQ(r.headers[1], (std::pair<std::string, std::string>{"X-Content-Type-Options", "nosniff"}));
  EXPECT_EQ(r.body,
            R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":)"
            R"("samples.sample-api-server \"s1\" is forbidden: User \"alice\" cannot get resource )"
            R"(\"samples\" in API group \"sample-api-server\" in the namespace \"default\"",)"
            R"("reason":"Forbidden","details":{"name":"s1","group":"sample-api-server","kind":"samples"},"code":403})"
            "\n");
}

TEST(Forbidden, NonResourceDetailsPresentButEmpty) {
  auto r = forbiddenResponse(user("x<y"), resolve("GET", "/openapi/v2"), "");
  EXPECT_EQ(r.body,
            R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":)"
            R"("forbidden: User \"x\u0026lt;y\" cannot get path \"/openapi/v2\"","reason":"Forbidden",)"
            R"("details":{},"code":403})"
            "\n");
}

TEST(Forbidden, Pretty) {
  auto r = forbiddenResponse(user("u"), resolve("GET", "/metrics"), "", JsonStyle::kPretty);
  EXPECT_EQ(r.body,
            "{\n  \"kind\": \"Status\",\n  \"apiVersion\": \"v1\",\n  \"metadata\": {},\n"
            "  \"status\": \"Failure\",\n"
            "  \"message\": \"forbidden: User \\\"u\\\" cannot get path \\\"/metrics\\\"\",\n"
            "  \"reason\": \"Forbidden\",\n  \"details\": {},\n  \"code\": 403\n}");
}

TEST(Forbidden, PrettyPrintRule) {
  EXPECT_TRUE(prettyPrintRequested("", "curl/8.5.0"));
  EXPECT_TRUE(prettyPrintRequested("", "Wget/1.21"));
  EXPECT_TRUE(prettyPrintRequested("", "Mozilla/5.0 (X11)"));
  EXPECT_FALSE(prettyPrintRequested("", "kubectl/v1.31.0 (linux/amd64)"));
  EXPECT_FALSE(prettyPrintRequested("", "Mozilla/4.0"));
  EXPECT_FALSE(prettyPrintRequested("", "CURL/8"));
  EXPECT_FALSE(prettyPrintRequested("pretty=false", "curl/8"));
  EXPECT_FALSE(prettyPrintRequested("pretty=yes", "curl/8"));  // ParseBool error: false
  EXPECT_TRUE(prettyPrintRequested("pretty=1", "kubectl"));
  EXPECT_TRUE(prettyPrintRequested("pretty=T&pretty=0", ""));
  EXPECT_TRUE(prettyPrintRequested("pretty=", "curl/8"));  // empty value: falls to User-Agent
  EXPECT_FALSE(prettyPrintRequested("notpretty=1", ""));
}

TEST(InternalError, Body) {
  auto r = internalErrorResponse("/apis/sample-api-server/v1alpha1/samples?x=<1>",
                                 "webhook subject access review returned both allow and deny response");
  EXPECT_EQ(r.code, 500);
  EXPECT_EQ(r.headers[0].second, "text/plain; charset=utf-8");
  EXPECT_EQ(r.headers[1].second, "nosniff");
  EXPECT_EQ(r.body,
            "Internal Server Error: \"/apis/sample-api-server/v1alpha1/samples?x=&lt;1&gt;\": "
            "webhook subject access review returned both allow and deny response\n");
  r = internalErrorResponse("/api/v1/watch", "failed to create RequestInfo: unable to determine kind and namespace from url, /api/v1/watch");
  EXPECT_EQ(r.body,
            "Internal Server Error: \"/api/v1/watch\": failed to create RequestInfo: unable to "
            "determine kind and namespace from url, /api/v1/watch\n");
}

}  // namespace
}  // namespace aaproxy
