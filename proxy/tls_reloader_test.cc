#include "proxy/tls_reloader.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>

#include "gtest/gtest.h"

namespace aaproxy {
namespace {

void writeFile(const std::string& path, const std::string& contents) {
  std::ofstream(path, std::ios::trunc) << contents;
}

class TlsReloaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    dir_ = tmp != nullptr ? tmp : "/tmp";
    settings_.cert_file = dir_ + "/serving.crt";
    settings_.key_file = dir_ + "/serving.key";
    auto first = generateSelfSignedCertificate("first");
    auto second = generateSelfSignedCertificate("second");
    ASSERT_TRUE(first.ok() && second.ok());
    first_ = *first;
    second_ = *second;
    writeFile(settings_.cert_file, first_.first);
    writeFile(settings_.key_file, first_.second);
  }

  std::string dir_;
  ServerTlsSettings settings_;
  std::pair<std::string, std::string> first_, second_;  // {certificate, key}
  std::shared_ptr<const ServerTlsContext> published_;
};

TEST_F(TlsReloaderTest, CaChangeDuringAHalfDoneRotationKeepsTheCertificateInForce) {
  TlsReloader reloader(settings_, [this](auto context) { published_ = std::move(context); });
  ASSERT_TRUE(reloader.loadInitial().ok());
  ASSERT_EQ(published_->certificatePem(), first_.first);

  // The rotation has replaced the key but not yet the certificate.
  writeFile(settings_.key_file, second_.second);
  absl::Status s = reloader.setDynamicCas("configmap", {first_.first});
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(reloader.reloads(), 2u);
  EXPECT_EQ(published_->certificatePem(), first_.first);

  // The file check sees the mismatch and keeps the current context...
  EXPECT_FALSE(reloader.reloadIfChanged(/*force=*/false).ok());
  EXPECT_EQ(reloader.reloads(), 2u);
  // ...until the certificate is there too.
  writeFile(settings_.cert_file, second_.first);
  s = reloader.reloadIfChanged(/*force=*/false);
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(published_->certificatePem(), second_.first);
  EXPECT_EQ(reloader.reloads(), 3u);
}

TEST_F(TlsReloaderTest, ACaChangeDoesNotReadTheFilesAgain) {
  TlsReloader reloader(settings_, [this](auto context) { published_ = std::move(context); });
  ASSERT_TRUE(reloader.loadInitial().ok());
  std::remove(settings_.cert_file.c_str());
  absl::Status s = reloader.setDynamicCas("configmap", {first_.first});
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(published_->certificatePem(), first_.first);
}

}  // namespace
}  // namespace aaproxy
