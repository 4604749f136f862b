#include "bench/load_runner.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>

#include "gtest/gtest.h"

namespace aaproxy {
namespace {

// A plain-HTTP/1.1 server (libevent's evhttp) on its own thread, counting the requests it answers.
// Paths: /ok (200, Content-Length), /chunked (200, chunked), /close (200, Connection: close),
// /missing (404).
class CountingServer {
 public:
  CountingServer() {
    static std::once_flag once;
    std::call_once(once, [] { evthread_use_pthreads(); });
    base_ = event_base_new();
    http_ = evhttp_new(base_);
    evhttp_set_gencb(http_, &CountingServer::handle, this);
    evhttp_bound_socket* bound = evhttp_bind_socket_with_handle(http_, "127.0.0.1", 0);
    sockaddr_in address{};
    socklen_t len = sizeof(address);
    getsockname(evhttp_bound_socket_get_fd(bound), reinterpret_cast<sockaddr*>(&address), &len);
    port_ = ntohs(address.sin_port);
    thread_ = std::thread([this] { event_base_dispatch(base_); });
  }
  ~CountingServer() {
    event_base_loopbreak(base_);
    thread_.join();
    evhttp_free(http_);
    event_base_free(base_);
  }

  int port() const { return port_; }
  uint64_t answered() const { return answered_.load(); }
  std::string lastHeader(const std::string& name) {
    std::lock_guard<std::mutex> lock(mu_);
    return name == "Host" ? last_host_ : last_test_header_;
  }

 private:
  static void handle(evhttp_request* req, void* arg) {
    auto* self = static_cast<CountingServer*>(arg);
    const std::string uri = evhttp_request_get_uri(req);
    evkeyvalq* in = evhttp_request_get_input_headers(req);
    {
      std::lock_guard<std::mutex> lock(self->mu_);
      const char* host = evhttp_find_header(in, "Host");
      const char* test = evhttp_find_header(in, "X-Test");
      self->last_host_ = host != nullptr ? host : "";
      self->last_test_header_ = test != nullptr ? test : "";
    }
    evbuffer* body = evbuffer_new();
    evbuffer_add_printf(body, "{\"kind\":\"SampleList\"}");
    if (uri == "/chunked") {
      evhttp_send_reply_start(req, 200, "OK");
      evhttp_send_reply_chunk(req, body);
      evbuffer_add_printf(body, "{\"more\":true}");
      evhttp_send_reply_chunk(req, body);
      evhttp_send_reply_end(req);
    } else if (uri == "/close") {
      evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
      evhttp_send_reply(req, 200, "OK", body);
    } else if (uri == "/ok") {
      evhttp_send_reply(req, 200, "OK", body);
    } else {
      evhttp_send_reply(req, 404, "Not Found", body);
    }
    evbuffer_free(body);
    ++self->answered_;
  }

