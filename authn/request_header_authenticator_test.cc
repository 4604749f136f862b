// Ports upstream's headerrequest/requestheader_test.go table (header extraction) and the
// Verifier cases of request/x509/x509_test.go (certificate gate in front of it).
#include "authn/request_header_authenticator.h"

#include "authn/test_certificates.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace aaproxy {
namespace {

using testing::caSpec;
using testing::CertificateSpec;
using testing::makeCertificate;
using testing::TestCertificate;
using Outcome = AuthenticationResult::Outcome;

struct HeaderCase {
  std::string name;
  std::vector<std::string> nameHeaders;
  std::vector<std::string> uidHeaders;
  std::vector<std::string> groupHeaders;
  std::vector<std::string> extraPrefixes;
  std::vector<std::pair<std::string, std::string>> requestHeaders;
  std::optional<UserInfo> expected;
};

std::vector<HeaderCase> headerCases() {
  return {
      {"empty", {}, {}, {}, {}, {}, std::nullopt},
      {"user no match", {"X-Remote-User"}, {}, {}, {}, {}, std::nullopt},
      {"user match",
       {"X-Remote-User"},
       {},
       {},
       {},
       {{"X-Remote-User", "Bob"}},
       UserInfo{"Bob", "", {}, {}}},
      {"user exact match",
       {"X-Remote-User"},
       {},
       {},
       {},
       {{"Prefixed-X-Remote-User-With-Suffix", "Bob"}, {"X-Remote-User-With-Suffix", "Bob"}},
       std::nullopt},
      {"user first match",
       {"X-Remote-User", "A-Second-X-Remote-User", "Another-X-Remote-User"},
       {},
       {},
       {},
       {{"X-Remote-User", ""},
        {"X-Remote-User", "First header, second value"},
        {"A-Second-X-Remote-User", "Second header, first value"},
        {"A-Second-X-Remote-User", "Second header, second value"},
        {"Another-X-Remote-User", "Third header, first value"}},
       UserInfo{"Second header, first value", "", {}, {}}},
      {"user case-insensitive",
       {"x-REMOTE-user"},
       {},
       {},
       {},
       {{"X-Remote-User", "Bob"}},
       UserInfo{"Bob", "", {}, {}}},
      {"configured names are trimmed",
       {"  X-Remote-User\t"},
       {},
       {},
       {},
       {{"x-remote-user", "Bob"}},
       UserInfo{"Bob", "", {}, {}}},
      {"uid first non-empty",
       {"X-Remote-User"},
       {"X-Remote-Uid", "X-Other-Uid"},
       {},
       {},
       {{"X-Remote-User", "Bob"}, {"X-Remote-Uid", ""}, {"X-Other-Uid", "u-1"}},
       UserInfo{"Bob", "u-1", {}, {}}},
      {"uid without user is no opinion",
       {"X-Remote-User"},
       {"X-Remote-Uid"},
       {},
       {},
       {{"X-Remote-Uid", "u-1"}},
       std::nullopt},
      {"groups none",
       {"X-Remote-User"},
       {},
       {"X-Remote-Group"},
       {},
       {{"X-Remote-User", "Bob"}},
       UserInfo{"Bob", "", {}, {}}},
      {"groups all matches",
       {"X-Remote-User"},
       {},
       {"X-Remote-Group-1", "X-Remote-Group-2"},
       {},
       {{"X-Remote-User", "Bob"},
        {"X-Remote-Group-2", "two-a"},
        {"X-Remote-Group-1", "one-a"},
        {"X-Remote-Group-1", "one-b"},
        {"X-Remote-Group-2", "two-b"}},
       UserInfo{"Bob", "", {"one-a", "one-b", "two-a", "two-b"}, {}}},
      {"groups case-insensitive, empty values dropped, no comma splitting",
       {"X-REMOTE-User"},
       {},
       {"X-REMOTE-Group"},
       {},
       {{"X-Remote-User", "Bob"},
        {"x-remote-group", "Users"},
        {"X-Remote-Group", ""},
        {"X-Remote-Group", "a,b"}},
       UserInfo{"Bob", "", {"Users", "a,b"}, {}}},
      {"extra prefix matches case-insensitive",
       {"X-Remote-User"},
       {},
       {"X-Remote-Group-1", "X-Remote-Group-2"},
       {"X-Remote-Extra-1-", "X-Remote-Extra-2-"},
       {{"X-Remote-User", "Bob"},
        {"X-Remote-Group-1", "one-a"},
        {"X-Remote-Group-1", "one-b"},
        {"X-Remote-Group-2", "two-a"},
        {"X-Remote-Group-2", "two-b"},
        {"X-Remote-extra-1-key1", "alfa"},
        {"X-Remote-extra-1-key1", "bravo"},
        {"X-Remote-Extra-1-Key2", "charlie"},
        {"X-Remote-Extra-1-Key2", "delta"},
        {"X-Remote-Extra-1-", "india"},
        {"X-Remote-Extra-1-", "juliet"},
        {"X-Remote-extra-2-", "kilo"},
        {"X-Remote-extra-2-", "lima"},
        {"X-Remote-extra-2-Key1", "echo"},
        {"X-Remote-extra-2-Key1", "foxtrot"},
        {"X-Remote-Extra-2-key2", "golf"},
        {"X-Remote-Extra-2-key2", "hotel"}},
       UserInfo{"Bob",
                "",
                {"one-a", "one-b", "two-a", "two-b"},
                {{"key1", {"alfa", "bravo", "echo", "foxtrot"}},
                 {"key2", {"charlie", "delta", "golf", "hotel"}},
                 {"", {"india", "juliet", "kilo", "lima"}}}}},
      {"escaped extra keys",
       {"X-Remote-User"},
       {},
       {"X-Remote-Group"},
       {"X-Remote-Extra-"},
       {{"X-Remote-User", "Bob"},
        {"X-Remote-Group", "one-a"},
        {"X-Remote-Group", "one-b"},
        {"X-Remote-Extra-Alpha", "alphabetical"},
        {"X-Remote-Extra-Alph4num3r1c", "alphanumeric"},
        {"X-Remote-Extra-Percent%20encoded", "percent encoded"},
        {"X-Remote-Extra-Almost%zzpercent%xxencoded", "not quite percent encoded"},
        {"X-Remote-Extra-Example.com%2fpercent%2520encoded", "url with double percent encoding"},
        {"X-Remote-Extra-Example.com%2F%E4%BB%8A%E6%97%A5%E3%81%AF", "url with unicode"},
        {"X-Remote-Extra-Abc123!#$+.-_*\\^`~|'", "header key legal characters"},
        {"X-Remote-Extra-Trailing%2", "truncated escape"},
        {"X-Remote-Extra-Empty", ""}},
       UserInfo{"Bob",
                "",
                {"one-a", "one-b"},
                {{"alpha", {"alphabetical"}},
                 {"alph4num3r1c", {"alphanumeric"}},
                 {"percent encoded", {"percent encoded"}},
                 {"almost%zzpercent%xxencoded", {"not quite percent encoded"}},
                 {"example.com/percent%20encoded", {"url with double percent encoding"}},
                 {"example.com/\xE4\xBB\x8A\xE6\x97\xA5\xE3\x81\xAF", {"url with unicode"}},
                 {"abc123!#$+.-_*\\^`~|'", {"header key legal characters"}},
                 {"trailing%2", {"truncated escape"}},
                 {"empty", {""}}}}},
  };
}

TEST(RequestHeaderTest, UpstreamTable) {
  for (const HeaderCase& tc : headerCases()) {
    SCOPED_TRACE(tc.name);
    auto auth = RequestHeaderAuthenticator::create(
        {nullptr, {}, tc.nameHeaders, tc.uidHeaders, tc.groupHeaders, tc.extraPrefixes});
    ASSERT_TRUE(auth.ok()) << auth.status();
    HeaderMap headers;
    for (const auto& [k, v] : tc.requestHeaders) {
      headers.add(k, v);
    }
    std::optional<UserInfo> user = (*auth)->userFromHeaders(headers);
    ASSERT_EQ(user.has_value(), tc.expected.has_value());
    if (user) {
      EXPECT_EQ(user->name, tc.expected->name);
      EXPECT_EQ(user->uid, tc.expected->uid);
      EXPECT_EQ(user->groups, tc.expected->groups);
      EXPECT_EQ(user->extra, tc.expected->extra);
    }
  }
}

TEST(RequestHeaderTest, EmptyConfiguredHeaderIsAnError) {
  auto auth = RequestHeaderAuthenticator::create({nullptr, {}, {"X-Remote-User", " "}, {}, {}, {}});
  ASSERT_FALSE(auth.ok());
  EXPECT_EQ(auth.status().message(), "empty header \" \"");
}

TEST(PathUnescapeTest, MatchesGo) {
  EXPECT_EQ(pathUnescape("a%20b+c"), "a b+c");
  EXPECT_EQ(pathUnescape("%2f%2F"), "//");
  EXPECT_EQ(pathUnescape("%"), std::nullopt);
  EXPECT_EQ(pathUnescape("%4"), std::nullopt);
  EXPECT_EQ(pathUnescape("%zz"), std::nullopt);
  EXPECT_EQ(pathUnescape(""), "");
}

class RequestHeaderVerifierTest : public ::testing::Test {
 protected:
  RequestHeaderVerifierTest()
      : root_(makeCertificate(caSpec("front-proxy-ca"))),
        pool_(*CertificatePool::fromPem(root_.pem())) {
    headers_.add("X-Remote-User", "alice");
    headers_.add("X-Remote-Group", "dev");
  }

