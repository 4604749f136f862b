// Table tests of the chain (kubernetes-semantics.md §2 and §4b) with fake authenticators, plus
// end-to-end cases with the real request-header and x509 authenticators and generated
// certificates.
#include "authn/authentication_chain.h"

#include "authn/request_header_authenticator.h"
#include "authn/test_certificates.h"
#include "authn/x509_authenticator.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace aaproxy {
namespace {

using ::testing::MatchesRegex;
using Kind = ChainDecision::Kind;
using ROutcome = TokenReviewResult::Outcome;
using Strings = std::vector<std::string>;

class FakeAuthenticator : public Authenticator {
 public:
  explicit FakeAuthenticator(AuthenticationResult result) : result_(std::move(result)) {}
  AuthenticationResult authenticate(const AuthenticationRequest&) const override {
    ++calls;
    return result_;
  }
  mutable int calls = 0;

 private:
  AuthenticationResult result_;
};

std::shared_ptr<FakeAuthenticator> noOpinion() {
  return std::make_shared<FakeAuthenticator>(AuthenticationResult::noOpinion());
}
std::shared_ptr<FakeAuthenticator> fails(std::string e) {
  return std::make_shared<FakeAuthenticator>(AuthenticationResult::failed(std::move(e)));
}
std::shared_ptr<FakeAuthenticator> accepts(UserInfo u) {
  return std::make_shared<FakeAuthenticator>(AuthenticationResult::authenticated(std::move(u)));
}

TEST(BearerTokenTest, MatchesUpstreamBearerTokenAuthenticator) {
  struct Case {
    std::optional<std::string> header;
    std::optional<std::string> token;
  };
  std::vector<Case> cases = {
      {std::nullopt, std::nullopt},
      {"", std::nullopt},
      {"   ", std::nullopt},
      {"Bearer tok", "tok"},
      {"bearer tok", "tok"},
      {"BEARER tok", "tok"},
      {"  Bearer tok  ", "tok"},
      {"Bearer", std::nullopt},
      {"Bearer ", std::nullopt},
      {"Bearer  tok", std::nullopt},  // Space before the token: empty token, ignored.
      {"Bearer tok extra", "tok"},    // A third part is ignored.
      {"Bearer\ttok", std::nullopt},  // Only spaces separate.
      {"Basic dXNlcjpwYXNz", std::nullopt},
      {"Bearertok", std::nullopt},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.header.value_or("<none>"));
    HeaderMap headers;
    if (c.header) {
      headers.add("authorization", *c.header);
    }
    EXPECT_EQ(bearerToken(headers), c.token);
  }
  HeaderMap two;
  two.add("Authorization", "Basic x");
  two.add("Authorization", "Bearer second");
  EXPECT_EQ(bearerToken(two), std::nullopt);  // Only the first line counts (Header.Get).
}

TEST(AddAuthenticatedGroupTest, Table) {
  struct Case {
    UserInfo in;
    Strings groups;
  };
  std::vector<Case> cases = {
      {{"alice", "", {}, {}}, {"system:authenticated"}},
      {{"alice", "", {"dev"}, {}}, {"dev", "system:authenticated"}},
      {{"alice", "", {"system:authenticated", "dev"}, {}}, {"system:authenticated", "dev"}},
      {{"alice", "", {"system:unauthenticated"}, {}}, {"system:unauthenticated"}},
      {{"system:anonymous", "", {"x"}, {}}, {"x"}},
  };
  for (Case c : cases) {
    addAuthenticatedGroup(c.in);
    EXPECT_EQ(c.in.groups, c.groups) << c.in.name;
  }
}

TEST(ChainDecisionTest, ErrorMessageAggregatesLikeGo) {
  ChainDecision d;
  EXPECT_EQ(d.errorMessage(), "");
  d.errors = {"a"};
  EXPECT_EQ(d.errorMessage(), "a");
  d.errors = {"a", "b"};
  EXPECT_EQ(d.errorMessage(), "[a, b]");
  d.errors = {"a", "a"};
  EXPECT_EQ(d.errorMessage(), "a");
  d.errors = {"a", "b", "a"};
  EXPECT_EQ(d.errorMessage(), "[a, b]");
}

