#include "authn/certificate_pool.h"

#include "authn/test_certificates.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace aaproxy {
namespace {

using testing::caSpec;
using ::testing::HasSubstr;
using testing::makeCertificate;

TEST(CertificatePoolTest, ParsesEveryCertificateOfABundle) {
  auto a = makeCertificate(caSpec("ca-a"));
  auto b = makeCertificate(caSpec("ca-b"));
  auto pool = CertificatePool::fromPem("leading text\n" + a.pem() + "between\n" + b.pem());
  ASSERT_TRUE(pool.ok()) << pool.status();
  EXPECT_EQ((*pool)->size(), 2u);
  EXPECT_EQ(X509_cmp((*pool)->certificates()[0].get(), a.cert.get()), 0);
  EXPECT_EQ(X509_cmp((*pool)->certificates()[1].get(), b.cert.get()), 0);
  EXPECT_NE((*pool)->store(), nullptr);
}

TEST(CertificatePoolTest, DuplicatesAreAccepted) {
  auto a = makeCertificate(caSpec("ca-a"));
  auto pool = CertificatePool::fromPem(a.pem() + a.pem());
  ASSERT_TRUE(pool.ok()) << pool.status();
  EXPECT_EQ((*pool)->size(), 2u);
}

TEST(CertificatePoolTest, EmptyBundleIsAnError) {
  auto pool = CertificatePool::fromPem("");
  ASSERT_FALSE(pool.ok());
  EXPECT_THAT(pool.status().message(), HasSubstr("no certificates found"));
}

TEST(CertificatePoolTest, GarbageIsAnError) {
  auto pool = CertificatePool::fromPem("this is not PEM at all");
  ASSERT_FALSE(pool.ok());
  EXPECT_THAT(pool.status().message(), HasSubstr("no PEM data"));
}

TEST(CertificatePoolTest, NonCertificateBlocksAreSkippedButDoNotCount) {
  auto pool =
      CertificatePool::fromPem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n");
  ASSERT_FALSE(pool.ok());
  EXPECT_THAT(pool.status().message(), HasSubstr("no CERTIFICATE block"));

  auto a = makeCertificate(caSpec("ca-a"));
  auto mixed = CertificatePool::fromPem(
      "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n" + a.pem());
  ASSERT_TRUE(mixed.ok()) << mixed.status();
  EXPECT_EQ((*mixed)->size(), 1u);
}

TEST(CertificatePoolTest, CorruptCertificateBlockIsNamed) {
  auto a = makeCertificate(caSpec("ca-a"));
  auto pool = CertificatePool::fromPem(
      a.pem() + "-----BEGIN CERTIFICATE-----\nAAAAAAAA\n-----END CERTIFICATE-----\n");
  ASSERT_FALSE(pool.ok());
  EXPECT_THAT(pool.status().message(), HasSubstr("PEM block #2 is not a valid certificate"));
}

}  // namespace
}  // namespace aaproxy