  AuthenticationResult run(const TestCertificate* leaf, std::vector<std::string> allowedNames,
                           std::shared_ptr<const CertificatePool> pool) {
    auto auth = RequestHeaderAuthenticator::create({std::move(pool),
                                                    std::move(allowedNames),
                                                    {"X-Remote-User"},
                                                    {"X-Remote-Uid"},
                                                    {"X-Remote-Group"},
                                                    {"X-Remote-Extra-"}});
    EXPECT_TRUE(auth.ok());
    return (*auth)->authenticate({headers_, {leaf ? leaf->cert.get() : nullptr, nullptr}});
  }

  TestCertificate client(std::string cn, const TestCertificate* issuer) {
    CertificateSpec spec;
    spec.commonName = std::move(cn);
    return makeCertificate(spec, issuer);
  }

  TestCertificate root_;
  std::shared_ptr<const CertificatePool> pool_;
  HeaderMap headers_;
};

TEST_F(RequestHeaderVerifierTest, NoClientCertificateIsNoOpinion) {
  EXPECT_EQ(run(nullptr, {}, pool_).outcome, Outcome::kNoOpinion);
}

TEST_F(RequestHeaderVerifierTest, NoCaLoadedIsNoOpinion) {
  auto leaf = client("front-proxy-client", &root_);
  EXPECT_EQ(run(&leaf, {}, nullptr).outcome, Outcome::kNoOpinion);
}

TEST_F(RequestHeaderVerifierTest, ValidCertificateAnyName) {
  auto leaf = client("front-proxy-client", &root_);
  AuthenticationResult r = run(&leaf, {}, pool_);
  ASSERT_EQ(r.outcome, Outcome::kAuthenticated) << r.error;
  EXPECT_EQ(r.user, (UserInfo{"alice", "", {"dev"}, {}}));
}

TEST_F(RequestHeaderVerifierTest, AllowedNames) {
  auto leaf = client("client_cn", &root_);
  EXPECT_EQ(run(&leaf, {"client_cn"}, pool_).outcome, Outcome::kAuthenticated);
  AuthenticationResult wrong = run(&leaf, {"foo", "bar"}, pool_);
  EXPECT_EQ(wrong.outcome, Outcome::kFailed);
  EXPECT_EQ(wrong.error, "x509: subject with cn=client_cn is not in the allowed list");
}

TEST_F(RequestHeaderVerifierTest, UnknownAuthorityFailsWithGoError) {
  auto other = makeCertificate(caSpec("other"));
  auto leaf = client("front-proxy-client", &other);
  AuthenticationResult r = run(&leaf, {}, pool_);
  EXPECT_EQ(r.outcome, Outcome::kFailed);
  EXPECT_EQ(r.error, "x509: certificate signed by unknown authority");
}

TEST_F(RequestHeaderVerifierTest, ServerCertificateDisallowed) {
  CertificateSpec spec;
  spec.commonName = "front-proxy-client";
  spec.extKeyUsages = std::vector<int>{NID_server_auth};
  auto leaf = makeCertificate(spec, &root_);
  AuthenticationResult r = run(&leaf, {}, pool_);
  EXPECT_EQ(r.outcome, Outcome::kFailed);
  EXPECT_EQ(r.error, "x509: certificate specifies an incompatible key usage");
}

TEST_F(RequestHeaderVerifierTest, ExpiredFails) {
  CertificateSpec spec;
  spec.commonName = "front-proxy-client";
  spec.notBefore = absl::Now() - absl::Hours(3);
  spec.notAfter = absl::Now() - absl::Hours(2);
  auto leaf = makeCertificate(spec, &root_);
  AuthenticationResult r = run(&leaf, {}, pool_);
  EXPECT_EQ(r.outcome, Outcome::kFailed);
  EXPECT_THAT(r.error, ::testing::StartsWith(
                           "x509: certificate has expired or is not yet valid: current time "));
}

TEST_F(RequestHeaderVerifierTest, ValidCertificateWithoutUsernameIsNoOpinion) {
  auto leaf = client("front-proxy-client", &root_);
  headers_.clear();
  headers_.add("X-Remote-Group", "system:masters");
  EXPECT_EQ(run(&leaf, {}, pool_).outcome, Outcome::kNoOpinion);
}

TEST_F(RequestHeaderVerifierTest, UsesTheInjectedClock) {
  auto leaf = client("front-proxy-client", &root_);
  auto auth = RequestHeaderAuthenticator::create({pool_, {}, {"X-Remote-User"}, {}, {}, {}}, [] {
    return absl::Now() + absl::Hours(24 * 365 * 100);
  });
  ASSERT_TRUE(auth.ok());
  EXPECT_EQ((*auth)->authenticate({headers_, {leaf.cert.get(), nullptr}}).outcome,
            Outcome::kFailed);
}

}  // namespace
}  // namespace aaproxy