struct ChainCase {
  std::string name;
  std::vector<std::shared_ptr<FakeAuthenticator>> authenticators;
  std::optional<std::string> authorization;
  bool tokenReviewEnabled = true;
  bool anonymousEnabled = true;
  Kind kind;
  UserInfo user = {};
  Strings errors = {};
  std::string token = {};
};

TEST(AuthenticationChainTest, SynchronousTable) {
  const UserInfo alice{"alice", "", {"dev"}, {}};
  const UserInfo aliceAuth{"alice", "", {"dev", "system:authenticated"}, {}};
  std::vector<ChainCase> cases = {
      {"nothing at all, anonymous on",
       {noOpinion(), noOpinion()},
       std::nullopt,
       true,
       true,
       Kind::kAnonymous,
       anonymousUser()},
      {"nothing at all, anonymous off",
       {noOpinion(), noOpinion()},
       std::nullopt,
       true,
       false,
       Kind::kUnauthorized},
      {"no authenticators configured, anonymous on",
       {},
       std::nullopt,
       false,
       true,
       Kind::kAnonymous,
       anonymousUser()},
      {"first authenticator wins and gets system:authenticated",
       {accepts(alice), fails("x")},
       std::nullopt,
       true,
       true,
       Kind::kAuthenticated,
       aliceAuth},
      {"error then success: success",
       {fails("rh"), accepts(alice)},
       std::nullopt,
       true,
       true,
       Kind::kAuthenticated,
       aliceAuth},
      {"an error with no success is a 401 even with anonymous on",
       {fails("rh"), noOpinion()},
       std::nullopt,
       true,
       true,
       Kind::kUnauthorized,
       {},
       {"rh"}},
      {"both fail",
       {fails("rh"), fails("x509")},
       std::nullopt,
       true,
       true,
       Kind::kUnauthorized,
       {},
       {"rh", "x509"}},
      {"bearer needs a review",
       {noOpinion(), noOpinion()},
       "Bearer tok",
       true,
       true,
       Kind::kNeedsTokenReview,
       {},
       {},
       "tok"},
      {"bearer review carries earlier errors",
       {fails("rh"), noOpinion()},
       "Bearer tok",
       true,
       true,
       Kind::kNeedsTokenReview,
       {},
       {"rh"},
       "tok"},
      {"certificate success skips the bearer token",
       {accepts(alice)},
       "Bearer tok",
       true,
       true,
       Kind::kAuthenticated,
       aliceAuth},
      {"token review disabled ignores the bearer token",
       {noOpinion()},
       "Bearer tok",
       false,
       true,
       Kind::kAnonymous,
       anonymousUser()},
      {"empty bearer token is no opinion",
       {noOpinion()},
       "Bearer ",
       true,
       true,
       Kind::kAnonymous,
       anonymousUser()},
      {"basic auth is no opinion",
       {noOpinion()},
       "Basic Zm9vOmJhcg==",
       true,
       false,
       Kind::kUnauthorized},
      {"front proxy asserting system:anonymous gets no system:authenticated",
       {accepts(UserInfo{"system:anonymous", "", {}, {}})},
       std::nullopt,
       true,
       true,
       Kind::kAuthenticated,
       UserInfo{"system:anonymous", "", {}, {}}},
  };
  for (const ChainCase& c : cases) {
    SCOPED_TRACE(c.name);
    AuthenticationChainConfig config;
    for (const auto& a : c.authenticators) {
      config.authenticators.push_back(a);
    }
    config.tokenReviewEnabled = c.tokenReviewEnabled;
    config.anonymousEnabled = c.anonymousEnabled;
    AuthenticationChain chain(config);
    HeaderMap headers;
    if (c.authorization) {
      headers.add("Authorization", *c.authorization);
    }
    ChainDecision d = chain.authenticate({headers, {}});
    EXPECT_EQ(d.kind, c.kind);
    EXPECT_EQ(d.user, c.user);
    EXPECT_EQ(d.errors, c.errors);
    EXPECT_EQ(d.token, c.token);
  }
}

TEST(AuthenticationChainTest, StopsAtTheFirstSuccess) {
  auto first = accepts(UserInfo{"a", "", {}, {}});
  auto second = accepts(UserInfo{"b", "", {}, {}});
  AuthenticationChain chain({{first, second}, true, true});
  HeaderMap headers;
  EXPECT_EQ(chain.authenticate({headers, {}}).user.name, "a");
  EXPECT_EQ(first->calls, 1);
  EXPECT_EQ(second->calls, 0);
}

