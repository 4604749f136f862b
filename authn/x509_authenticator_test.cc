// Ports upstream's TestX509 (request/x509/x509_test.go) and the CommonNameUserConversion UID and
// credential-id cases, with generated certificates.
#include "authn/x509_authenticator.h"

#include <openssl/evp.h>

#include "authn/test_certificates.h"
#include "authn/x509_verifier.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace aaproxy {
namespace {

using testing::caSpec;
using testing::CertificateSpec;
using testing::makeCertificate;
using testing::makeStack;
using ::testing::MatchesRegex;
using testing::TestCertificate;
using Outcome = AuthenticationResult::Outcome;

std::string sha256Hex(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    char buf[3];
    snprintf(buf, sizeof(buf), "%02x", md[i]);
    out += buf;
  }
  return out;
}

class X509AuthenticatorTest : public ::testing::Test {
 protected:
  X509AuthenticatorTest()
      : root_(makeCertificate(caSpec("ROOT CA"))), auth_(*CertificatePool::fromPem(root_.pem())) {}

  AuthenticationResult run(const TestCertificate& leaf, STACK_OF(X509) * chain = nullptr) {
    return auth_.authenticate({headers_, {leaf.cert.get(), chain}});
  }

  TestCertificate root_;
  X509Authenticator auth_;
  HeaderMap headers_;
};

TEST_F(X509AuthenticatorTest, NoCertificateIsNoOpinion) {
  EXPECT_EQ(auth_.authenticate({headers_, {}}).outcome, Outcome::kNoOpinion);
}

TEST_F(X509AuthenticatorTest, NoCaIsNoOpinion) {
  auto leaf = makeCertificate(CertificateSpec{.commonName = "c"}, &root_);
  X509Authenticator noCa(nullptr);
  EXPECT_EQ(noCa.authenticate({headers_, {leaf.cert.get(), nullptr}}).outcome, Outcome::kNoOpinion);
}

TEST_F(X509AuthenticatorTest, CommonName) {
  CertificateSpec spec;
  spec.commonName = "client_cn";
  spec.organizations = {"My Org"};
  auto leaf = makeCertificate(spec, &root_);
  AuthenticationResult r = run(leaf);
  ASSERT_EQ(r.outcome, Outcome::kAuthenticated) << r.error;
  EXPECT_EQ(r.user.name, "client_cn");
  EXPECT_EQ(r.user.uid, "");
  EXPECT_EQ(r.user.groups, std::vector<std::string>{"My Org"});
  EXPECT_EQ(r.user.extra, (std::map<std::string, std::vector<std::string>>{
                              {"authentication.kubernetes.io/credential-id",
                               {"X509SHA256=" + sha256Hex(leaf.der())}}}));
}

TEST_F(X509AuthenticatorTest, ConnectionCacheConvertsTheLeafOnce) {
  CertificateSpec spec;
  spec.commonName = "client_cn";
  auto leaf = makeCertificate(spec, &root_);
  PeerVerificationCache cache;
  AuthenticationRequest request{headers_, {leaf.cert.get(), nullptr, &cache}};
  AuthenticationResult first = auth_.authenticate(request);
  ASSERT_EQ(first.outcome, Outcome::kAuthenticated) << first.error;
  EXPECT_EQ(first.user.name, "client_cn");
  ASSERT_NE(cache.leafUser(), nullptr);

  // Rewrite the in-memory subject: a fresh conversion would now see "changed"; the connection's
  // cached one still answers (peer certificates cannot change within a TLS connection; the
  // cached verification keeps the now mismatched signature from mattering).
  X509_NAME* name = X509_get_subject_name(leaf.cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("changed"), -1, -1, 0);
  absl::StatusOr<std::optional<UserInfo>> fresh = userFromCertificate(leaf.cert.get());
  ASSERT_TRUE(fresh.ok() && fresh->has_value());
  EXPECT_EQ((*fresh)->name, "changed");
  AuthenticationResult again = auth_.authenticate(request);
  ASSERT_EQ(again.outcome, Outcome::kAuthenticated) << again.error;
  EXPECT_EQ(again.user.name, "client_cn");
  EXPECT_EQ(again.user.extra, first.user.extra);
}

