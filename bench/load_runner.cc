// The load generator's engine (see load_runner.h): connections, TLS session reuse, response
// parsing and the JSON report.
#include "bench/load_runner.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/util.h>
#include <http_parser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace aaproxy {
namespace {

uint64_t monotonicNowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

timeval toTimeval(absl::Duration d) { return absl::ToTimeval(d); }

struct EventBaseDeleter {
  void operator()(event_base* b) const { event_base_free(b); }
};
struct BuffereventDeleter {
  void operator()(bufferevent* b) const { bufferevent_free(b); }
};
struct EventDeleter {
  void operator()(event* e) const { event_free(e); }
};
struct SslCtxDeleter {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
struct SslSessionDeleter {
  void operator()(SSL_SESSION* s) const { SSL_SESSION_free(s); }
};
using EventBasePtr = std::unique_ptr<event_base, EventBaseDeleter>;
using BuffereventPtr = std::unique_ptr<bufferevent, BuffereventDeleter>;
using EventPtr = std::unique_ptr<event, EventDeleter>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxDeleter>;
using SslSessionPtr = std::unique_ptr<SSL_SESSION, SslSessionDeleter>;

std::string opensslErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty()) {
      out += "; ";
    }
    out += buf;
  }
  return out.empty() ? "unknown error" : out;
}

// The first error of each kind goes to stderr, so a broken setup (wrong CA, refused port) is
// visible without flooding the output.
struct FirstErrors {
  std::atomic<bool> connect{false};
  std::atomic<bool> io{false};
  std::atomic<bool> status{false};
  std::atomic<bool> timeout{false};
};

void reportFirst(std::atomic<bool>& once, const std::string& what) {
  if (!once.exchange(true)) {
    std::fprintf(stderr, "loadgen: %s\n", what.c_str());
  }
}

// Shared, read-only after setup.
struct LoadTarget {
  const LoadgenOptions* options = nullptr;
  sockaddr_storage address{};
  socklen_t address_len = 0;
  bool host_is_ip = false;
  SSL_CTX* ssl_ctx = nullptr;  // null for http://
  std::string request;         // the exact bytes of every request
  FirstErrors* first_errors = nullptr;
};

int g_connection_ex_index = -1;

class Worker;

// One client connection driving the closed loop: connect, send, read the whole response, repeat.
class LoadConnection {
 public:
  LoadConnection(Worker& worker, const LoadTarget& target);

  void connect();
  void storeSession(SSL_SESSION* session) { session_.reset(session); }

 private:
  static void onRead(bufferevent* bev, void* arg);
  static void onEvent(bufferevent* bev, short events, void* arg);
  static void onRetryTimer(evutil_socket_t, short, void* arg);
  static int onMessageComplete(http_parser* parser);

  void sendRequest();
  void handleResponse();
  // Drops the connection; reconnects at once, or after a pause following an error so that a
  // refusing server does not turn the loop into a busy spin.
  void reconnect(bool after_error);

  Worker& worker_;
  const LoadTarget& target_;
  BuffereventPtr bev_;
  EventPtr retry_timer_;
  SslSessionPtr session_;
  http_parser parser_{};
  http_parser_settings settings_{};
  bool connected_ = false;
  bool in_flight_ = false;
  bool message_complete_ = false;
  uint64_t sent_at_ns_ = 0;
};

class Worker {
 public:
  Worker(const LoadTarget& target, int connections, uint64_t deadline_ns)
      : target_(target), base_(event_base_new()), deadline_ns_(deadline_ns) {
    for (int i = 0; i < connections; ++i) {
      connections_.push_back(std::make_unique<LoadConnection>(*this, target_));
    }
  }

  void run() {
    for (auto& c : connections_) {
      c->connect();
    }
    const uint64_t now = monotonicNowNs();
    const uint64_t left = deadline_ns_ > now ? deadline_ns_ - now : 0;
    stop_timer_.reset(evtimer_new(base_.get(), &Worker::onStop, this));
    timeval tv = toTimeval(absl::Nanoseconds(left));
    evtimer_add(stop_timer_.get(), &tv);
    event_base_dispatch(base_.get());
    // Free connections before the base they live on.
    connections_.clear();
    stop_timer_.reset();
  }

  event_base* base() { return base_.get(); }
  LoadResult& stats() { return stats_; }
  bool stopping() const { return stopping_; }