TEST(AuthenticationChainTest, FinishWithTokenReviewTable) {
  struct Case {
    std::string name;
    Strings errorsSoFar;
    TokenReviewResult review;
    bool anonymousEnabled;
    Kind kind;
    UserInfo user;
    Strings errors;
  };
  const UserInfo sa{"system:serviceaccount:ns:sa", "u", {"system:serviceaccounts"}, {}};
  const UserInfo saAuth{
      "system:serviceaccount:ns:sa", "u", {"system:serviceaccounts", "system:authenticated"}, {}};
  std::vector<Case> cases = {
      {"authenticated",
       {},
       {ROutcome::kAuthenticated, sa, {}, ""},
       true,
       Kind::kAuthenticated,
       saAuth,
       {}},
      {"authenticated after an earlier error",
       {"rh"},
       {ROutcome::kAuthenticated, sa, {}, ""},
       true,
       Kind::kAuthenticated,
       saAuth,
       {}},
      {"authenticated user already in system:authenticated",
       {},
       {ROutcome::kAuthenticated, saAuth, {}, ""},
       true,
       Kind::kAuthenticated,
       saAuth,
       {}},
      {"not authenticated: invalid bearer token, 401 even with anonymous",
       {},
       {ROutcome::kUnauthenticated, {}, {}, ""},
       true,
       Kind::kUnauthorized,
       {},
       {"invalid bearer token"}},
      {"review error (apiserver unreachable): 401",
       {},
       TokenReviewResult::failed("Post \"https://10.0.0.1/apis/...\": connection refused"),
       true,
       Kind::kUnauthorized,
       {},
       {"Post \"https://10.0.0.1/apis/...\": connection refused"}},
      {"status.error",
       {"rh"},
       TokenReviewResult::failed("token expired"),
       false,
       Kind::kUnauthorized,
       {},
       {"rh", "token expired"}},
  };
  AuthenticationChain chain({{}, true, true});
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    AuthenticationChain ch({{}, true, c.anonymousEnabled});
    ChainDecision pending;
    pending.kind = Kind::kNeedsTokenReview;
    pending.token = "tok";
    pending.errors = c.errorsSoFar;
    ChainDecision d = ch.finishWithTokenReview(pending, c.review);
    EXPECT_EQ(d.kind, c.kind);
    EXPECT_EQ(d.user, c.user);
    EXPECT_EQ(d.errors, c.errors);
  }
}

