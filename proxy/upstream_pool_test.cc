// UpstreamPool over TLS against a blocking OpenSSL server on a thread: keep-alive reuse, session
// resumption, an idle connection the backend closes, failures in Go's words, and reading that
// pauses at the input's high watermark and resumes on a drain.
#include "proxy/upstream_pool.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <thread>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "authn/test_certificates.h"
#include "gtest/gtest.h"
#include "proxy/upstream_tls.h"

namespace aaproxy {
namespace {

using testing::CertificateSpec;
using testing::TestCertificate;

// Accepts connections one after the other on 127.0.0.1 and runs `script` on each handshake.
class TlsTestServer {
 public:
  using Script = std::function<void(SSL*)>;

  TlsTestServer(SSL_CTX* ctx, Script script) : ctx_(ctx), script_(std::move(script)) {
    listener_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    listen(listener_, 16);
    socklen_t len = sizeof(addr);
    getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
  }

  ~TlsTestServer() {
    shutdown(listener_, SHUT_RDWR);  // wakes accept()
    thread_.join();
    close(listener_);
  }

  uint16_t port() const { return port_; }
  int handshakes() const { return handshakes_.load(); }
  int resumed() const { return resumed_.load(); }
  int failures() const { return failures_.load(); }

 private:
  void serve() {
    for (;;) {
      int fd = accept(listener_, nullptr, nullptr);
      if (fd < 0) {
        return;
      }
      SSL* ssl = SSL_new(ctx_);
      SSL_set_fd(ssl, fd);
      if (SSL_accept(ssl) == 1) {
        ++handshakes_;
        resumed_ += SSL_session_reused(ssl) ? 1 : 0;
        script_(ssl);
        SSL_shutdown(ssl);
      } else {
        ++failures_;
      }
      ERR_clear_error();
      SSL_free(ssl);
      close(fd);
    }
  }

  SSL_CTX* ctx_;
  Script script_;
  int listener_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
  std::atomic<int> handshakes_{0};
  std::atomic<int> resumed_{0};
  std::atomic<int> failures_{0};
};

// Reads one request head; false when the peer closed.
bool readRequest(SSL* ssl, std::string* head = nullptr) {
  std::string data;
  char buf[4096];
  while (data.find("\r\n\r\n") == std::string::npos) {
    int n = SSL_read(ssl, buf, sizeof(buf));
    if (n <= 0) {
      return false;
    }
    data.append(buf, static_cast<size_t>(n));
  }
  if (head != nullptr) {
    *head = data;
  }
  return true;
}

void writeAll(SSL* ssl, const std::string& data) {
  SSL_write(ssl, data.data(), static_cast<int>(data.size()));
}

struct RecordingHandler : UpstreamConnection::Handler {
  void onUpstreamConnected() override { connected = true; }
  void onUpstreamReadable() override {
    if (on_readable) {
      on_readable();
    }
  }
  void onUpstreamDrained() override {}
  void onUpstreamClosed(const std::string& error) override {
    closed = error;
    connected_at_close = connection != nullptr && connection->connected();
  }

  UpstreamConnection* connection = nullptr;
  bool connected = false;
  std::function<void()> on_readable;
  std::optional<std::string> closed;
  bool connected_at_close = false;
};

class UpstreamPoolTlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    signal(SIGPIPE, SIG_IGN);  // as aa-proxy: writes to a reset connection fail with EPIPE
    ca_ = new TestCertificate(testing::makeCertificate(testing::caSpec("pool CA")));
    other_ca_ = new TestCertificate(testing::makeCertificate(testing::caSpec("other CA")));
    CertificateSpec spec;
    spec.commonName = "backend";
    spec.extKeyUsages = std::vector<int>{NID_server_auth};
    spec.subjectAltNames = {"IP:127.0.0.1"};
    server_ = new TestCertificate(testing::makeCertificate(spec, ca_));
    untrusted_ = new TestCertificate(testing::makeCertificate(spec, other_ca_));
    ca_file_ = new std::string(::testing::TempDir() + "/pool-ca.pem");
    FILE* f = std::fopen(ca_file_->c_str(), "w");
    std::fputs(ca_->pem().c_str(), f);
    std::fclose(f);
  }

  static SslCtxPtr serverContext(const TestCertificate& cert, bool require_client_cert = false) {
    SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
    SSL_CTX_use_certificate(ctx.get(), cert.cert.get());
    SSL_CTX_use_PrivateKey(ctx.get(), cert.key.get());
    if (require_client_cert) {
      SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    }
    return ctx;
  }