TEST_F(X509AuthenticatorTest, CaWithMultipleOrganizations) {
  CertificateSpec spec = caSpec("ROOT CA WITH GROUPS");
  spec.organizations = {"My Org", "My Org 1", "My Org 2"};
  auto ca = makeCertificate(spec);
  X509Authenticator auth(*CertificatePool::fromPem(ca.pem()));
  AuthenticationResult r = auth.authenticate({headers_, {ca.cert.get(), nullptr}});
  ASSERT_EQ(r.outcome, Outcome::kAuthenticated) << r.error;
  EXPECT_EQ(r.user.name, "ROOT CA WITH GROUPS");
  EXPECT_EQ(r.user.groups, (std::vector<std::string>{"My Org", "My Org 1", "My Org 2"}));
}

TEST_F(X509AuthenticatorTest, EmptyCommonNameIsNoOpinion) {
  CertificateSpec spec;
  spec.organizations = {"system:masters"};
  auto leaf = makeCertificate(spec, &root_);
  EXPECT_EQ(run(leaf).outcome, Outcome::kNoOpinion);
}

TEST_F(X509AuthenticatorTest, Uid) {
  CertificateSpec spec;
  spec.commonName = "bob";
  spec.uids = {"uid-123"};
  auto leaf = makeCertificate(spec, &root_);
  AuthenticationResult r = run(leaf);
  ASSERT_EQ(r.outcome, Outcome::kAuthenticated) << r.error;
  EXPECT_EQ(r.user.uid, "uid-123");
}

TEST_F(X509AuthenticatorTest, MultipleUidsAreAnError) {
  CertificateSpec spec;
  spec.commonName = "bob";
  spec.uids = {"a", "b"};
  auto leaf = makeCertificate(spec, &root_);
  AuthenticationResult r = run(leaf);
  EXPECT_EQ(r.outcome, Outcome::kFailed);
  EXPECT_EQ(r.error, "expected 1 UID, but found multiple: [a b]");
}

TEST_F(X509AuthenticatorTest, EmptyUidIsAnError) {
  CertificateSpec spec;
  spec.commonName = "bob";
  spec.uids = {""};
  auto leaf = makeCertificate(spec, &root_);
  AuthenticationResult r = run(leaf);
  EXPECT_EQ(r.outcome, Outcome::kFailed);
  EXPECT_EQ(r.error, "UID cannot be an empty string");
}

TEST_F(X509AuthenticatorTest, NonStringUidIsAnError) {
  CertificateSpec spec;
  spec.commonName = "bob";
  auto leaf = makeCertificate(spec);
  // A UniversalString uid: Go parses it to a nil value, not a string.
  X509_NAME* name = X509_get_subject_name(leaf.cert.get());
  ASN1_OBJECT* oid = OBJ_txt2obj(kUserUidOid, 1);
  const unsigned char raw[] = {0x00, 0x00, 0x00, 0x41};
  ASSERT_EQ(X509_NAME_add_entry_by_OBJ(name, oid, V_ASN1_UNIVERSALSTRING, raw, 4, -1, 0), 1);
  ASN1_OBJECT_free(oid);
  absl::StatusOr<std::optional<UserInfo>> user = userFromCertificate(leaf.cert.get());
  ASSERT_FALSE(user.ok());
  EXPECT_EQ(user.status().message(), "unable to parse UID into a string");
}

TEST_F(X509AuthenticatorTest, ServerCertificateFails) {
  CertificateSpec spec;
  spec.commonName = "127.0.0.1";
  spec.extKeyUsages = std::vector<int>{NID_server_auth};
  spec.serial = 7;
  auto leaf = makeCertificate(spec, &root_);
  AuthenticationResult r = run(leaf);
  EXPECT_EQ(r.outcome, Outcome::kFailed);
  EXPECT_EQ(r.error, "verifying certificate " + certificateIdentifier(leaf.cert.get()) +
                         " failed: x509: certificate specifies an incompatible key usage");
  EXPECT_THAT(r.error, MatchesRegex("verifying certificate SN=7, SKID=[0-9A-F:]+, AKID=[0-9A-F:]+ "
                                    "failed: .*"));
}

