// UpstreamTlsContext: creation errors naming the flag, and real handshakes over memory BIOs
// against an OpenSSL server: verification, Go-worded failures, ALPN, resumption.
#include "proxy/upstream_tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "authn/test_certificates.h"
#include "gtest/gtest.h"

namespace aaproxy {
namespace {

using testing::caSpec;
using testing::CertificateSpec;
using testing::makeCertificate;
using testing::TestCertificate;

std::string writeFile(const std::string& name, const std::string& content) {
  std::string path = ::testing::TempDir() + "/" + name;
  FILE* f = std::fopen(path.c_str(), "w");
  std::fputs(content.c_str(), f);
  std::fclose(f);
  return path;
}

UpstreamAddress https(std::string host, UpstreamTlsOptions tls = {}) {
  UpstreamAddress address;
  address.kind = UpstreamAddress::Kind::kHttps;
  address.host = std::move(host);
  address.port = 8443;
  address.tls = std::move(tls);
  address.display = "https://" + address.host + ":8443";
  return address;
}

CertificateSpec serverSpec(std::vector<std::string> sans) {
  CertificateSpec spec;
  spec.commonName = "backend";
  spec.extKeyUsages = std::vector<int>{NID_server_auth};
  spec.subjectAltNames = std::move(sans);
  return spec;
}

class UpstreamTlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ca_ = new TestCertificate(makeCertificate(caSpec("upstream CA")));
    other_ca_ = new TestCertificate(makeCertificate(caSpec("other CA")));
    server_ = new TestCertificate(makeCertificate(
        serverSpec({"DNS:backend.test", "DNS:*.backend.test", "IP:127.0.0.1"}), ca_));
    client_ = new TestCertificate(makeCertificate(CertificateSpec{.commonName = "aa-proxy"}, ca_));
    ca_file_ = new std::string(writeFile("upstream-ca.pem", ca_->pem()));
    other_ca_file_ = new std::string(writeFile("other-ca.pem", other_ca_->pem()));
    client_cert_file_ = new std::string(writeFile("client.pem", client_->pem()));
    client_key_file_ = new std::string(writeFile("client-key.pem", client_->keyPem()));
  }

  // The backend: `cert` for serving; a client certificate from `ca_` required when asked.
  static SslCtxPtr serverContext(const TestCertificate& cert, bool require_client_cert = false,
                                 int max_version = 0) {
    SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
    SSL_CTX_use_certificate(ctx.get(), cert.cert.get());
    SSL_CTX_use_PrivateKey(ctx.get(), cert.key.get());
    if (max_version != 0) {
      SSL_CTX_set_max_proto_version(ctx.get(), max_version);
    }
    static const unsigned char kContext[] = "upstream-tls-test";
    SSL_CTX_set_session_id_context(ctx.get(), kContext, sizeof(kContext) - 1);
    if (require_client_cert) {
      X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx.get()), ca_->cert.get());
      SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    }
    SSL_CTX_set_alpn_select_cb(
        ctx.get(),
        [](SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
           unsigned int inlen, void*) {
          offered_alpn().assign(reinterpret_cast<const char*>(in), inlen);
          *out = in + 1;
          *outlen = in[0];
          return SSL_TLSEXT_ERR_OK;
        },
        nullptr);
    return ctx;
  }

  static std::string& offered_alpn() {
    static std::string alpn;
    return alpn;
  }

  struct Exchange {
    SslPtr client;
    SslPtr server;
    bool client_done = false;
    std::vector<unsigned long> client_errors;  // what libevent would collect for the client
  };

  // Runs the handshake over a BIO pair, then a round of application data each way (so a TLS 1.3
  // client reads the tickets, or the alert of a backend that refuses its certificate).
  static Exchange exchange(const UpstreamTlsContext& context, UpstreamTlsSessions& sessions,
                           SSL_CTX* server_ctx) {
    Exchange e;
    e.client = context.newSsl(sessions);
    e.server.reset(SSL_new(server_ctx));
    BIO* client_bio = nullptr;
    BIO* server_bio = nullptr;
    BIO_new_bio_pair(&client_bio, 0, &server_bio, 0);
    SSL_set_bio(e.client.get(), client_bio, client_bio);
    SSL_set_bio(e.server.get(), server_bio, server_bio);
    SSL_set_connect_state(e.client.get());
    SSL_set_accept_state(e.server.get());
    bool client_failed = false;
    auto client_step = [&](int rc) {
      if (rc > 0) {
        return;
      }
      int error = SSL_get_error(e.client.get(), rc);
      if (error != SSL_ERROR_WANT_READ && error != SSL_ERROR_WANT_WRITE) {
        client_failed = true;
        while (unsigned long err = ERR_get_error()) {
          e.client_errors.push_back(err);
        }
      }
      ERR_clear_error();
    };
    for (int round = 0; round < 20 && !client_failed; ++round) {
      if (!e.client_done) {
        ERR_clear_error();
        int rc = SSL_do_handshake(e.client.get());
        e.client_done = rc == 1;
        client_step(rc);
      }
      SSL_do_handshake(e.server.get());
      ERR_clear_error();
      if (e.client_done && SSL_is_init_finished(e.server.get())) {
        break;
      }
    }
    if (!e.client_done || client_failed) {
      return e;
    }
    char buf[64];
    SSL_write(e.server.get(), "pong", 4);
    SSL_write(e.client.get(), "ping", 4);
    ERR_clear_error();
    for (int round = 0; round < 4 && !client_failed; ++round) {
      SSL_read(e.server.get(), buf, sizeof(buf));
      ERR_clear_error();
      client_step(SSL_read(e.client.get(), buf, sizeof(buf)));
    }
    return e;
  }

  static std::shared_ptr<const UpstreamTlsContext> context(const UpstreamAddress& address) {
    auto created = UpstreamTlsContext::create(address);
    EXPECT_TRUE(created.ok()) << created.status();
    return created.ok() ? *created : nullptr;
  }

  static TestCertificate* ca_;
  static TestCertificate* other_ca_;
  static TestCertificate* server_;
  static TestCertificate* client_;
  static std::string* ca_file_;
  static std::string* other_ca_file_;
  static std::string* client_cert_file_;
  static std::string* client_key_file_;
};