  std::unique_ptr<UpstreamPool> pool(uint16_t port) {
    UpstreamAddress address;
    address.kind = UpstreamAddress::Kind::kHttps;
    address.host = "127.0.0.1";
    address.port = port;
    address.tls.ca_file = *ca_file_;
    address.display = "https://127.0.0.1:" + std::to_string(port);
    auto tls = UpstreamTlsContext::create(address);
    EXPECT_TRUE(tls.ok()) << tls.status();
    return std::make_unique<UpstreamPool>(base_.get(), address, *tls, absl::Seconds(5), 8);
  }

  // Runs the loop until `done` or 5 s.
  bool runUntil(const std::function<bool()>& done) {
    absl::Time deadline = absl::Now() + absl::Seconds(5);
    while (!done()) {
      if (absl::Now() > deadline) {
        return false;
      }
      timeval slice{0, 5000};
      event_base_loopexit(base_.get(), &slice);
      event_base_dispatch(base_.get());
    }
    return true;
  }

  void runFor(absl::Duration duration) {
    timeval slice = absl::ToTimeval(duration);
    event_base_loopexit(base_.get(), &slice);
    event_base_dispatch(base_.get());
  }

  // Sends a GET and waits for `expected` response bytes; leaves them in input().
  bool exchange(UpstreamConnection& conn, RecordingHandler& handler, const std::string& path,
                size_t expected) {
    std::string request = "GET " + path + " HTTP/1.1\r\nHost: backend\r\n\r\n";
    evbuffer_add(conn.output(), request.data(), request.size());
    conn.flush();
    return runUntil([&] {
      return handler.closed.has_value() || evbuffer_get_length(conn.input()) >= expected;
    });
  }

  EventBasePtr base_{event_base_new()};
  static TestCertificate* ca_;
  static TestCertificate* other_ca_;
  static TestCertificate* server_;
  static TestCertificate* untrusted_;
  static std::string* ca_file_;
};

TestCertificate* UpstreamPoolTlsTest::ca_;
TestCertificate* UpstreamPoolTlsTest::other_ca_;
TestCertificate* UpstreamPoolTlsTest::server_;
TestCertificate* UpstreamPoolTlsTest::untrusted_;
std::string* UpstreamPoolTlsTest::ca_file_;

const std::string kOk = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

TEST_F(UpstreamPoolTlsTest, KeepAliveReuseResumptionAndAnIdleClose) {
  SslCtxPtr ctx = serverContext(*server_);
  TlsTestServer server(ctx.get(), [](SSL* ssl) {
    std::string head;
    while (readRequest(ssl, &head)) {
      writeAll(ssl, kOk);
      if (head.rfind("GET /then-close ", 0) == 0) {
        absl::SleepFor(absl::Milliseconds(100));  // the connection is back in the pool by now
        return;                                   // close_notify, then the socket closes
      }
    }
  });
  auto upstream = pool(server.port());
  std::string error;
  RecordingHandler handler;
  const std::string paths[] = {"/", "/", "/then-close"};
  for (const std::string& path : paths) {
    SCOPED_TRACE(path);
    std::unique_ptr<UpstreamConnection> conn = upstream->acquire(handler, error);
    ASSERT_NE(conn, nullptr) << error;
    handler.connection = conn.get();
    EXPECT_EQ(conn->reused(), &path != &paths[0]);
    ASSERT_TRUE(exchange(*conn, handler, path, kOk.size()));
    EXPECT_FALSE(handler.closed.has_value()) << *handler.closed;
    evbuffer_drain(conn->input(), evbuffer_get_length(conn->input()));
    upstream->release(std::move(conn));
    handler.connection = nullptr;
    EXPECT_EQ(upstream->idleCount(), 1u);
  }
  // The backend closed the pooled connection: it leaves the pool, nobody hears of it.
  ASSERT_TRUE(runUntil([&] { return upstream->idleCount() == 0; }));
  EXPECT_FALSE(handler.closed.has_value());

  RecordingHandler second;
  std::unique_ptr<UpstreamConnection> conn = upstream->acquire(second, error);
  ASSERT_NE(conn, nullptr) << error;
  second.connection = conn.get();
  EXPECT_FALSE(conn->reused());
  ASSERT_TRUE(exchange(*conn, second, "/", kOk.size()));
  EXPECT_EQ(server.handshakes(), 2);
  EXPECT_EQ(server.resumed(), 1);  // the session the first connection's backend issued
  conn.reset();
}