 private:
  static void onStop(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<Worker*>(arg);
    // libevent schedules from its cached time, so the timer can fire a little early; the run
    // must last at least the requested duration.
    const uint64_t now = monotonicNowNs();
    if (now < self->deadline_ns_) {
      timeval tv = toTimeval(absl::Nanoseconds(self->deadline_ns_ - now));
      evtimer_add(self->stop_timer_.get(), &tv);
      return;
    }
    self->stopping_ = true;
    event_base_loopbreak(self->base_.get());
  }

  const LoadTarget& target_;
  EventBasePtr base_;
  uint64_t deadline_ns_;
  EventPtr stop_timer_;
  bool stopping_ = false;
  LoadResult stats_;
  std::vector<std::unique_ptr<LoadConnection>> connections_;
};

LoadConnection::LoadConnection(Worker& worker, const LoadTarget& target)
    : worker_(worker), target_(target) {
  http_parser_settings_init(&settings_);
  settings_.on_message_complete = &LoadConnection::onMessageComplete;
  retry_timer_.reset(evtimer_new(worker_.base(), &LoadConnection::onRetryTimer, this));
}

void LoadConnection::connect() {
  connected_ = false;
  in_flight_ = false;
  const int fd = socket(target_.address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ++worker_.stats().connect_errors;
    reportFirst(target_.first_errors->connect, std::string("socket: ") + std::strerror(errno));
    reconnect(/*after_error=*/true);
    return;
  }
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

  bufferevent* bev = nullptr;
  if (target_.ssl_ctx != nullptr) {
    SSL* ssl = SSL_new(target_.ssl_ctx);
    SSL_set_ex_data(ssl, g_connection_ex_index, this);
    if (session_ != nullptr) {
      SSL_set_session(ssl, session_.get());
    }
    const std::string& host = target_.options->url.host;
    if (!target_.options->insecure) {
      X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
      if (target_.host_is_ip) {
        X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str());
      } else {
        SSL_set1_host(ssl, host.c_str());
      }
    }
    if (!target_.host_is_ip) {
      SSL_set_tlsext_host_name(ssl, host.c_str());
    }
    // Takes ownership of ssl and fd (BEV_OPT_CLOSE_ON_FREE).
    bev = bufferevent_openssl_socket_new(worker_.base(), fd, ssl, BUFFEREVENT_SSL_CONNECTING,
                                         BEV_OPT_CLOSE_ON_FREE);
    if (bev != nullptr) {
      bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    }
  } else {
    bev = bufferevent_socket_new(worker_.base(), fd, BEV_OPT_CLOSE_ON_FREE);
  }
  if (bev == nullptr) {
    close(fd);
    ++worker_.stats().connect_errors;
    reportFirst(target_.first_errors->connect, "could not create a bufferevent");
    reconnect(/*after_error=*/true);
    return;
  }
  bev_.reset(bev);
  http_parser_init(&parser_, HTTP_RESPONSE);
  parser_.data = this;
  bufferevent_setcb(bev, &LoadConnection::onRead, nullptr, &LoadConnection::onEvent, this);
  const timeval timeout = toTimeval(target_.options->timeout);
  bufferevent_set_timeouts(bev, &timeout, &timeout);
  bufferevent_enable(bev, EV_READ | EV_WRITE);
  if (bufferevent_socket_connect(bev, reinterpret_cast<const sockaddr*>(&target_.address),
                                 static_cast<int>(target_.address_len)) != 0) {
    ++worker_.stats().connect_errors;
    reportFirst(target_.first_errors->connect, std::string("connect: ") + std::strerror(errno));
    reconnect(/*after_error=*/true);
  }
}

void LoadConnection::sendRequest() {
  in_flight_ = true;
  message_complete_ = false;
  sent_at_ns_ = monotonicNowNs();
  bufferevent_write(bev_.get(), target_.request.data(), target_.request.size());
}

int LoadConnection::onMessageComplete(http_parser* parser) {
  auto* self = static_cast<LoadConnection*>(parser->data);
  // We never pipeline, so nothing should follow the response; bytes that do are parsed as the
  // start of the next response and fail it.
  self->message_complete_ = true;
  return 0;
}

