// The serving handshake asks for a client certificate and accepts any (k8s.io/apiserver's
// tls.RequestClientCert); the authenticators verify it per request, so the leaf and chain must
// reach them, also on resumed sessions.
#include "proxy/tls_context.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "authn/certificate_pool.h"
#include "authn/test_certificates.h"
#include "authn/x509_verifier.h"
#include "gtest/gtest.h"

namespace aaproxy {
namespace {

using testing::caSpec;
using testing::CertificateSpec;
using testing::makeCertificate;
using testing::TestCertificate;

struct Handshake {
  SslPtr client;
  SslPtr server;
  bool done = false;
  std::string error;
};

// Runs a whole handshake over an in-memory BIO pair. The client presents `leaf` (plus
// `intermediates`) when asked, and offers `session` for resumption.
Handshake runHandshake(SSL_CTX* server_ctx, int max_version, const TestCertificate* leaf,
                       const std::vector<const TestCertificate*>& intermediates = {},
                       SSL_SESSION* session = nullptr, uint64_t client_options = 0) {
  SslCtxPtr client_ctx(SSL_CTX_new(TLS_client_method()));
  SSL_CTX_set_max_proto_version(client_ctx.get(), max_version);
  SSL_CTX_set_options(client_ctx.get(), client_options);
  SSL_CTX_set_session_cache_mode(client_ctx.get(), SSL_SESS_CACHE_CLIENT);
  if (leaf != nullptr) {
    SSL_CTX_use_certificate(client_ctx.get(), leaf->cert.get());
    SSL_CTX_use_PrivateKey(client_ctx.get(), leaf->key.get());
    for (const TestCertificate* cert : intermediates) {
      SSL_CTX_add1_chain_cert(client_ctx.get(), cert->cert.get());
    }
  }
  Handshake h;
  h.client.reset(SSL_new(client_ctx.get()));
  h.server.reset(SSL_new(server_ctx));
  BIO* client_bio = nullptr;
  BIO* server_bio = nullptr;
  BIO_new_bio_pair(&client_bio, 0, &server_bio, 0);
  SSL_set_bio(h.client.get(), client_bio, client_bio);
  SSL_set_bio(h.server.get(), server_bio, server_bio);
  SSL_set_connect_state(h.client.get());
  SSL_set_accept_state(h.server.get());
  if (session != nullptr) {
    SSL_set_session(h.client.get(), session);
  }
  bool client_done = false;
  bool server_done = false;
  for (int round = 0; round < 20 && !(client_done && server_done); ++round) {
    for (auto [ssl, done] :
         {std::pair{h.client.get(), &client_done}, std::pair{h.server.get(), &server_done}}) {
      if (*done) {
        continue;
      }
      int rc = SSL_do_handshake(ssl);
      if (rc == 1) {
        *done = true;
        continue;
      }
      int err = SSL_get_error(ssl, rc);
      if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
        h.error = drainOpenSslErrors();
        return h;
      }
    }
  }
  // TLS 1.3 tickets arrive after the handshake: let the client read them.
  char byte;
  SSL_read(h.client.get(), &byte, 1);
  ERR_clear_error();
  h.done = client_done && server_done;
  return h;
}

class ServerTlsContextTest : public ::testing::TestWithParam<int> {
 protected:
  ServerTlsContextTest()
      : client_ca_(makeCertificate(caSpec("client-ca"))),
        front_proxy_ca_(makeCertificate(caSpec("front-proxy-ca"))),
        unknown_ca_(makeCertificate(caSpec("unknown-ca"))) {}

  std::shared_ptr<const ServerTlsContext> context(std::vector<std::string> ca_pems) {
    ServerTlsSettings settings;
    settings.client_ca_pems = std::move(ca_pems);
    absl::StatusOr<std::shared_ptr<const ServerTlsContext>> context =
        ServerTlsContext::create(settings);
    EXPECT_TRUE(context.ok()) << context.status();
    return *context;
  }

  std::shared_ptr<const ServerTlsContext> contextWithBothCas() {
    return context({client_ca_.pem(), front_proxy_ca_.pem()});
  }