TEST_F(UpstreamPoolTlsTest, ReadingPausesAtTheHighWatermarkAndResumesOnADrain) {
  // 10000-byte records, so that the high watermark (1 MiB) falls inside one. libevent reads on
  // past it to the record's end (OpenSSL has decrypted it anyway); updateReadEvent also covers
  // a reservation that would leave the record's rest inside OpenSSL.
  constexpr size_t kRecord = 10000;
  constexpr int kRecords = 150;
  const std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 1500000\r\n\r\n";
  const size_t total = head.size() + kRecords * kRecord;
  SslCtxPtr ctx = serverContext(*server_);
  TlsTestServer server(ctx.get(), [&](SSL* ssl) {
    if (!readRequest(ssl)) {
      return;
    }
    writeAll(ssl, head);
    std::string record(kRecord, 'x');
    for (int i = 0; i < kRecords; ++i) {
      writeAll(ssl, record);
    }
    char byte;
    SSL_read(ssl, &byte, 1);  // keeps the connection open until the client closes it
  });
  auto upstream = pool(server.port());
  std::string error;
  RecordingHandler handler;
  std::unique_ptr<UpstreamConnection> conn = upstream->acquire(handler, error);
  ASSERT_NE(conn, nullptr) << error;
  handler.connection = conn.get();
  size_t taken = 0;
  bool draining = false;
  handler.on_readable = [&] {
    if (draining) {
      taken += evbuffer_get_length(conn->input());
      evbuffer_drain(conn->input(), evbuffer_get_length(conn->input()));
    }
  };
  ASSERT_TRUE(exchange(*conn, handler, "/", kBufferHighWatermark));
  runFor(absl::Milliseconds(200));  // nothing more comes while the input is full...
  size_t held = evbuffer_get_length(conn->input());
  EXPECT_GE(held, kBufferHighWatermark);
  EXPECT_LT(held, kBufferHighWatermark + kRecord);
  draining = true;
  taken = held;
  evbuffer_drain(conn->input(), held);  // ...and after a drain the rest does
  EXPECT_TRUE(runUntil([&] { return taken == total; })) << taken << " of " << total;
  EXPECT_FALSE(handler.closed.has_value());
  conn.reset();
}

TEST_F(UpstreamPoolTlsTest, UnknownAuthorityIsAFailedConnect) {
  SslCtxPtr ctx = serverContext(*untrusted_);
  TlsTestServer server(ctx.get(), [](SSL*) {});
  auto upstream = pool(server.port());
  std::string error;
  RecordingHandler handler;
  std::unique_ptr<UpstreamConnection> conn = upstream->acquire(handler, error);
  ASSERT_NE(conn, nullptr) << error;
  handler.connection = conn.get();
  ASSERT_TRUE(runUntil([&] { return handler.closed.has_value(); }));
  EXPECT_EQ(*handler.closed,
            "tls: failed to verify certificate: x509: certificate signed by unknown authority");
  EXPECT_FALSE(handler.connected);
  EXPECT_FALSE(handler.connected_at_close);
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST_F(UpstreamPoolTlsTest, ClientCertificateRefusedAfterTheHandshakeIsAFailedConnect) {
  // TLS 1.3: the backend checks our (missing) certificate after our side of the handshake is
  // done; its alert may come before or after our request went out.
  SslCtxPtr ctx = serverContext(*server_, /*require_client_cert=*/true);
  TlsTestServer server(ctx.get(), [](SSL*) {});
  auto upstream = pool(server.port());
  for (int attempt = 0; attempt < 5; ++attempt) {
    SCOPED_TRACE(attempt);
    std::string error;
    RecordingHandler handler;
    std::unique_ptr<UpstreamConnection> conn = upstream->acquire(handler, error);
    ASSERT_NE(conn, nullptr) << error;
    handler.connection = conn.get();
    const std::string request = "GET / HTTP/1.1\r\nHost: backend\r\n\r\n";
    evbuffer_add(conn->output(), request.data(), request.size());
    conn->flush();
    ASSERT_TRUE(runUntil([&] { return handler.closed.has_value(); }));
    EXPECT_EQ(*handler.closed, "remote error: tls: certificate required");
    EXPECT_FALSE(handler.connected_at_close);
  }
}

TEST_F(UpstreamPoolTlsTest, RefusedConnectionSaysWhy) {
  int probe = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(probe, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  getsockname(probe, reinterpret_cast<sockaddr*>(&addr), &len);
  close(probe);  // a port nobody listens on
  auto upstream = pool(ntohs(addr.sin_port));
  std::string error;
  RecordingHandler handler;
  std::unique_ptr<UpstreamConnection> conn = upstream->acquire(handler, error);
  ASSERT_NE(conn, nullptr) << error;
  handler.connection = conn.get();
  ASSERT_TRUE(runUntil([&] { return handler.closed.has_value(); }));
  EXPECT_EQ(*handler.closed, "Connection refused");
  EXPECT_FALSE(handler.connected_at_close);
}

}  // namespace
}  // namespace aaproxy