void LoadConnection::onRead(bufferevent* bev, void* arg) {
  auto* self = static_cast<LoadConnection*>(arg);
  evbuffer* input = bufferevent_get_input(bev);
  if (!self->in_flight_) {
    // Data nobody asked for (e.g. a 408 on an idle connection); drop the connection.
    evbuffer_drain(input, evbuffer_get_length(input));
    ++self->worker_.stats().io_errors;
    reportFirst(self->target_.first_errors->io, "unsolicited data from the server");
    self->reconnect(/*after_error=*/true);
    return;
  }
  constexpr int kMaxChunks = 16;
  evbuffer_iovec chunks[kMaxChunks];
  while (evbuffer_get_length(input) > 0 && !self->message_complete_) {
    const int n = evbuffer_peek(input, -1, nullptr, chunks, kMaxChunks);
    size_t consumed = 0;
    for (int i = 0; i < n && i < kMaxChunks && !self->message_complete_; ++i) {
      const size_t parsed =
          http_parser_execute(&self->parser_, &self->settings_,
                              static_cast<const char*>(chunks[i].iov_base), chunks[i].iov_len);
      consumed += parsed;
      if (HTTP_PARSER_ERRNO(&self->parser_) != HPE_OK) {
        ++self->worker_.stats().io_errors;
        reportFirst(self->target_.first_errors->io,
                    std::string("bad response: ") +
                        http_errno_description(HTTP_PARSER_ERRNO(&self->parser_)));
        self->reconnect(/*after_error=*/true);
        return;
      }
    }
    evbuffer_drain(input, consumed);
  }
  if (self->message_complete_) {
    self->handleResponse();
  }
}

void LoadConnection::handleResponse() {
  const uint64_t now = monotonicNowNs();
  LoadResult& stats = worker_.stats();
  in_flight_ = false;
  message_complete_ = false;
  if (worker_.stopping()) {
    return;
  }
  ++stats.responses;
  stats.latency.record(now - sent_at_ns_);
  const unsigned status = parser_.status_code;
  if (status >= 200 && status < 300) {
    ++stats.responses_2xx;
  } else {
    ++stats.non_2xx;
    reportFirst(target_.first_errors->status, "first non-2xx status: " + std::to_string(status));
  }
  if (!http_should_keep_alive(&parser_)) {
    reconnect(/*after_error=*/false);
    return;
  }
  sendRequest();
}

void LoadConnection::onEvent(bufferevent* bev, short events, void* arg) {
  auto* self = static_cast<LoadConnection*>(arg);
  LoadResult& stats = self->worker_.stats();
  if ((events & BEV_EVENT_CONNECTED) != 0) {
    self->connected_ = true;
    ++stats.connects;
    if (self->target_.ssl_ctx != nullptr) {
      SSL* ssl = bufferevent_openssl_get_ssl(bev);
      if (SSL_session_reused(ssl) != 0) {
        ++stats.tls_resumed;
      }
      if (stats.tls_protocol.empty()) {
        stats.tls_protocol = SSL_get_version(ssl);
        stats.tls_cipher = SSL_get_cipher_name(ssl);
      }
    }
    self->sendRequest();
    return;
  }
  if (self->worker_.stopping()) {
    return;
  }
  if ((events & BEV_EVENT_TIMEOUT) != 0) {
    ++stats.timeouts;
    reportFirst(self->target_.first_errors->timeout,
                self->connected_ ? "response timed out" : "connect timed out");
    self->reconnect(/*after_error=*/true);
    return;
  }
  // EOF or error.
  if (self->in_flight_ && (events & BEV_EVENT_EOF) != 0) {
    // A close-delimited body ends here.
    http_parser_execute(&self->parser_, &self->settings_, nullptr, 0);
    if (self->message_complete_) {
      self->in_flight_ = false;
      self->message_complete_ = false;
      const uint64_t now = monotonicNowNs();
      ++stats.responses;
      stats.latency.record(now - self->sent_at_ns_);
      const unsigned status = self->parser_.status_code;
      if (status >= 200 && status < 300) {
        ++stats.responses_2xx;
      } else {
        ++stats.non_2xx;
      }
      self->reconnect(/*after_error=*/false);
      return;
    }
  }
  std::string detail;
  if (self->target_.ssl_ctx != nullptr) {
    unsigned long e;
    while ((e = bufferevent_get_openssl_error(bev)) != 0) {
      if (ERR_GET_LIB(e) == 0) {
        continue;  // libevent's own marker, not an OpenSSL error
      }
      char buf[256];
      ERR_error_string_n(e, buf, sizeof(buf));
      detail += std::string(detail.empty() ? "" : "; ") + buf;
    }
  }
  const int socket_error = EVUTIL_SOCKET_ERROR();
  if (detail.empty() && (events & BEV_EVENT_ERROR) != 0 && socket_error != 0) {
    detail = evutil_socket_error_to_string(socket_error);
  }
  if (detail.empty()) {
    detail = (events & BEV_EVENT_EOF) != 0 ? "connection closed by server" : "connection error";
  }
  if (!self->connected_) {
    ++stats.connect_errors;
    reportFirst(self->target_.first_errors->connect, "connect/handshake failed: " + detail);
    self->reconnect(/*after_error=*/true);
  } else if (self->in_flight_) {
    ++stats.io_errors;
    reportFirst(self->target_.first_errors->io, "connection lost with a response due: " + detail);
    self->reconnect(/*after_error=*/true);
  } else {
    self->reconnect(/*after_error=*/false);
  }
}

