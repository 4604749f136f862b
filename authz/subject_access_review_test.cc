#include "authz/subject_access_review.h"

#include "gtest/gtest.h"

namespace aaproxy {
namespace {

RequestInfo resolve(std::string_view method, std::string_view url) {
  auto info = resolveRequestInfo(method, url);
  EXPECT_TRUE(info.ok()) << info.status();
  return *info;
}

UserInfo alice() {
  UserInfo u;
  u.name = "alice";
  u.uid = "u-1";
  u.groups = {"dev", "system:authenticated"};
  u.extra = {{"scopes", {"a", "b"}}, {"authentication.kubernetes.io/credential-id", {"X"}}};
  return u;
}

// The semantics doc (section 3) shows only kind/apiVersion/spec. Upstream's client-go encodes the
// whole object with json.Encoder: "metadata":{} (creationTimestamp is omitted since
// kubernetes#130989), "status":{"allowed":false} (allowed has no omitempty) and a final newline.
TEST(SubjectAccessReview, ResourceBodyIsClientGoBytes) {
  EXPECT_EQ(
      subjectAccessReviewRequestBody(
          alice(), resolve("GET", "/apis/sample-api-server/v1alpha1/namespaces/default/samples")),
      R"({"kind":"SubjectAccessReview","apiVersion":"authorization.k8s.io/v1","metadata":{},)"
      R"("spec":{"resourceAttributes":{"namespace":"default","verb":"list","group":"sample-api-server",)"
      R"("version":"v1alpha1","resource":"samples"},"user":"alice","groups":["dev","system:authenticated"],)"
      R"("extra":{"authentication.kubernetes.io/credential-id":["X"],"scopes":["a","b"]},"uid":"u-1"},)"
      R"("status":{"allowed":false}})"
      "\n");
}

TEST(SubjectAccessReview, NonResourceAndEmptyFieldsOmitted) {
  UserInfo u;
  u.name = "system:kube-aggregator";
  EXPECT_EQ(subjectAccessReviewSpecJson(u, resolve("GET", "/apis/sample-api-server/v1alpha1")),
            R"({"nonResourceAttributes":{"path":"/apis/sample-api-server/v1alpha1","verb":"get"},)"
            R"("user":"system:kube-aggregator"})");
  UserInfo anonymous;
  EXPECT_EQ(subjectAccessReviewSpecJson(anonymous, resolve("OPTIONS", "/api/v1/x")),
            R"({"resourceAttributes":{"version":"v1","resource":"x"}})");
}

TEST(SubjectAccessReview, SubresourceNameAndHtmlEscaping) {
  UserInfo u;
  u.name = "<eve>&";
  EXPECT_EQ(subjectAccessReviewSpecJson(
                u, resolve("PUT", "/apis/g/v1/namespaces/ns/samples/s%3C1%3E/status")),
            R"({"resourceAttributes":{"namespace":"ns","verb":"update","group":"g","version":"v1",)"
            R"("resource":"samples","subresource":"status","name":"s\u003c1\u003e"},)"
            R"("user":"\u003ceve\u003e\u0026"})");
}

TEST(SubjectAccessReview, SelectorRequirements) {
  UserInfo u;
  u.name = "bob";
  EXPECT_EQ(subjectAccessReviewSpecJson(
                u, resolve("GET",
                           "/api/v1/namespaces/ns/pods?watch=1&fieldSelector=spec.nodeName%3Dn1"
                           "&labelSelector=app+in+(x,y),!old,x>1")),
            R"({"resourceAttributes":{"namespace":"ns","verb":"watch","version":"v1","resource":"pods",)"
            R"("fieldSelector":{"requirements":[{"key":"spec.nodeName","operator":"In","values":["n1"]}]},)"
            R"("labelSelector":{"requirements":[{"key":"app","operator":"In","values":["x","y"]},)"
            R"({"key":"old","operator":"DoesNotExist"}]}},"user":"bob"})");
}

std::string cacheKey(const UserInfo& user, const RequestInfo& info) {
  std::string key;
  appendSubjectAccessReviewCacheKey(key, user, info);
  return key;
}

// The decision cache must share an entry between two requests exactly when upstream's key (the
// spec's JSON) is the same: checked over every pair of a set of near-miss specs, including
// ones whose concatenated fields are equal (e.g. group "ab" + version "c" and "a" + "bc").
TEST(SubjectAccessReview, CacheKeyEqualExactlyWhenSpecJsonEqual) {
  std::vector<UserInfo> users;
  users.push_back(alice());
  users.push_back(alice());
  users.back().uid = "";
  users.push_back(alice());
  users.back().groups = {"devsystem:authenticated"};
  users.push_back(alice());
  users.back().groups = {"dev", "system:authenticated", ""};
  users.push_back(alice());
  users.back().extra = {{"scopes", {"ab"}}, {"authentication.kubernetes.io/credential-id", {"X"}}};
  users.push_back(alice());
  users.back().extra = {{"scopes", {}}, {"authentication.kubernetes.io/credential-id", {"X"}}};
  users.push_back(alice());
  users.back().extra = {{"authentication.kubernetes.io/credential-id", {"X"}}};
  users.push_back(alice());
  users.back().name = "alic";
  users.back().uid = "eu-1";
  users.push_back(UserInfo{});
  std::vector<RequestInfo> infos = {
      resolve("GET", "/apis/sample-api-server/v1alpha1/namespaces/default/samples"),
      resolve("GET", "/apis/sample-api-server/v1alpha1/namespaces/default/samples/x"),
      resolve("GET", "/apis/sample-api-server/v1alpha1/namespaces/defaults/amples"),
      resolve("GET", "/apis/ab/c/samples"),
      resolve("GET", "/apis/a/bc/samples"),
      resolve("DELETE", "/apis/ab/c/samples"),
      resolve("GET", "/apis/sample-api-server/v1alpha1"),
      resolve("GET", "/apis/sample-api-server/v1alpha1/"),
      resolve("GET", "/api/v1/pods?fieldSelector=a%3Db"),
      resolve("GET", "/api/v1/pods?fieldSelector=a%3Db,c%3Dd"),
      resolve("GET", "/api/v1/pods?labelSelector=a+in+(b,c)"),
      resolve("GET", "/api/v1/pods?labelSelector=a+in+(bc)"),
      resolve("GET", "/api/v1/pods?labelSelector=a%3Db"),
      resolve("GET", "/healthz"),
      resolve("POST", "/healthz"),
  };
  struct Case {
    std::string json, key, name;
  };
  std::vector<Case> cases;
  for (size_t u = 0; u < users.size(); ++u) {
    for (size_t i = 0; i < infos.size(); ++i) {
      cases.push_back({subjectAccessReviewSpecJson(users[u], infos[i]),
                       cacheKey(users[u], infos[i]),
                       "user " + std::to_string(u) + " info " + std::to_string(i)});
    }
  }
  for (const Case& a : cases) {
    for (const Case& b : cases) {
      EXPECT_EQ(a.json == b.json, a.key == b.key) << a.name << " vs " << b.name;
    }
  }
  // Appends: a reused buffer gets the same key after clear().
  std::string buffer = "stale";
  buffer.clear();
  appendSubjectAccessReviewCacheKey(buffer, users[0], infos[0]);
  EXPECT_EQ(buffer, cases[0].key);
}

TEST(SubjectAccessReview, ShouldCacheLimit) {
  RequestInfo info;
  info.path = std::string(9999, 'p');
  EXPECT_TRUE(shouldCacheSubjectAccessReview(info));
  info.verb = "g";
  EXPECT_FALSE(shouldCacheSubjectAccessReview(info));
}

TEST(SubjectAccessReview, ParseResponse) {
  auto s = parseSubjectAccessReviewResponse(
      R"({"kind":"SubjectAccessReview","apiVersion":"authorization.k8s.io/v1","metadata":{},)"
      R"("spec":{},"status":{"allowed":true,"reason":"RBAC: allowed by ClusterRoleBinding"}})");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(s->allowed);
  EXPECT_FALSE(s->denied);
  EXPECT_EQ(s->reason, "RBAC: allowed by ClusterRoleBinding");

  s = parseSubjectAccessReviewResponse(R"({"status":{"denied":true,"evaluationError":"e","allowed":null}})");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s, (SubjectAccessReviewStatus{false, true, "", "e"}));