  TestCertificate client_ca_;
  TestCertificate front_proxy_ca_;
  TestCertificate unknown_ca_;
};

X509Ptr peerLeaf(SSL* server) { return X509Ptr(SSL_get1_peer_certificate(server)); }

TEST_P(ServerTlsContextTest, AnyClientCertificateCompletesTheHandshake) {
  CertificateSpec unknown_spec{.commonName = "mallory"};
  CertificateSpec expired_spec{.commonName = "alice",
                               .notBefore = absl::Now() - absl::Hours(48),
                               .notAfter = absl::Now() - absl::Hours(24)};
  CertificateSpec server_auth_spec{.commonName = "alice",
                                   .extKeyUsages = std::vector<int>{NID_server_auth}};
  struct Case {
    const char* name;
    TestCertificate cert;
  } cases[] = {
      {"unknown CA", makeCertificate(unknown_spec, &unknown_ca_)},
      {"self-signed", makeCertificate(unknown_spec)},
      {"expired", makeCertificate(expired_spec, &client_ca_)},
      {"serverAuth only", makeCertificate(server_auth_spec, &client_ca_)},
  };
  std::shared_ptr<const ServerTlsContext> ctx = contextWithBothCas();
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Handshake h = runHandshake(ctx->get(), GetParam(), &c.cert);
    ASSERT_TRUE(h.done) << h.error;
    X509Ptr leaf = peerLeaf(h.server.get());
    ASSERT_NE(leaf, nullptr);
    EXPECT_EQ(X509_cmp(leaf.get(), c.cert.cert.get()), 0);
    // The per-request verification is what refuses it.
    absl::StatusOr<std::shared_ptr<const CertificatePool>> pool =
        CertificatePool::fromPem(client_ca_.pem());
    ASSERT_TRUE(pool.ok()) << pool.status();
    PeerCertificates peer{leaf.get(), SSL_get_peer_cert_chain(h.server.get())};
    EXPECT_FALSE(verifyClientCertificate(**pool, peer, absl::Now()).ok());
  }
}

TEST_P(ServerTlsContextTest, AdvertisesTheConfiguredCaNames) {
  std::shared_ptr<const ServerTlsContext> ctx = contextWithBothCas();
  Handshake h = runHandshake(ctx->get(), GetParam(), nullptr);
  ASSERT_TRUE(h.done) << h.error;
  EXPECT_EQ(peerLeaf(h.server.get()), nullptr);  // asked, not required
  const STACK_OF(X509_NAME)* names = SSL_get0_peer_CA_list(h.client.get());
  ASSERT_NE(names, nullptr);
  ASSERT_EQ(sk_X509_NAME_num(names), 2);
  EXPECT_EQ(
      X509_NAME_cmp(sk_X509_NAME_value(names, 0), X509_get_subject_name(client_ca_.cert.get())), 0);
  EXPECT_EQ(X509_NAME_cmp(sk_X509_NAME_value(names, 1),
                          X509_get_subject_name(front_proxy_ca_.cert.get())),
            0);
}

TEST_P(ServerTlsContextTest, NoClientCaConfiguredAsksForNoCertificate) {
  TestCertificate alice = makeCertificate({.commonName = "alice"}, &client_ca_);
  std::shared_ptr<const ServerTlsContext> ctx = context({});
  Handshake h = runHandshake(ctx->get(), GetParam(), &alice);
  ASSERT_TRUE(h.done) << h.error;
  // The client only sends a certificate when asked.
  EXPECT_EQ(peerLeaf(h.server.get()), nullptr);
}

TEST_P(ServerTlsContextTest, ResumedSessionKeepsTheLeafAndChainForTheAuthenticators) {
  TestCertificate intermediate = makeCertificate(caSpec("intermediate"), &client_ca_);
  TestCertificate bob = makeCertificate({.commonName = "bob"}, &intermediate);
  std::shared_ptr<const ServerTlsContext> ctx = contextWithBothCas();
  absl::StatusOr<std::shared_ptr<const CertificatePool>> pool =
      CertificatePool::fromPem(client_ca_.pem());
  ASSERT_TRUE(pool.ok()) << pool.status();

  // A client that takes tickets and one that does not: either way the session (and its chain)
  // comes from the server's cache, by a stateful TLS 1.3 ticket or a TLS 1.2 session id.
  for (uint64_t client_options : {uint64_t{0}, uint64_t{SSL_OP_NO_TICKET}}) {
    SCOPED_TRACE(client_options == 0 ? "tickets" : "no tickets");
    Handshake first =
        runHandshake(ctx->get(), GetParam(), &bob, {&intermediate}, nullptr, client_options);
    ASSERT_TRUE(first.done) << first.error;
    SSL_SESSION* session = SSL_get1_session(first.client.get());
    ASSERT_NE(session, nullptr);
    Handshake resumed =
        runHandshake(ctx->get(), GetParam(), &bob, {&intermediate}, session, client_options);
    SSL_SESSION* renewed = SSL_get1_session(resumed.client.get());
    SSL_SESSION_free(session);
    ASSERT_TRUE(resumed.done) << resumed.error;
    EXPECT_EQ(SSL_session_reused(resumed.server.get()), 1);
    // A session resumed from one that a resumed connection issued keeps the chain too.
    Handshake again =
        runHandshake(ctx->get(), GetParam(), &bob, {&intermediate}, renewed, client_options);
    SSL_SESSION_free(renewed);
    ASSERT_TRUE(again.done) << again.error;
    EXPECT_EQ(SSL_session_reused(again.server.get()), 1);

    for (const Handshake* h : {&first, &resumed, &again}) {
      SCOPED_TRACE(h == &first ? "full handshake" : h == &resumed ? "resumed" : "resumed twice");
      X509Ptr leaf = peerLeaf(h->server.get());
      ASSERT_NE(leaf, nullptr);
      EXPECT_EQ(X509_cmp(leaf.get(), bob.cert.get()), 0);
      X509StackPtr chain = peerCertificateChain(h->server.get());
      ASSERT_EQ(sk_X509_num(chain.get()), 1);
      EXPECT_EQ(X509_cmp(sk_X509_value(chain.get(), 0), intermediate.cert.get()), 0);
      PeerCertificates peer{leaf.get(), chain.get()};
      EXPECT_TRUE(verifyClientCertificate(**pool, peer, absl::Now()).ok());
    }
  }
}