void LoadConnection::reconnect(bool after_error) {
  if (bev_ != nullptr && target_.ssl_ctx != nullptr) {
    // Freeing an SSL that has not shut down marks its session not resumable; we close mid-stream
    // on purpose (server closed, error, end of run) and still want to resume next time.
    SSL_set_shutdown(bufferevent_openssl_get_ssl(bev_.get()),
                     SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
  }
  bev_.reset();
  connected_ = false;
  in_flight_ = false;
  if (worker_.stopping()) {
    return;
  }
  if (after_error) {
    const timeval pause = toTimeval(absl::Milliseconds(10));
    evtimer_add(retry_timer_.get(), &pause);
  } else {
    connect();
  }
}

void LoadConnection::onRetryTimer(evutil_socket_t, short, void* arg) {
  static_cast<LoadConnection*>(arg)->connect();
}

int onNewSession(SSL* ssl, SSL_SESSION* session) {
  auto* connection = static_cast<LoadConnection*>(SSL_get_ex_data(ssl, g_connection_ex_index));
  if (connection == nullptr) {
    return 0;
  }
  connection->storeSession(session);
  return 1;  // we keep the reference
}

absl::StatusOr<SslCtxPtr> makeSslContext(const LoadgenOptions& options) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (ctx == nullptr) {
    return absl::InternalError("SSL_CTX_new: " + opensslErrors());
  }
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  if (!options.cert_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx.get(), options.cert_file.c_str()) != 1) {
      return absl::InvalidArgumentError("--cert " + options.cert_file + ": " + opensslErrors());
    }
    if (SSL_CTX_use_PrivateKey_file(ctx.get(), options.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
      return absl::InvalidArgumentError("--key " + options.key_file + ": " + opensslErrors());
    }
    if (SSL_CTX_check_private_key(ctx.get()) != 1) {
      return absl::InvalidArgumentError("--key does not match --cert: " + opensslErrors());
    }
  }
  if (options.insecure) {
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  } else {
    if (SSL_CTX_load_verify_locations(ctx.get(), options.cacert_file.c_str(), nullptr) != 1) {
      return absl::InvalidArgumentError("--cacert " + options.cacert_file + ": " + opensslErrors());
    }
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  }
  // Client-side cache only through our callback: each connection keeps its own last session and
  // offers it when it reconnects.
  SSL_CTX_set_session_cache_mode(ctx.get(),
                                 SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx.get(), &onNewSession);
  return ctx;
}

absl::Status resolve(const LoadgenUrl& url, LoadTarget& target) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_ADDRCONFIG;
  addrinfo* result = nullptr;
  const std::string port = std::to_string(url.port);
  const int rc = getaddrinfo(url.host.c_str(), port.c_str(), &hints, &result);
  if (rc != 0 || result == nullptr) {
    return absl::InvalidArgumentError("--url: cannot resolve " + url.host + ": " +
                                      gai_strerror(rc));
  }
  std::memcpy(&target.address, result->ai_addr, result->ai_addrlen);
  target.address_len = result->ai_addrlen;
  freeaddrinfo(result);
  in6_addr ignored;
  target.host_is_ip = inet_pton(AF_INET, url.host.c_str(), &ignored) == 1 ||
                      inet_pton(AF_INET6, url.host.c_str(), &ignored) == 1;
  return absl::OkStatus();
}

std::string buildRequest(const LoadgenOptions& options) {
  bool has_host = false;
  bool has_user_agent = false;
  for (const std::string& h : options.headers) {
    has_host = has_host || strncasecmp(h.c_str(), "host:", 5) == 0;
    has_user_agent = has_user_agent || strncasecmp(h.c_str(), "user-agent:", 11) == 0;
  }
  std::string request = "GET " + options.url.path_and_query + " HTTP/1.1\r\n";
  if (!has_host) {
    request += "Host: " + options.url.host_header + "\r\n";
  }
  if (!has_user_agent) {
    request += "User-Agent: aa-proxy-bench-loadgen\r\n";
  }
  for (const std::string& h : options.headers) {
    request += h + "\r\n";
  }
  request += "\r\n";
  return request;
}