TestCertificate* UpstreamTlsTest::ca_;
TestCertificate* UpstreamTlsTest::other_ca_;
TestCertificate* UpstreamTlsTest::server_;
TestCertificate* UpstreamTlsTest::client_;
std::string* UpstreamTlsTest::ca_file_;
std::string* UpstreamTlsTest::other_ca_file_;
std::string* UpstreamTlsTest::client_cert_file_;
std::string* UpstreamTlsTest::client_key_file_;

TEST_F(UpstreamTlsTest, CreationErrorsNameTheFlag) {
  std::string empty = writeFile("empty.pem", "");
  std::string garbage = writeFile("garbage.pem", "-----BEGIN CERTIFICATE-----\nnope\n");
  std::string other_key = writeFile("other-key.pem", other_ca_->keyPem());
  struct Case {
    UpstreamAddress address;
    std::string error;
  };
  UpstreamAddress plain = https("backend.test");
  plain.kind = UpstreamAddress::Kind::kTcp;
  plain.display = "http://backend.test:8443";
  const Case cases[] = {
      {plain, "--upstream: \"http://backend.test:8443\" is not an https:// address"},
      {https("backend.test", {.ca_file = "/nonexistent/ca.pem"}),
       "--upstream-ca-file: cannot read \"/nonexistent/ca.pem\""},
      {https("backend.test", {.ca_file = empty}),
       "--upstream-ca-file: no PEM certificates found in \"" + empty + "\""},
      {https("backend.test", {.ca_file = garbage}),
       "--upstream-ca-file: no PEM certificates found in \"" + garbage + "\""},
      {https("backend.test", {.client_cert_file = empty, .client_key_file = *client_key_file_}),
       "--upstream-client-cert-file: no PEM certificates found in \"" + empty + "\""},
      {https("backend.test",
             {.client_cert_file = *client_cert_file_, .client_key_file = "/nonexistent/key"}),
       "--upstream-client-key-file: cannot read \"/nonexistent/key\""},
      {https("backend.test",
             {.client_cert_file = *client_cert_file_, .client_key_file = *client_cert_file_}),
       "--upstream-client-key-file: no PEM private key found in \"" + *client_cert_file_ + "\""},
  };
  for (const Case& c : cases) {
    auto created = UpstreamTlsContext::create(c.address);
    ASSERT_FALSE(created.ok()) << c.error;
    EXPECT_EQ(created.status().message(), c.error);
  }
  auto mismatch = UpstreamTlsContext::create(https(
      "backend.test", {.client_cert_file = *client_cert_file_, .client_key_file = other_key}));
  ASSERT_FALSE(mismatch.ok());
  EXPECT_TRUE(absl::StartsWith(
      mismatch.status().message(),
      "--upstream-client-key-file: not the private key of --upstream-client-cert-file: "))
      << mismatch.status();
  EXPECT_EQ(ERR_peek_error(), 0u);  // nothing left on the thread's queue
}