  event_base* base_ = nullptr;
  evhttp* http_ = nullptr;
  int port_ = 0;
  std::thread thread_;
  std::atomic<uint64_t> answered_{0};
  std::mutex mu_;
  std::string last_host_;
  std::string last_test_header_;
};

LoadgenOptions optionsFor(int port, const std::string& path, int connections) {
  absl::StatusOr<LoadgenOptions> options = parseLoadgenOptions(
      {"--url", "http://127.0.0.1:" + std::to_string(port) + path, "--connections",
       std::to_string(connections), "--duration", "300ms", "--header", "X-Test: bench"});
  EXPECT_TRUE(options.ok()) << options.status();
  return *options;
}

// Every response we count was answered by the server; the server may have answered up to one
// more per connection that arrived after the deadline.
void expectCountsMatch(const LoadResult& result, uint64_t answered, int connections) {
  EXPECT_GT(result.responses, 0u);
  EXPECT_GE(answered, result.responses);
  EXPECT_LE(answered, result.responses + static_cast<uint64_t>(connections));
  EXPECT_EQ(result.latency.count(), result.responses);
}

TEST(LoadRunnerTest, KeepAliveCountsMatchTheServer) {
  CountingServer server;
  absl::StatusOr<LoadResult> result = runLoad(optionsFor(server.port(), "/ok", 4));
  ASSERT_TRUE(result.ok()) << result.status();
  expectCountsMatch(*result, server.answered(), 4);
  EXPECT_EQ(result->responses_2xx, result->responses);
  EXPECT_EQ(result->errors(), 0u);
  EXPECT_EQ(result->connects, 4u);  // keep-alive: no reconnects
  EXPECT_GE(result->elapsed_s, 0.3);
  EXPECT_EQ(server.lastHeader("Host"), "127.0.0.1:" + std::to_string(server.port()));
  EXPECT_EQ(server.lastHeader("X-Test"), "bench");
}

TEST(LoadRunnerTest, ChunkedResponses) {
  CountingServer server;
  absl::StatusOr<LoadResult> result = runLoad(optionsFor(server.port(), "/chunked", 3));
  ASSERT_TRUE(result.ok()) << result.status();
  expectCountsMatch(*result, server.answered(), 3);
  EXPECT_EQ(result->errors(), 0u);
  EXPECT_EQ(result->connects, 3u);
}

TEST(LoadRunnerTest, ReconnectsWhenTheServerCloses) {
  CountingServer server;
  absl::StatusOr<LoadResult> result = runLoad(optionsFor(server.port(), "/close", 2));
  ASSERT_TRUE(result.ok()) << result.status();
  expectCountsMatch(*result, server.answered(), 2);
  EXPECT_EQ(result->errors(), 0u);
  // One connection per response, plus at most one per connection open at the deadline.
  EXPECT_GE(result->connects, result->responses);
  EXPECT_LE(result->connects, result->responses + 2);
}

TEST(LoadRunnerTest, Non2xxIsCountedAsError) {
  CountingServer server;
  absl::StatusOr<LoadResult> result = runLoad(optionsFor(server.port(), "/missing", 2));
  ASSERT_TRUE(result.ok()) << result.status();
  expectCountsMatch(*result, server.answered(), 2);
  EXPECT_EQ(result->responses_2xx, 0u);
  EXPECT_EQ(result->non_2xx, result->responses);
  EXPECT_EQ(result->errors(), result->responses);
}

TEST(LoadRunnerTest, RefusedConnectionsAreConnectErrors) {
  // A port that was free a moment ago.
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  socklen_t len = sizeof(address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &len);
  close(fd);
  absl::StatusOr<LoadResult> result = runLoad(optionsFor(ntohs(address.sin_port), "/ok", 2));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->responses, 0u);
  EXPECT_GT(result->connect_errors, 0u);
  EXPECT_EQ(result->errors(), result->connect_errors);
}

TEST(LoadRunnerTest, JsonReport) {
  LoadgenOptions options = optionsFor(8080, "/a?b=\"c\"", 2);
  LoadResult result;
  result.responses = 10;
  result.responses_2xx = 9;
  result.non_2xx = 1;
  result.elapsed_s = 2.0;
  for (int i = 0; i < 10; ++i) {
    result.latency.record(1'000'000);  // 1 ms
  }
  EXPECT_EQ(loadResultJson(options, result, 0.5),
            "{\"url\":\"http://127.0.0.1:8080/a?b=\\\"c\\\"\",\"connections\":2,\"threads\":1,"
            "\"duration_s\":2.000,\"requests\":10,\"responses_2xx\":9,\"errors\":1,"
            "\"errors_non_2xx\":1,\"errors_connect\":0,\"errors_io\":0,\"errors_timeout\":0,"
            "\"requests_per_sec\":5.0,\"p50_us\":1000.0,\"p90_us\":1000.0,\"p99_us\":1000.0,"
            "\"p999_us\":1000.0,\"max_us\":1000.0,\"mean_us\":1000.0,\"connects\":0,"
            "\"tls_resumed\":0,\"tls_protocol\":\"\",\"tls_cipher\":\"\",\"loadgen_cpu_s\":0.500}");
}

}  // namespace
}  // namespace aaproxy