// URLs are ASCII in practice; escape what JSON requires anyway.
std::string jsonEscape(const std::string& in) {
  std::string out;
  for (char c : in) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char esc[8];
      std::snprintf(esc, sizeof(esc), "\\u%04x", c);
      out += esc;
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

void LoadResult::merge(const LoadResult& o) {
  responses += o.responses;
  responses_2xx += o.responses_2xx;
  non_2xx += o.non_2xx;
  connect_errors += o.connect_errors;
  io_errors += o.io_errors;
  timeouts += o.timeouts;
  connects += o.connects;
  tls_resumed += o.tls_resumed;
  if (tls_protocol.empty()) {
    tls_protocol = o.tls_protocol;
    tls_cipher = o.tls_cipher;
  }
  latency.merge(o.latency);
}

absl::StatusOr<LoadResult> runLoad(const LoadgenOptions& options) {
  static std::once_flag once;
  std::call_once(once, [] {
    // A peer that closes mid-write must not kill the process.
    signal(SIGPIPE, SIG_IGN);
    g_connection_ex_index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  });
  FirstErrors first_errors;
  LoadTarget target;
  target.options = &options;
  target.first_errors = &first_errors;
  if (absl::Status s = resolve(options.url, target); !s.ok()) {
    return s;
  }
  SslCtxPtr ssl_ctx;
  if (options.url.tls) {
    absl::StatusOr<SslCtxPtr> ctx = makeSslContext(options);
    if (!ctx.ok()) {
      return ctx.status();
    }
    ssl_ctx = *std::move(ctx);
    target.ssl_ctx = ssl_ctx.get();
  }
  target.request = buildRequest(options);

  const uint64_t start_ns = monotonicNowNs();
  const uint64_t deadline_ns =
      start_ns + static_cast<uint64_t>(absl::ToInt64Nanoseconds(options.duration));
  const int thread_count = std::min(options.threads, options.connections);
  std::vector<std::unique_ptr<Worker>> workers;
  for (int t = 0; t < thread_count; ++t) {
    // Spread connections as evenly as possible.
    const int n =
        options.connections / thread_count + (t < options.connections % thread_count ? 1 : 0);
    workers.push_back(std::make_unique<Worker>(target, n, deadline_ns));
  }
  std::vector<std::thread> threads;
  for (size_t t = 1; t < workers.size(); ++t) {
    threads.emplace_back([&w = *workers[t]] { w.run(); });
  }
  workers[0]->run();
  for (std::thread& t : threads) {
    t.join();
  }
  LoadResult total;
  total.elapsed_s = static_cast<double>(monotonicNowNs() - start_ns) / 1e9;
  for (auto& w : workers) {
    total.merge(w->stats());
  }
  return total;
}

std::string loadResultJson(const LoadgenOptions& options, const LoadResult& r,
                           double loadgen_cpu_s) {
  const LatencyHistogram& h = r.latency;
  auto us = [](uint64_t ns) { return static_cast<double>(ns) / 1000.0; };
  auto u = [](uint64_t v) { return static_cast<unsigned long long>(v); };
  char buf[2048];
  std::snprintf(
      buf, sizeof(buf),
      "{\"url\":\"%s://%s%s\",\"connections\":%d,\"threads\":%d,\"duration_s\":%.3f,"
      "\"requests\":%llu,\"responses_2xx\":%llu,\"errors\":%llu,\"errors_non_2xx\":%llu,"
      "\"errors_connect\":%llu,\"errors_io\":%llu,\"errors_timeout\":%llu,"
      "\"requests_per_sec\":%.1f,\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,"
      "\"p999_us\":%.1f,\"max_us\":%.1f,\"mean_us\":%.1f,\"connects\":%llu,\"tls_resumed\":%llu,"
      "\"tls_protocol\":\"%s\",\"tls_cipher\":\"%s\",\"loadgen_cpu_s\":%.3f}",
      options.url.tls ? "https" : "http", jsonEscape(options.url.host_header).c_str(),
      jsonEscape(options.url.path_and_query).c_str(), options.connections, options.threads,
      r.elapsed_s, u(r.responses), u(r.responses_2xx), u(r.errors()), u(r.non_2xx),
      u(r.connect_errors), u(r.io_errors), u(r.timeouts),
      r.elapsed_s > 0 ? static_cast<double>(r.responses) / r.elapsed_s : 0.0,
      us(h.valueAtPercentile(50)), us(h.valueAtPercentile(90)), us(h.valueAtPercentile(99)),
      us(h.valueAtPercentile(99.9)), us(h.max()), h.mean() / 1000.0, u(r.connects),
      u(r.tls_resumed), r.tls_protocol.c_str(), r.tls_cipher.c_str(), loadgen_cpu_s);
  return buf;
}

}  // namespace aaproxy