TEST_F(UpstreamTlsTest, CreatesWithTheSystemStoreOrACaFile) {
  auto system = context(https("backend.test"));
  ASSERT_NE(system, nullptr);
  EXPECT_EQ(system->serverName(), "backend.test");
  auto with_ca = context(https("10.0.0.7", {.ca_file = *ca_file_,
                                            .client_cert_file = *client_cert_file_,
                                            .client_key_file = *client_key_file_,
                                            .server_name = "backend.test"}));
  ASSERT_NE(with_ca, nullptr);
  EXPECT_EQ(with_ca->serverName(), "backend.test");
}

TEST_F(UpstreamTlsTest, VerifiesTheNameAndOffersHttp11) {
  SslCtxPtr server = serverContext(*server_);
  for (const char* host : {"backend.test", "api.backend.test", "127.0.0.1"}) {
    SCOPED_TRACE(host);
    auto tls = context(https(host, {.ca_file = *ca_file_}));
    UpstreamTlsSessions sessions;
    offered_alpn().clear();
    Exchange e = exchange(*tls, sessions, server.get());
    EXPECT_TRUE(e.client_done);
    EXPECT_TRUE(e.client_errors.empty());
    EXPECT_EQ(offered_alpn(), std::string("\x08http/1.1", 9));
    const char* sni = SSL_get_servername(e.server.get(), TLSEXT_NAMETYPE_host_name);
    if (std::string(host) == "127.0.0.1") {
      EXPECT_EQ(sni, nullptr);  // no SNI for an IP address
    } else {
      ASSERT_NE(sni, nullptr);
      EXPECT_STREQ(sni, host);
    }
  }
}

TEST_F(UpstreamTlsTest, FailuresReadAsGoWritesThem) {
  CertificateSpec expired_spec = serverSpec({"DNS:backend.test"});
  expired_spec.notBefore = absl::FromUnixSeconds(1577836800);  // 2020-01-01
  expired_spec.notAfter = absl::FromUnixSeconds(1577923200);   // 2020-01-02
  TestCertificate expired = makeCertificate(expired_spec, ca_);
  TestCertificate no_sans = makeCertificate(serverSpec({}), ca_);
  TestCertificate dns_only = makeCertificate(serverSpec({"DNS:backend.test"}), ca_);
  TestCertificate client_only = makeCertificate(
      CertificateSpec{.commonName = "backend.test", .subjectAltNames = {"DNS:backend.test"}}, ca_);
  struct Case {
    std::string name;
    UpstreamAddress address;
    const TestCertificate* served;
    std::string error;
  };
  const Case cases[] = {
      {"another CA", https("backend.test", {.ca_file = *other_ca_file_}), server_,
       "tls: failed to verify certificate: x509: certificate signed by unknown authority"},
      {"the system store", https("backend.test"), server_,
       "tls: failed to verify certificate: x509: certificate signed by unknown authority"},
      {"wrong name", https("127.0.0.1", {.ca_file = *ca_file_, .server_name = "wrong.test"}),
       server_,
       "tls: failed to verify certificate: x509: certificate is valid for backend.test, "
       "*.backend.test, not wrong.test"},
      {"partial wildcard", https("a.b.backend.test", {.ca_file = *ca_file_}), server_,
       "tls: failed to verify certificate: x509: certificate is valid for backend.test, "
       "*.backend.test, not a.b.backend.test"},
      {"wrong IP", https("127.0.0.2", {.ca_file = *ca_file_}), server_,
       "tls: failed to verify certificate: x509: certificate is valid for 127.0.0.1, not "
       "127.0.0.2"},
      {"no IP SANs", https("127.0.0.1", {.ca_file = *ca_file_}), &dns_only,
       "tls: failed to verify certificate: x509: cannot validate certificate for 127.0.0.1 "
       "because it doesn't contain any IP SANs"},
      {"common name only", https("backend", {.ca_file = *ca_file_}), &no_sans,
       "tls: failed to verify certificate: x509: certificate relies on legacy Common Name "
       "field, use SANs instead"},
      {"client-only certificate", https("backend.test", {.ca_file = *ca_file_}), &client_only,
       "tls: failed to verify certificate: x509: certificate specifies an incompatible key "
       "usage"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    auto tls = context(c.address);
    SslCtxPtr server = serverContext(*c.served);
    UpstreamTlsSessions sessions;
    Exchange e = exchange(*tls, sessions, server.get());
    EXPECT_FALSE(e.client_done);
    UpstreamTlsError error = tls->describeError(e.client.get(), e.client_errors);
    EXPECT_EQ(error.message, c.error);
    EXPECT_FALSE(error.peer_alert);
  }

  auto tls = context(https("backend.test", {.ca_file = *ca_file_}));
  SslCtxPtr server = serverContext(expired);
  UpstreamTlsSessions sessions;
  Exchange e = exchange(*tls, sessions, server.get());
  EXPECT_TRUE(absl::StartsWith(
      tls->describeError(e.client.get(), e.client_errors).message,
      "tls: failed to verify certificate: x509: certificate has expired or is not yet valid: "
      "current time 20"));
  EXPECT_TRUE(absl::EndsWith(tls->describeError(e.client.get(), e.client_errors).message,
                             " is after 2020-01-02T00:00:00Z"));
}

TEST_F(UpstreamTlsTest, ClientCertificateRequiredByTheBackend) {
  for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    SCOPED_TRACE(version);
    SslCtxPtr server = serverContext(*server_, /*require_client_cert=*/true, version);
    // Without one the backend refuses us: during the handshake in TLS 1.2, right after our side
    // of it in TLS 1.3 (on the first read).
    auto without = context(https("backend.test", {.ca_file = *ca_file_}));
    UpstreamTlsSessions sessions;
    Exchange refused = exchange(*without, sessions, server.get());
    EXPECT_EQ(refused.client_done, version == TLS1_3_VERSION);
    UpstreamTlsError error = without->describeError(refused.client.get(), refused.client_errors);
    EXPECT_EQ(error.message, version == TLS1_3_VERSION ? "remote error: tls: certificate required"
                                                       : "remote error: tls: handshake failure");
    EXPECT_TRUE(error.peer_alert);

    auto with = context(https("backend.test", {.ca_file = *ca_file_,
                                               .client_cert_file = *client_cert_file_,
                                               .client_key_file = *client_key_file_}));
    Exchange accepted = exchange(*with, sessions, server.get());
    EXPECT_TRUE(accepted.client_done);
    EXPECT_TRUE(accepted.client_errors.empty());
    X509Ptr seen(SSL_get1_peer_certificate(accepted.server.get()));
    ASSERT_NE(seen, nullptr);
    EXPECT_EQ(X509_cmp(seen.get(), client_->cert.get()), 0);
  }
}