TEST_F(X509AuthenticatorTest, SelfSignedFails) {
  auto self = makeCertificate(CertificateSpec{.commonName = "self1"});
  AuthenticationResult r = run(self);
  EXPECT_EQ(r.outcome, Outcome::kFailed);
  EXPECT_THAT(r.error, MatchesRegex("verifying certificate SN=1, .* failed: x509: certificate "
                                    "signed by unknown authority"));
}

TEST_F(X509AuthenticatorTest, FutureAndExpiredFail) {
  auto leaf = makeCertificate(CertificateSpec{.commonName = "client_cn"}, &root_);
  X509Authenticator past(*CertificatePool::fromPem(root_.pem()),
                         [] { return absl::Now() - absl::Hours(24 * 365 * 100); });
  X509Authenticator future(*CertificatePool::fromPem(root_.pem()),
                           [] { return absl::Now() + absl::Hours(24 * 365 * 100); });
  AuthenticationResult r1 = past.authenticate({headers_, {leaf.cert.get(), nullptr}});
  AuthenticationResult r2 = future.authenticate({headers_, {leaf.cert.get(), nullptr}});
  EXPECT_EQ(r1.outcome, Outcome::kFailed);
  EXPECT_THAT(r1.error, MatchesRegex(".*failed: x509: certificate has expired or is not yet "
                                     "valid: current time .* is before .*"));
  EXPECT_EQ(r2.outcome, Outcome::kFailed);
  EXPECT_THAT(r2.error, MatchesRegex(".* is after .*"));
}

TEST_F(X509AuthenticatorTest, MultiLevel) {
  auto intermediate = makeCertificate(caSpec("intermediate"), &root_);
  auto leaf = makeCertificate(CertificateSpec{.commonName = "My Client"}, &intermediate);
  auto chain = makeStack({&intermediate});
  AuthenticationResult r = run(leaf, chain.get());
  ASSERT_EQ(r.outcome, Outcome::kAuthenticated) << r.error;
  EXPECT_EQ(r.user.name, "My Client");

  CertificateSpec expired{.commonName = "My Client"};
  expired.notBefore = absl::Now() - absl::Hours(5);
  expired.notAfter = absl::Now() - absl::Hours(4);
  auto expiredLeaf = makeCertificate(expired, &intermediate);
  EXPECT_EQ(run(expiredLeaf, chain.get()).outcome, Outcome::kFailed);
}

TEST_F(X509AuthenticatorTest, LastCommonNameWinsAndNonStringValuesAreSkipped) {
  CertificateSpec spec;
  spec.commonName = "first";
  spec.organizations = {"o1"};
  auto leaf = makeCertificate(spec);
  X509_NAME* name = X509_get_subject_name(leaf.cert.get());
  const unsigned char second[] = "second";
  ASSERT_EQ(X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8, second, -1, -1, 0), 1);
  const unsigned char universal[] = {0x00, 0x00, 0x00, 0x41};
  ASSERT_EQ(
      X509_NAME_add_entry_by_NID(name, NID_commonName, V_ASN1_UNIVERSALSTRING, universal, 4, -1, 0),
      1);
  ASSERT_EQ(X509_NAME_add_entry_by_NID(name, NID_organizationName, V_ASN1_UNIVERSALSTRING,
                                       universal, 4, -1, 0),
            1);
  auto user = userFromCertificate(leaf.cert.get());
  ASSERT_TRUE(user.ok()) << user.status();
  ASSERT_TRUE(user->has_value());
  EXPECT_EQ((*user)->name, "second");
  EXPECT_EQ((*user)->groups, std::vector<std::string>{"o1"});
}

}  // namespace
}  // namespace aaproxy