TEST_P(ServerTlsContextTest, ResumptionComesFromTheServerCacheWithoutDecodingCertificates) {
  TestCertificate alice = makeCertificate({.commonName = "alice"}, &client_ca_);
  std::shared_ptr<const ServerTlsContext> ctx = contextWithBothCas();
  Handshake first = runHandshake(ctx->get(), GetParam(), &alice);
  ASSERT_TRUE(first.done) << first.error;
  SSL_SESSION* session = SSL_get1_session(first.client.get());
  Handshake resumed = runHandshake(ctx->get(), GetParam(), &alice, {}, session);
  SSL_SESSION_free(session);
  ASSERT_TRUE(resumed.done) << resumed.error;
  EXPECT_EQ(SSL_session_reused(resumed.server.get()), 1);
  EXPECT_EQ(SSL_CTX_sess_hits(ctx->get()), 1);
  // The cached session's certificate object itself, not a copy decoded from a ticket.
  EXPECT_EQ(SSL_get0_peer_certificate(resumed.server.get()),
            SSL_get0_peer_certificate(first.server.get()));
}

TEST_P(ServerTlsContextTest, LeafOnlyClientHasAnEmptyChainAfterResumption) {
  TestCertificate alice = makeCertificate({.commonName = "alice"}, &client_ca_);
  std::shared_ptr<const ServerTlsContext> ctx = contextWithBothCas();
  Handshake first = runHandshake(ctx->get(), GetParam(), &alice);
  ASSERT_TRUE(first.done) << first.error;
  SSL_SESSION* session = SSL_get1_session(first.client.get());
  Handshake resumed = runHandshake(ctx->get(), GetParam(), &alice, {}, session);
  SSL_SESSION_free(session);
  ASSERT_TRUE(resumed.done) << resumed.error;
  EXPECT_EQ(SSL_session_reused(resumed.server.get()), 1);
  X509Ptr leaf = peerLeaf(resumed.server.get());
  ASSERT_NE(leaf, nullptr);
  EXPECT_EQ(X509_cmp(leaf.get(), alice.cert.get()), 0);
  EXPECT_EQ(sk_X509_num(peerCertificateChain(resumed.server.get()).get()), 0);
}

TEST(ServerTlsContextCiphers, OnlyTheConfiguredTls12SuitesAreNegotiated) {
  ServerTlsSettings settings;
  settings.cipher_list = "ECDHE-ECDSA-AES256-GCM-SHA384";  // the generated cert is ECDSA
  absl::StatusOr<std::shared_ptr<const ServerTlsContext>> ctx = ServerTlsContext::create(settings);
  ASSERT_TRUE(ctx.ok()) << ctx.status();
  Handshake ok = runHandshake((*ctx)->get(), TLS1_2_VERSION, nullptr);
  ASSERT_TRUE(ok.done) << ok.error;
  EXPECT_STREQ(SSL_get_cipher_name(ok.server.get()), "ECDHE-ECDSA-AES256-GCM-SHA384");

  settings.cipher_list = "ECDHE-ECDSA-AES128-GCM-SHA256";
  ctx = ServerTlsContext::create(settings);
  ASSERT_TRUE(ctx.ok()) << ctx.status();
  EXPECT_STREQ(SSL_get_cipher_name(runHandshake((*ctx)->get(), TLS1_2_VERSION, nullptr)
                                       .server.get()),
               "ECDHE-ECDSA-AES128-GCM-SHA256");
  // TLS 1.3 is untouched, as Go leaves it.
  Handshake tls13 = runHandshake((*ctx)->get(), TLS1_3_VERSION, nullptr);
  ASSERT_TRUE(tls13.done) << tls13.error;
  EXPECT_STREQ(SSL_get_version(tls13.server.get()), "TLSv1.3");
}

TEST(ServerTlsContextCiphers, AListOpenSslCannotUseIsAnError) {
  ServerTlsSettings settings;
  settings.cipher_list = "DES-CBC3-SHA";  // not in OpenSSL 3's default security level
  absl::StatusOr<std::shared_ptr<const ServerTlsContext>> ctx = ServerTlsContext::create(settings);
  ASSERT_FALSE(ctx.ok());
  EXPECT_TRUE(absl::StartsWith(ctx.status().message(), "--tls-cipher-suites: "))
      << ctx.status();
}

INSTANTIATE_TEST_SUITE_P(Versions, ServerTlsContextTest,
                         ::testing::Values(TLS1_2_VERSION, TLS1_3_VERSION),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return info.param == TLS1_2_VERSION ? "Tls12" : "Tls13";
                         });

}  // namespace
}  // namespace aaproxy