TEST_F(UpstreamTlsTest, TheLastSessionIsOfferedAndResumed) {
  for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    SCOPED_TRACE(version);
    SslCtxPtr server = serverContext(*server_, false, version);
    auto tls = context(https("backend.test", {.ca_file = *ca_file_}));
    UpstreamTlsSessions sessions;
    Exchange first = exchange(*tls, sessions, server.get());
    ASSERT_TRUE(first.client_done);
    EXPECT_FALSE(SSL_session_reused(first.client.get()));
    ASSERT_NE(sessions.last(), nullptr);  // TLS 1.3: from the tickets read after the handshake
    Exchange second = exchange(*tls, sessions, server.get());
    ASSERT_TRUE(second.client_done);
    EXPECT_TRUE(SSL_session_reused(second.client.get()));
    EXPECT_TRUE(SSL_session_reused(second.server.get()));
    // Another pool has its own sessions: a full handshake.
    UpstreamTlsSessions other;
    Exchange third = exchange(*tls, other, server.get());
    ASSERT_TRUE(third.client_done);
    EXPECT_FALSE(SSL_session_reused(third.client.get()));
  }
}

TEST_F(UpstreamTlsTest, PlainHttpBackendReadsAsGoSaysIt) {
  auto tls = context(https("backend.test", {.ca_file = *ca_file_}));
  UpstreamTlsSessions sessions;
  SslPtr client = tls->newSsl(sessions);
  BIO* out = BIO_new(BIO_s_mem());
  BIO* in = BIO_new(BIO_s_mem());
  const char response[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
  BIO_write(in, response, sizeof(response) - 1);
  SSL_set_bio(client.get(), in, out);
  ERR_clear_error();
  EXPECT_NE(SSL_connect(client.get()), 1);
  std::vector<unsigned long> errors;
  while (unsigned long err = ERR_get_error()) {
    errors.push_back(err);
  }
  EXPECT_EQ(tls->describeError(client.get(), errors).message,
            "tls: first record does not look like a TLS handshake");
}

}  // namespace
}  // namespace aaproxy
