#include "authn/token_review.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace aaproxy {
namespace {

using ::testing::HasSubstr;
using Outcome = TokenReviewResult::Outcome;

TEST(TokenReviewRequestBodyTest, MatchesClientGoSerialization) {
  EXPECT_EQ(tokenReviewRequestBody("abc.def", {}),
            R"({"kind":"TokenReview","apiVersion":"authentication.k8s.io/v1",)"
            R"("metadata":{},"spec":{"token":"abc.def"},)"
            R"("status":{"user":{}}})");
  EXPECT_EQ(tokenReviewRequestBody("t", {"https://kubernetes.default.svc", "api"}),
            R"({"kind":"TokenReview","apiVersion":"authentication.k8s.io/v1",)"
            R"("metadata":{},"spec":{"token":"t",)"
            R"("audiences":["https://kubernetes.default.svc","api"]},"status":{"user":{}}})");
}

TEST(TokenReviewRequestBodyTest, EscapesLikeGo) {
  EXPECT_THAT(tokenReviewRequestBody("a\"b\\c<d>&\n", {}),
              HasSubstr(R"("token":"a\"b\\c\u003cd\u003e\u0026\n")"));
}

TEST(ParseTokenReviewResponseTest, Authenticated) {
  auto status = parseTokenReviewResponse(R"({
    "kind":"TokenReview","apiVersion":"authentication.k8s.io/v1",
    "metadata":{"creationTimestamp":null},
    "spec":{"token":"t"},
    "status":{"authenticated":true,
      "user":{"username":"system:serviceaccount:default:sa","uid":"u-1",
              "groups":["system:serviceaccounts","system:serviceaccounts:default"],
              "extra":{"authentication.kubernetes.io/pod-name":["p"],"empty":[]}},
      "audiences":["https://kubernetes.default.svc.cluster.local"]}})");
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_TRUE(status->authenticated);
  EXPECT_EQ(status->user,
            (UserInfo{"system:serviceaccount:default:sa",
                      "u-1",
                      {"system:serviceaccounts", "system:serviceaccounts:default"},
                      {{"authentication.kubernetes.io/pod-name", {"p"}}, {"empty", {}}}}));
  EXPECT_EQ(status->audiences,
            std::vector<std::string>{"https://kubernetes.default.svc.cluster.local"});
  EXPECT_EQ(status->error, "");
}

TEST(ParseTokenReviewResponseTest, NotAuthenticatedAndNulls) {
  auto status = parseTokenReviewResponse(
      R"({"status":{"authenticated":null,"user":{"groups":null,"extra":null},"error":"bad"}})");
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_FALSE(status->authenticated);
  EXPECT_EQ(status->user, UserInfo{});
  EXPECT_EQ(status->error, "bad");
  auto empty = parseTokenReviewResponse(R"({"kind":"TokenReview"})");
  ASSERT_TRUE(empty.ok());
  EXPECT_FALSE(empty->authenticated);
}

TEST(ParseTokenReviewResponseTest, Errors) {
  EXPECT_FALSE(parseTokenReviewResponse("").ok());
  EXPECT_FALSE(parseTokenReviewResponse("{").ok());
  EXPECT_FALSE(parseTokenReviewResponse("[]").ok());
  auto wrongType = parseTokenReviewResponse(R"({"status":{"authenticated":"yes"}})");
  ASSERT_FALSE(wrongType.ok());
  EXPECT_THAT(wrongType.status().message(), HasSubstr("status.authenticated"));
  EXPECT_FALSE(parseTokenReviewResponse(R"({"status":{"user":{"groups":"g"}}})").ok());
  EXPECT_FALSE(parseTokenReviewResponse(R"({"status":{"user":{"extra":{"k":"v"}}}})").ok());
}

TEST(InterpretTokenReviewTest, Table) {
  TokenReviewStatus ok{true, UserInfo{"bob", "", {"g"}, {}}, {}, ""};
  TokenReviewStatus okWithAud{true, UserInfo{"bob", "", {}, {}}, {"api", "other"}, ""};
  TokenReviewStatus okOtherAud{true, UserInfo{"bob", "", {}, {}}, {"other"}, ""};
  TokenReviewStatus denied{false, {}, {}, ""};
  TokenReviewStatus deniedWithError{false, {}, {}, "token expired"};
  struct Case {
    const char* name;
    TokenReviewStatus status;
    std::vector<std::string> apiAudiences;
    Outcome outcome;
    std::vector<std::string> audiences;
    std::string error;
  };
  std::vector<Case> cases = {
      {"authenticated, no audiences configured", ok, {}, Outcome::kAuthenticated, {}, ""},
      {"authenticated, status without audiences uses the implicit ones",
       ok,
       {"api"},
       Outcome::kAuthenticated,
       {"api"},
       ""},
      {"authenticated, intersecting audiences",
       okWithAud,
       {"x", "api"},
       Outcome::kAuthenticated,
       {"api"},
       ""},
      {"authenticated, disjoint audiences", okOtherAud, {"api"}, Outcome::kUnauthenticated, {}, ""},
      {"not authenticated", denied, {}, Outcome::kUnauthenticated, {}, ""},
      {"not authenticated with error", deniedWithError, {}, Outcome::kError, {}, "token expired"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    TokenReviewResult r = interpretTokenReview(c.status, c.apiAudiences);
    EXPECT_EQ(r.outcome, c.outcome);
    EXPECT_EQ(r.audiences, c.audiences);
    EXPECT_EQ(r.error, c.error);
    if (c.outcome == Outcome::kAuthenticated) {
      EXPECT_EQ(r.user, c.status.user);
    }
    EXPECT_EQ(r.cacheable(), c.outcome != Outcome::kError);
  }
}

TEST(TokenReviewCacheKeyerTest, KeysAreStableUnambiguousAndNeverTheToken) {
  TokenReviewCacheKeyer keyer;
  std::string k = keyer.key("secret-token", {"a"});
  EXPECT_EQ(k.size(), 64u);
  EXPECT_EQ(k.find("secret-token"), std::string::npos);
  EXPECT_EQ(k, keyer.key("secret-token", {"a"}));
  EXPECT_NE(k, keyer.key("secret-token", {}));
  EXPECT_NE(k, keyer.key("secret-token", {"b"}));
  EXPECT_NE(k, keyer.key("other", {"a"}));
  // Length prefixes: moving bytes between the token and an audience changes the key.
  EXPECT_NE(keyer.key("ab", {"c"}), keyer.key("a", {"bc"}));
  EXPECT_NE(keyer.key("a", {"", ""}), keyer.key("a", {""}));
  // A per-process random key: another keyer gives other keys.
  EXPECT_NE(k, TokenReviewCacheKeyer().key("secret-token", {"a"}));
  // Deterministic with a fixed key.
  EXPECT_EQ(TokenReviewCacheKeyer("k").key("t", {}), TokenReviewCacheKeyer("k").key("t", {}));
}

}  // namespace
}  // namespace aaproxy