  s = parseSubjectAccessReviewResponse(R"({"kind":"SubjectAccessReview"})");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s, SubjectAccessReviewStatus{});

  EXPECT_FALSE(parseSubjectAccessReviewResponse("{").ok());
  EXPECT_FALSE(parseSubjectAccessReviewResponse("").ok());
  EXPECT_FALSE(parseSubjectAccessReviewResponse(R"({"status":{"allowed":"true"}})").ok());
  EXPECT_FALSE(parseSubjectAccessReviewResponse(R"({"status":[]})").ok());
  EXPECT_FALSE(parseSubjectAccessReviewResponse("[]").ok());
}

TEST(SubjectAccessReview, Decisions) {
  auto d = webhookDecisionFromStatus({true, false, "ok", ""});
  EXPECT_EQ(d.decision, AuthorizationDecision::kAllow);
  EXPECT_EQ(d.reason, "ok");
  EXPECT_TRUE(d.error.empty());
  d = webhookDecisionFromStatus({false, true, "no", ""});
  EXPECT_EQ(d.decision, AuthorizationDecision::kDeny);
  d = webhookDecisionFromStatus({false, false, "", "partial"});
  EXPECT_EQ(d.decision, AuthorizationDecision::kNoOpinion);
  EXPECT_EQ(d.evaluationError, "partial");
  d = webhookDecisionFromStatus({true, true, "both", ""});
  EXPECT_EQ(d.decision, AuthorizationDecision::kDeny);
  EXPECT_EQ(d.reason, "both");
  EXPECT_EQ(d.error, "webhook subject access review returned both allow and deny response");
}

}  // namespace
}  // namespace aaproxy