TEST(WebSocketBearerTokenTest, MatchesUpstreamProtocolAuthenticator) {
  struct Case {
    std::string name;
    std::vector<std::pair<std::string, std::string>> headers;
    std::optional<std::string> token;
    std::string remaining;
    std::string error;
  };
  const std::pair<std::string, std::string> conn{"Connection", "Upgrade"};
  const std::pair<std::string, std::string> upg{"Upgrade", "websocket"};
  std::vector<Case> cases = {
      {"not a websocket request",
       {{"Sec-WebSocket-Protocol", "base64url.bearer.authorization.k8s.io.dG9r,v5"}},
       std::nullopt,
       "",
       ""},
      {"no protocols", {conn, upg}, std::nullopt, "", ""},
      {"token and another protocol",
       {conn,
        upg,
        {"Sec-WebSocket-Protocol",
         "v5.channel.k8s.io, base64url.bearer.authorization.k8s.io.dGVzdDE"}},
       "test1",
       "v5.channel.k8s.io",
       ""},
      {"protocols over several lines, connection list",
       {{"Connection", "keep-alive, Upgrade"},
        {"upgrade", "WebSocket"},
        {"Sec-WebSocket-Protocol", "base64url.bearer.authorization.k8s.io.dG9r"},
        {"Sec-WebSocket-Protocol", "a, b"}},
       "tok",
       "a,b",
       ""},
      {"connection without upgrade token",
       {{"Connection", "upgraded"},
        upg,
        {"Sec-WebSocket-Protocol", "base64url.bearer.authorization.k8s.io.dG9r,v5"}},
       std::nullopt,
       "",
       ""},
      {"padding is invalid encoding",
       {conn, upg, {"Sec-WebSocket-Protocol", "base64url.bearer.authorization.k8s.io.dGVzdA==,v5"}},
       std::nullopt,
       "",
       "invalid base64.bearer.authorization token encoding"},
      {"only the token protocol",
       {conn, upg, {"Sec-WebSocket-Protocol", "base64url.bearer.authorization.k8s.io.dGVzdDE"}},
       std::nullopt,
       "",
       "missing additional subprotocol"},
      {"two tokens",
       {conn,
        upg,
        {"Sec-WebSocket-Protocol",
         "base64url.bearer.authorization.k8s.io.dGVzdDE,base64url.bearer.authorization.k8s.io."
         "dGVzdDE"}},
       std::nullopt,
       "",
       "multiple base64.bearer.authorization tokens specified"},
      {"not utf-8",
       {conn, upg, {"Sec-WebSocket-Protocol", "base64url.bearer.authorization.k8s.io._w,v5"}},
       std::nullopt,
       "",
       "invalid base64.bearer.authorization token"},
      {"empty token is no opinion",
       {conn, upg, {"Sec-WebSocket-Protocol", "base64url.bearer.authorization.k8s.io.,v5"}},
       std::nullopt,
       "",
       ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    HeaderMap headers;
    for (const auto& [k, v] : c.headers) {
      headers.add(k, v);
    }
    auto parsed = webSocketBearerToken(headers);
    if (!c.error.empty()) {
      ASSERT_FALSE(parsed.ok());
      EXPECT_EQ(parsed.status().message(), c.error);
      continue;
    }
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    ASSERT_EQ(parsed->has_value(), c.token.has_value());
    if (c.token) {
      EXPECT_EQ((*parsed)->token, *c.token);
      EXPECT_EQ((*parsed)->remainingProtocols, c.remaining);
    }
  }
}

TEST(AuthenticationChainTest, WebSocketProtocolToken) {
  AuthenticationChain chain({{noOpinion()}, true, true});
  HeaderMap headers;
  headers.add("Connection", "Upgrade");
  headers.add("Upgrade", "websocket");
  headers.add("Sec-WebSocket-Protocol",
              "v5.channel.k8s.io,base64url.bearer.authorization.k8s.io.dG9r");
  ChainDecision pending = chain.authenticate({headers, {}});
  ASSERT_EQ(pending.kind, Kind::kNeedsTokenReview);
  EXPECT_EQ(pending.token, "tok");
  EXPECT_EQ(pending.tokenSource, ChainDecision::TokenSource::kWebSocketProtocol);
  ChainDecision ok = chain.finishWithTokenReview(
      pending, {ROutcome::kAuthenticated, UserInfo{"sa", "", {}, {}}, {}, ""});
  EXPECT_EQ(ok.kind, Kind::kAuthenticated);
  EXPECT_EQ(ok.webSocketProtocols, "v5.channel.k8s.io");
  ChainDecision bad =
      chain.finishWithTokenReview(pending, {ROutcome::kUnauthenticated, {}, {}, ""});
  EXPECT_EQ(bad.kind, Kind::kUnauthorized);
  EXPECT_EQ(bad.errors, Strings{"invalid bearer token"});

  // A malformed subprotocol token is an error (401), even with anonymous enabled.
  HeaderMap malformed;
  malformed.add("Connection", "Upgrade");
  malformed.add("Upgrade", "websocket");
  malformed.add("Sec-WebSocket-Protocol", "base64url.bearer.authorization.k8s.io.dG9r");
  ChainDecision d = chain.authenticate({malformed, {}});
  EXPECT_EQ(d.kind, Kind::kUnauthorized);
  EXPECT_EQ(d.errors, Strings{"missing additional subprotocol"});
}

TEST(AuthenticationChainTest, AuthorizationHeaderFirstThenWebSocketToken) {
  AuthenticationChain chain({{}, true, true});
  HeaderMap headers;
  headers.add("Authorization", "Bearer header-token");
  headers.add("Connection", "Upgrade");
  headers.add("Upgrade", "websocket");
  headers.add("Sec-WebSocket-Protocol", "v5,base64url.bearer.authorization.k8s.io.dG9r");
  ChainDecision first = chain.authenticate({headers, {}});
  ASSERT_EQ(first.kind, Kind::kNeedsTokenReview);
  EXPECT_EQ(first.token, "header-token");
  EXPECT_EQ(first.tokenSource, ChainDecision::TokenSource::kAuthorizationHeader);
  // The header token succeeds: done, the subprotocols stay untouched.
  ChainDecision ok = chain.finishWithTokenReview(
      first, {ROutcome::kAuthenticated, UserInfo{"a", "", {}, {}}, {}, ""});
  EXPECT_EQ(ok.kind, Kind::kAuthenticated);
  EXPECT_EQ(ok.webSocketProtocols, std::nullopt);
  // The header token fails: the subprotocol token is reviewed next, errors carried along.
  ChainDecision second =
      chain.finishWithTokenReview(first, {ROutcome::kUnauthenticated, {}, {}, ""});
  ASSERT_EQ(second.kind, Kind::kNeedsTokenReview);
  EXPECT_EQ(second.token, "tok");
  EXPECT_EQ(second.errors, Strings{"invalid bearer token"});
  ChainDecision bothBad =
      chain.finishWithTokenReview(second, TokenReviewResult::failed("connection refused"));
  EXPECT_EQ(bothBad.kind, Kind::kUnauthorized);
  EXPECT_EQ(bothBad.errorMessage(), "[invalid bearer token, connection refused]");
}

// §2 / §4b with the real authenticators.
class RealChainTest : public ::testing::Test {
 protected:
  RealChainTest()
      : frontProxyCa_(testing::makeCertificate(testing::caSpec("front-proxy-ca"))),
        clientCa_(testing::makeCertificate(testing::caSpec("kubernetes-ca"))),
        frontProxy_(testing::makeCertificate({.commonName = "front-proxy-client"}, &frontProxyCa_)),
        clientCert_(testing::makeCertificate(
            {.commonName = "bob", .organizations = {"system:masters", "dev"}}, &clientCa_)) {}

  AuthenticationChain chain(std::vector<std::string> allowedNames = {"front-proxy-client"},
                            bool anonymous = true) {
    auto rh = RequestHeaderAuthenticator::create({*CertificatePool::fromPem(frontProxyCa_.pem()),
                                                  std::move(allowedNames),
                                                  {"X-Remote-User"},
                                                  {"X-Remote-Uid"},
                                                  {"X-Remote-Group"},
                                                  {"X-Remote-Extra-"}});
    auto x509 = std::make_shared<X509Authenticator>(*CertificatePool::fromPem(clientCa_.pem()));
    return AuthenticationChain(
        {{std::shared_ptr<const Authenticator>(std::move(*rh)), x509}, true, anonymous});
  }

  testing::TestCertificate frontProxyCa_, clientCa_, frontProxy_, clientCert_;
};

TEST_F(RealChainTest, FrontProxyWithIdentityHeaders) {
  HeaderMap headers;
  headers.add("X-Remote-User", "alice");
  headers.add("X-Remote-Group", "dev");
  headers.add("X-Remote-Extra-Scopes", "view");
  ChainDecision d = chain().authenticate({headers, {frontProxy_.cert.get(), nullptr}});
  ASSERT_EQ(d.kind, Kind::kAuthenticated) << d.errorMessage();
  EXPECT_EQ(d.user,
            (UserInfo{"alice", "", {"dev", "system:authenticated"}, {{"scopes", {"view"}}}}));
}

TEST_F(RealChainTest, AggregatorDiscoveryWithNoGroupsGetsSystemAuthenticated) {
  HeaderMap headers;
  headers.add("X-Remote-User", "system:kube-aggregator");
  ChainDecision d = chain().authenticate({headers, {frontProxy_.cert.get(), nullptr}});
  ASSERT_EQ(d.kind, Kind::kAuthenticated);
  EXPECT_EQ(d.user.groups, Strings{"system:authenticated"});
}

TEST_F(RealChainTest, FrontProxyWithoutUsernameIs401BecauseX509RejectsTheCertificate) {
  HeaderMap headers;
  headers.add("X-Remote-Group", "system:masters");
  ChainDecision d = chain().authenticate({headers, {frontProxy_.cert.get(), nullptr}});
  EXPECT_EQ(d.kind, Kind::kUnauthorized);
  EXPECT_THAT(d.errorMessage(), MatchesRegex("verifying certificate SN=1, .* failed: x509: "
                                             "certificate signed by unknown authority"));
}

TEST_F(RealChainTest, FrontProxyNameNotAllowedIs401WithBothErrors) {
  HeaderMap headers;
  headers.add("X-Remote-User", "alice");
  ChainDecision d =
      chain({"someone-else"}).authenticate({headers, {frontProxy_.cert.get(), nullptr}});
  EXPECT_EQ(d.kind, Kind::kUnauthorized);
  ASSERT_EQ(d.errors.size(), 2u);
  EXPECT_EQ(d.errors[0], "x509: subject with cn=front-proxy-client is not in the allowed list");
  EXPECT_THAT(d.errorMessage(),
              MatchesRegex("\\[x509: subject with cn=front-proxy-client is not in the allowed "
                           "list, verifying certificate .* failed: .*\\]"));
}

TEST_F(RealChainTest, IdentityHeadersWithoutCertificateAreIgnored) {
  HeaderMap headers;
  headers.add("X-Remote-User", "admin");
  headers.add("X-Remote-Group", "system:masters");
  ChainDecision d = chain().authenticate({headers, {}});
  EXPECT_EQ(d.kind, Kind::kAnonymous);
  EXPECT_EQ(d.user, anonymousUser());
  EXPECT_EQ(chain({"front-proxy-client"}, false).authenticate({headers, {}}).kind,
            Kind::kUnauthorized);
}

TEST_F(RealChainTest, ClientCertificate) {
  HeaderMap headers;
  headers.add("X-Remote-User", "ignored: not a front-proxy certificate");
  ChainDecision d = chain().authenticate({headers, {clientCert_.cert.get(), nullptr}});
  ASSERT_EQ(d.kind, Kind::kAuthenticated) << d.errorMessage();
  EXPECT_EQ(d.user.name, "bob");
  EXPECT_EQ(d.user.groups, (Strings{"system:masters", "dev", "system:authenticated"}));
  EXPECT_EQ(d.user.extra.count("authentication.kubernetes.io/credential-id"), 1u);
}

TEST_F(RealChainTest, ClientCertificateWithoutCommonName) {
  // The x509 authenticator has no opinion on an empty CN, but the request-header verifier
  // already failed on this (non front-proxy) certificate, so upstream answers 401.
  auto noCn = testing::makeCertificate({.organizations = {"system:masters"}}, &clientCa_);
  HeaderMap headers;
  ChainDecision d = chain().authenticate({headers, {noCn.cert.get(), nullptr}});
  EXPECT_EQ(d.kind, Kind::kUnauthorized);
  EXPECT_EQ(d.errors, Strings{"x509: certificate signed by unknown authority"});
  // Without a request-header authenticator it is anonymous.
  AuthenticationChain x509Only(
      {{std::make_shared<X509Authenticator>(*CertificatePool::fromPem(clientCa_.pem()))},
       true,
       true});
  EXPECT_EQ(x509Only.authenticate({headers, {noCn.cert.get(), nullptr}}).kind, Kind::kAnonymous);
}

TEST_F(RealChainTest, BadCertificateWithValidTokenStillAuthenticatesByToken) {
  auto stranger = testing::makeCertificate(testing::caSpec("stranger"));
  auto leaf = testing::makeCertificate({.commonName = "eve"}, &stranger);
  HeaderMap headers;
  headers.add("Authorization", "Bearer tok");
  AuthenticationChain c = chain();
  ChainDecision pending = c.authenticate({headers, {leaf.cert.get(), nullptr}});
  ASSERT_EQ(pending.kind, Kind::kNeedsTokenReview);
  EXPECT_EQ(pending.errors.size(), 2u);  // Both certificate authenticators failed.
  ChainDecision ok = c.finishWithTokenReview(
      pending, {ROutcome::kAuthenticated, UserInfo{"sa", "", {}, {}}, {}, ""});
  EXPECT_EQ(ok.kind, Kind::kAuthenticated);
  ChainDecision bad = c.finishWithTokenReview(pending, {ROutcome::kUnauthenticated, {}, {}, ""});
  EXPECT_EQ(bad.kind, Kind::kUnauthorized);
  EXPECT_EQ(bad.errors.size(), 3u);
  EXPECT_EQ(bad.errors.back(), "invalid bearer token");
}

}  // namespace
}  // namespace aaproxy
