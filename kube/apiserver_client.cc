// HTTPS/1.1 client for kube-apiserver on a libevent loop; see apiserver_client.h.
#include "kube/apiserver_client.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/util.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace aaproxy {
namespace {

struct EventDeleter {
  void operator()(event* e) const { event_free(e); }
};
using EventPtr = std::unique_ptr<event, EventDeleter>;

bool isIpLiteral(const std::string& host) {
  unsigned char buf[sizeof(struct in6_addr)];
  return evutil_inet_pton(AF_INET, host.c_str(), buf) == 1 ||
         evutil_inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

bool hasLineBreak(std::string_view s) { return s.find_first_of("\r\n") != std::string_view::npos; }

// Retry-After in whole seconds, as apimachinery reads it; nullopt when absent or malformed.
std::optional<int> retryAfterSeconds(const HeaderMap& headers) {
  std::optional<std::string_view> value = headers.get("Retry-After");
  if (!value) {
    return std::nullopt;
  }
  int seconds = 0;
  if (!absl::SimpleAtoi(absl::string_view(value->data(), value->size()), &seconds) || seconds < 0) {
    return std::nullopt;
  }
  return seconds;
}

}  // namespace

bool isRetriableStatus(int status, const HeaderMap& headers) {
  if (status == 429 || (status >= 500 && status <= 599)) {
    return true;
  }
  return retryAfterSeconds(headers).has_value();
}

struct ApiServerClient::Exchange {
  ApiServerClient* client = nullptr;
  uint64_t id = 0;
  std::string method;
  std::string path;
  std::string body;
  HeaderMap headers;
  bool streaming = false;
  ResponseCallback callback;
  StreamHandlers handlers;

  int attempts = 0;
  bool fresh_retry_used = false;
  absl::Time attempt_started;
  Connection* conn = nullptr;
  EventPtr timeout_timer;
  EventPtr retry_timer;
  ApiResponse response;
  bool headers_delivered = false;
  // An error to report from the loop (set when the attempt could not even start).
  absl::Status deferred_error;
  bool deferred_retriable = false;
};

class ApiServerClient::Connection {
 public:
  Connection(ApiServerClient& client, uint64_t id) : client_(client), id_(id) { resetParser(); }
  ~Connection() {
    if (bev_ != nullptr) {
      bufferevent_free(bev_);  // BEV_OPT_CLOSE_ON_FREE: also frees the SSL and closes the socket
    }
  }

  uint64_t id() const { return id_; }

  absl::Status start() {
    const KubeTransport& transport = *client_.transport_;
    const KubeClientConfig& config = transport.config();
    SSL* ssl = SSL_new(transport.sslContext());
    if (ssl == nullptr) {
      return absl::InternalError("SSL_new failed");
    }
    const std::string& verify_name =
        config.tls_server_name.empty() ? config.host : config.tls_server_name;
    const bool verify_ip = isIpLiteral(verify_name);
    if (!verify_ip) {
      SSL_set_tlsext_host_name(ssl, verify_name.c_str());
    }
    if (!config.insecure_skip_tls_verify) {
      X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
      X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      int ok = verify_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, verify_name.c_str())
                         : X509_VERIFY_PARAM_set1_host(param, verify_name.c_str(), 0);
      if (ok != 1) {
        SSL_free(ssl);
        return absl::InternalError("cannot set the TLS verification name");
      }
    }
    bev_ = bufferevent_openssl_socket_new(client_.base_, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                          BEV_OPT_CLOSE_ON_FREE);
    if (bev_ == nullptr) {
      SSL_free(ssl);
      return absl::InternalError("bufferevent_openssl_socket_new failed");
    }
    bufferevent_setcb(bev_, &Connection::readCallback, nullptr, &Connection::eventCallback, this);
    bufferevent_enable(bev_, EV_READ | EV_WRITE);

    if (isIpLiteral(config.host)) {
      sockaddr_storage addr{};
      int len = 0;
      if (config.host.find(':') != std::string::npos) {
        auto* a6 = reinterpret_cast<sockaddr_in6*>(&addr);
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(config.port);
        evutil_inet_pton(AF_INET6, config.host.c_str(), &a6->sin6_addr);
        len = sizeof(sockaddr_in6);
      } else {
        auto* a4 = reinterpret_cast<sockaddr_in*>(&addr);
        a4->sin_family = AF_INET;
        a4->sin_port = htons(config.port);
        evutil_inet_pton(AF_INET, config.host.c_str(), &a4->sin_addr);
        len = sizeof(sockaddr_in);
      }
      if (bufferevent_socket_connect(bev_, reinterpret_cast<sockaddr*>(&addr), len) != 0) {
        return absl::UnavailableError(
            absl::StrCat("connect: ", evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR())));
      }
    } else {
      if (client_.dns_ == nullptr) {
        client_.dns_ = evdns_base_new(
            client_.base_, EVDNS_BASE_INITIALIZE_NAMESERVERS | EVDNS_BASE_DISABLE_WHEN_INACTIVE);
        if (client_.dns_ == nullptr) {
          return absl::UnavailableError("cannot initialize the DNS resolver");
        }
      }
      if (bufferevent_socket_connect_hostname(bev_, client_.dns_, AF_UNSPEC, config.host.c_str(),
                                              config.port) != 0) {
        return absl::UnavailableError(absl::StrCat("cannot resolve ", config.host));
      }
    }
    return absl::OkStatus();
  }

  void send(Exchange& exchange, const std::string& bytes) {
    active_ = &exchange;
    exchange.conn = this;
    received_bytes_ = false;
    skip_body_ = exchange.method == "HEAD";
    bufferevent_write(bev_, bytes.data(), bytes.size());
  }

  Exchange* active() const { return active_; }
  void detach() { active_ = nullptr; }
  bool reused() const { return reused_; }
  void markReused() { reused_ = true; }

  void shutdown() {
    closed_ = true;
    if (active_ != nullptr) {
      active_->conn = nullptr;
      active_ = nullptr;
    }
    if (bev_ != nullptr) {
      bufferevent_setcb(bev_, nullptr, nullptr, nullptr, nullptr);
      bufferevent_disable(bev_, EV_READ | EV_WRITE);
    }
  }

 private:
  void resetParser() {
    http_parser_init(&parser_, HTTP_RESPONSE);
    parser_.data = this;
    header_field_.clear();
    header_value_.clear();
    in_header_value_ = false;
    message_complete_ = false;
  }

  static const http_parser_settings& settings() {
    static const http_parser_settings s = [] {
      http_parser_settings st;
      http_parser_settings_init(&st);
      st.on_header_field = [](http_parser* p, const char* at, size_t len) {
        return self(p)->onHeaderField(at, len);
      };
      st.on_header_value = [](http_parser* p, const char* at, size_t len) {
        return self(p)->onHeaderValue(at, len);
      };
      st.on_headers_complete = [](http_parser* p) { return self(p)->onHeadersComplete(); };
      st.on_body = [](http_parser* p, const char* at, size_t len) {
        return self(p)->onBody(at, len);
      };
      st.on_message_complete = [](http_parser* p) {
        self(p)->message_complete_ = true;
        http_parser_pause(p, 1);  // one response per request; look at what follows afterwards
        return 0;
      };
      return st;
    }();
    return s;
  }
  static Connection* self(http_parser* p) { return static_cast<Connection*>(p->data); }

  void flushHeader() {
    if (!header_field_.empty() && active_ != nullptr) {
      active_->response.headers.add(std::move(header_field_), std::move(header_value_));
    }
    header_field_.clear();
    header_value_.clear();
  }

  int onHeaderField(const char* at, size_t len) {
    if (in_header_value_) {
      flushHeader();
      in_header_value_ = false;
    }
    header_field_.append(at, len);
    return 0;
  }

  int onHeaderValue(const char* at, size_t len) {
    in_header_value_ = true;
    header_value_.append(at, len);
    return 0;
  }

  int onHeadersComplete() {
    flushHeader();
    if (active_ == nullptr) {
      return -1;
    }
    active_->response.status = parser_.status_code;
    client_.onResponseHead(*active_);
    if (closed_ || active_ == nullptr) {
      return -1;  // cancelled from a handler
    }
    return skip_body_ ? 1 : 0;
  }

  int onBody(const char* at, size_t len) {
    if (active_ == nullptr) {
      return -1;
    }
    Exchange& ex = *active_;
    if (ex.streaming && ex.headers_delivered) {
      if (ex.handlers.on_data) {
        ex.handlers.on_data(std::string_view(at, len));
      }
      return (closed_ || active_ == nullptr) ? -1 : 0;
    }
    if (ex.response.body.size() + len > client_.options_.max_response_bytes) {
      body_too_large_ = true;
      return -1;
    }
    ex.response.body.append(at, len);
    return 0;
  }

  static void readCallback(bufferevent* bev, void* arg) { static_cast<Connection*>(arg)->onRead(); }
  static void eventCallback(bufferevent* bev, short what, void* arg) {
    static_cast<Connection*>(arg)->onEvent(what);
  }

  void onRead() {
    evbuffer* in = bufferevent_get_input(bev_);
    size_t len = evbuffer_get_length(in);
    if (closed_ || len == 0) {
      return;
    }
    if (active_ == nullptr) {
      client_.closeConnection(*this);  // bytes nobody asked for: the connection is unusable
      return;
    }
    received_bytes_ = true;
    const char* data =
        reinterpret_cast<const char*>(evbuffer_pullup(in, static_cast<ev_ssize_t>(len)));
    size_t parsed = http_parser_execute(&parser_, &settings(), data, len);
    if (closed_) {
      return;
    }
    evbuffer_drain(in, parsed);
    afterParse(evbuffer_get_length(in) == 0, /*at_eof=*/false);
  }

  // Acts on the parser state once http_parser_execute has returned (never from inside it).
  void afterParse(bool input_empty, bool at_eof) {
    if (message_complete_) {
      bool reusable = !at_eof && input_empty && http_should_keep_alive(&parser_) != 0;
      Exchange* ex = active_;
      active_ = nullptr;
      ex->conn = nullptr;
      resetParser();
      client_.onResponseComplete(*ex, *this, reusable);
      return;
    }
    http_errno err = HTTP_PARSER_ERRNO(&parser_);
    if (err != HPE_OK) {
      Exchange* ex = active_;
      absl::Status error = body_too_large_
                               ? absl::ResourceExhaustedError(
                                     absl::StrCat(client_.server_label_, ": response larger than ",
                                                  client_.options_.max_response_bytes, " bytes"))
                               : absl::UnavailableError(absl::StrCat(
                                     client_.server_label_,
                                     ": malformed HTTP response: ", http_errno_description(err)));
      client_.closeConnection(*this);
      if (ex != nullptr) {
        client_.onAttemptFailed(*ex, error, /*retriable=*/false, false);
      }
    }
  }

  void onEvent(short what) {
    const int socket_error = EVUTIL_SOCKET_ERROR();
    if (closed_) {
      return;
    }
    if (what & BEV_EVENT_CONNECTED) {
      // TCP and TLS are up. From now on servers may close without close_notify: a body framed by
      // length or chunks is complete regardless, and an unframed one ends at EOF anyway. (Before
      // this point a dirty close must stay an error so that errno says why connecting failed.)
      connected_ = true;
      bufferevent_openssl_set_allow_dirty_shutdown(bev_, 1);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
      // OpenSSL 3 reports such a close as an error of its own ("unexpected eof while reading"),
      // which libevent passes on as one: make it the dirty EOF allowed above.
      SSL_set_options(bufferevent_openssl_get_ssl(bev_), SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
      return;
    }
    if ((what & BEV_EVENT_EOF) && active_ != nullptr && received_bytes_) {
      // A body delimited by the end of the connection completes here.
      http_parser_execute(&parser_, &settings(), nullptr, 0);
      if (message_complete_) {
        afterParse(true, /*at_eof=*/true);
        return;
      }
    }
    bool verify_failed = false;
    std::string tls_errors;
    while (unsigned long e = bufferevent_get_openssl_error(bev_)) {
      // libevent also queues bare SSL_get_error() codes (library 0) for socket-level failures;
      // those are reported through errno below.
      if (ERR_GET_LIB(e) == 0) {
        continue;
      }
      if (ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
        verify_failed = true;
      }
      char buf[256];
      ERR_error_string_n(e, buf, sizeof(buf));
      if (!tls_errors.empty()) {
        tls_errors += "; ";
      }
      tls_errors += buf;
    }
    absl::Status error;
    bool retriable = true;
    if (verify_failed) {
      SSL* ssl = bufferevent_openssl_get_ssl(bev_);
      long result = ssl != nullptr ? SSL_get_verify_result(ssl) : X509_V_ERR_UNSPECIFIED;
      error = absl::FailedPreconditionError(absl::StrCat(
          client_.server_label_,
          ": tls: failed to verify certificate: ", X509_verify_cert_error_string(result)));
      retriable = false;  // a wrong CA or name does not fix itself between attempts
    } else if (!tls_errors.empty()) {
      error = absl::UnavailableError(absl::StrCat(client_.server_label_, ": tls: ", tls_errors));
    } else if ((what & BEV_EVENT_ERROR) && bufferevent_socket_get_dns_error(bev_) != 0) {
      error = absl::UnavailableError(
          absl::StrCat(client_.server_label_,
                       ": dns: ", evutil_gai_strerror(bufferevent_socket_get_dns_error(bev_))));
      // NOLINTNEXTLINE(bugprone-branch-clone): the ECONNRESET branch repeats it after !connected_.
    } else if ((what & BEV_EVENT_ERROR) && socket_error != 0) {
      error = absl::UnavailableError(
          absl::StrCat(client_.server_label_, ": ", evutil_socket_error_to_string(socket_error)));
    } else if (!connected_) {
      error = absl::UnavailableError(
          absl::StrCat(client_.server_label_, ": connection closed during the TLS handshake"));
    } else if (socket_error == ECONNRESET) {
      // libevent reports a reset after the handshake as the dirty EOF allowed above.
      error = absl::UnavailableError(
          absl::StrCat(client_.server_label_, ": ", evutil_socket_error_to_string(socket_error)));
    } else {
      error = absl::UnavailableError(
          absl::StrCat(client_.server_label_, ": connection closed before the response"));
    }
    Exchange* ex = active_;
    // A pooled connection the server closed while idle: retry at once on a fresh one.
    const bool stale = ex != nullptr && reused_ && !received_bytes_;
    client_.closeConnection(*this);
    if (ex != nullptr) {
      client_.onAttemptFailed(*ex, error, retriable, stale);
    }
  }

  ApiServerClient& client_;
  const uint64_t id_;
  bufferevent* bev_ = nullptr;
  http_parser parser_;
  Exchange* active_ = nullptr;
  std::string header_field_;
  std::string header_value_;
  bool in_header_value_ = false;
  bool message_complete_ = false;
  bool skip_body_ = false;
  bool body_too_large_ = false;
  bool received_bytes_ = false;
  bool reused_ = false;
  bool connected_ = false;
  bool closed_ = false;
};

ApiServerClient::ApiServerClient(event_base* base, std::shared_ptr<const KubeTransport> transport,
                                 ApiServerClientOptions options)
    : base_(base),
      transport_(std::move(transport)),
      options_(options),
      server_label_(absl::StrCat("kube-apiserver ", transport_->config().server)),
      host_header_([this] {
        const KubeClientConfig& c = transport_->config();
        std::string host =
            c.host.find(':') != std::string::npos ? absl::StrCat("[", c.host, "]") : c.host;
        return c.port == 443 ? host : absl::StrCat(host, ":", c.port);
      }()) {
  cleanup_event_ = event_new(
      base_, -1, 0,
      [](evutil_socket_t, short, void* arg) {
        auto* self = static_cast<ApiServerClient*>(arg);
        self->graveyard_.clear();
        self->finished_.clear();
      },
      this);
}

ApiServerClient::~ApiServerClient() {
  exchanges_.clear();
  finished_.clear();
  idle_.clear();
  connections_.clear();
  graveyard_.clear();
  if (cleanup_event_ != nullptr) {
    event_free(cleanup_event_);
  }
  if (dns_ != nullptr) {
    evdns_base_free(dns_, 0);
  }
}

void ApiServerClient::scheduleCleanup() { event_active(cleanup_event_, 0, 0); }

ApiServerClient::Stats ApiServerClient::stats() const {
  Stats s = stats_;
  s.idle_connections = idle_.size();
  s.active_requests = exchanges_.size();
  return s;
}

void ApiServerClient::request(std::string method, std::string path, std::string body,
                              HeaderMap headers, ResponseCallback callback) {
  auto exchange = std::make_unique<Exchange>();
  exchange->method = std::move(method);
  exchange->path = std::move(path);
  exchange->body = std::move(body);
  exchange->headers = std::move(headers);
  exchange->callback = std::move(callback);
  startExchange(std::move(exchange));
}

ApiServerClient::StreamId ApiServerClient::stream(std::string method, std::string path,
                                                  HeaderMap headers, StreamHandlers handlers) {
  auto exchange = std::make_unique<Exchange>();
  exchange->method = std::move(method);
  exchange->path = std::move(path);
  exchange->headers = std::move(headers);
  exchange->streaming = true;
  exchange->handlers = std::move(handlers);
  return startExchange(std::move(exchange));
}

uint64_t ApiServerClient::startExchange(std::unique_ptr<Exchange> exchange) {
  const uint64_t id = next_id_++;
  exchange->id = id;
  exchange->client = this;
  Exchange& ex = *exchange;
  exchanges_.emplace(id, std::move(exchange));
  bool bad = hasLineBreak(ex.method) || hasLineBreak(ex.path) || ex.path.empty() ||
             ex.path[0] != '/' || ex.method.empty();
  for (const Header& h : ex.headers.entries()) {
    bad = bad || hasLineBreak(h.name) || hasLineBreak(h.value) || h.name.empty();
  }
  if (bad) {
    ex.deferred_error =
        absl::InvalidArgumentError(absl::StrCat(server_label_, ": invalid request line or header"));
    ex.deferred_retriable = false;
    scheduleRetry(ex, absl::ZeroDuration());
    return id;
  }
  startAttempt(ex);
  return id;
}

void ApiServerClient::cancel(StreamId id) {
  auto it = exchanges_.find(id);
  if (it == exchanges_.end()) {
    return;
  }
  Exchange& ex = *it->second;
  if (ex.conn != nullptr) {
    closeConnection(*ex.conn);
  }
  ex.timeout_timer.reset();
  ex.retry_timer.reset();
  finished_.push_back(std::move(it->second));
  exchanges_.erase(it);
  scheduleCleanup();
}

std::string ApiServerClient::serializeRequest(const Exchange& ex) {
  const KubeClientConfig& config = transport_->config();
  std::string out = absl::StrCat(ex.method, " ", config.path_prefix, ex.path,
                                 " HTTP/1.1\r\nHost: ", host_header_, "\r\n");
  if (!ex.headers.has("User-Agent")) {
    out += "User-Agent: aa-proxy\r\n";
  }
  if (!ex.headers.has("Accept")) {
    out += "Accept: application/json\r\n";
  }
  if (!ex.body.empty() && !ex.headers.has("Content-Type")) {
    out += "Content-Type: application/json\r\n";
  }
  if (!ex.body.empty() || ex.method == "POST" || ex.method == "PUT" || ex.method == "PATCH") {
    absl::StrAppend(&out, "Content-Length: ", ex.body.size(), "\r\n");
  }
  if (!ex.headers.has("Authorization")) {
    std::string token = transport_->tokens().token();
    if (!token.empty()) {
      absl::StrAppend(&out, "Authorization: Bearer ", token, "\r\n");
    }
  }
  for (const Header& h : ex.headers.entries()) {
    absl::StrAppend(&out, h.name, ": ", h.value, "\r\n");
  }
  out += "\r\n";
  out += ex.body;
  return out;
}

void ApiServerClient::startAttempt(Exchange& ex) {
  ++ex.attempts;
  ++stats_.attempts;
  ex.response = ApiResponse();
  ex.headers_delivered = false;
  ex.attempt_started = transport_->tokens().now();
  Connection* conn = nullptr;
  if (!idle_.empty()) {
    conn = idle_.back();
    idle_.pop_back();
  } else {
    const uint64_t conn_id = next_id_++;
    auto fresh = std::make_unique<Connection>(*this, conn_id);
    conn = fresh.get();
    connections_.emplace(conn_id, std::move(fresh));
    ++stats_.connections_opened;
    if (absl::Status s = conn->start(); !s.ok()) {
      closeConnection(*conn);
      // Reported from the loop so that callbacks never run inside request().
      ex.deferred_error = absl::UnavailableError(absl::StrCat(server_label_, ": ", s.message()));
      ex.deferred_retriable = true;
      scheduleRetry(ex, absl::ZeroDuration());
      return;
    }
  }
  conn->send(ex, serializeRequest(ex));
  ex.timeout_timer.reset(evtimer_new(
      base_,
      [](evutil_socket_t, short, void* arg) {
        auto* e = static_cast<Exchange*>(arg);
        e->client->onTimeout(*e);
      },
      &ex));
  timeval tv = absl::ToTimeval(options_.timeout);
  evtimer_add(ex.timeout_timer.get(), &tv);
}

void ApiServerClient::scheduleRetry(Exchange& ex, absl::Duration delay) {
  ex.retry_timer.reset(evtimer_new(
      base_,
      [](evutil_socket_t, short, void* arg) {
        auto* e = static_cast<Exchange*>(arg);
        ApiServerClient* client = e->client;
        if (!e->deferred_error.ok()) {
          absl::Status error = std::exchange(e->deferred_error, absl::OkStatus());
          client->onAttemptFailed(*e, error, e->deferred_retriable, false);
          return;
        }
        ++client->stats_.retries;
        client->startAttempt(*e);
      },
      &ex));
  timeval tv = absl::ToTimeval(delay);
  evtimer_add(ex.retry_timer.get(), &tv);
}

absl::Duration ApiServerClient::nextBackoff(Exchange& ex) {
  const RetryBackoff& b = options_.backoff;
  absl::Duration d = b.initial * std::pow(b.factor, ex.attempts - 1);
  if (b.jitter > 0) {
    d += d * (absl::Uniform<double>(rng_, 0.0, 1.0) * b.jitter);
  }
  return d;
}

void ApiServerClient::closeConnection(Connection& conn) {
  conn.shutdown();
  idle_.erase(std::remove(idle_.begin(), idle_.end(), &conn), idle_.end());
  auto it = connections_.find(conn.id());
  if (it != connections_.end()) {
    graveyard_.push_back(std::move(it->second));
    connections_.erase(it);
    scheduleCleanup();
  }
}

void ApiServerClient::releaseConnection(Connection& conn, bool reusable) {
  if (!reusable || idle_.size() >= options_.max_idle_connections) {
    closeConnection(conn);
    return;
  }
  conn.markReused();
  idle_.push_back(&conn);
}

void ApiServerClient::onTimeout(Exchange& ex) {
  if (ex.conn != nullptr) {
    closeConnection(*ex.conn);
  }
  finish(ex, absl::DeadlineExceededError(
                 absl::StrCat(server_label_, ": ", ex.method, " ", ex.path, ": no ",
                              ex.streaming ? "response headers" : "complete response", " within ",
                              absl::FormatDuration(options_.timeout))));
}

void ApiServerClient::onAttemptFailed(Exchange& ex, absl::Status error, bool retriable,
                                      bool fresh_retry) {
  ex.timeout_timer.reset();
  if (ex.streaming && ex.headers_delivered) {
    finish(ex, error);
    return;
  }
  if (fresh_retry && !ex.fresh_retry_used) {
    ex.fresh_retry_used = true;
    --ex.attempts;  // the pooled connection was dead; this attempt never reached the server
    --stats_.attempts;
    startAttempt(ex);
    return;
  }
  if (retriable && !ex.streaming && ex.attempts < options_.backoff.steps) {
    scheduleRetry(ex, nextBackoff(ex));
    return;
  }
  if (retriable && ex.attempts > 1) {
    error = absl::Status(error.code(),
                         absl::StrCat(error.message(), " (after ", ex.attempts, " attempts)"));
  }
  finish(ex, error);
}

void ApiServerClient::onResponseHead(Exchange& ex) {
  if (!ex.streaming) {
    return;
  }
  ex.timeout_timer.reset();  // a watch lasts as long as the server keeps it open
  ex.headers_delivered = true;
  if (ex.handlers.on_headers) {
    ex.handlers.on_headers(ex.response.status, ex.response.headers);
  }
}

void ApiServerClient::onResponseComplete(Exchange& ex, Connection& conn, bool reusable) {
  releaseConnection(conn, reusable);
  ex.timeout_timer.reset();
  if (ex.streaming) {
    finish(ex, absl::OkStatus());
    return;
  }
  if (ex.response.status == 401) {
    // As client-go: a rejected token is re-read before the next request.
    transport_->tokens().resetTokenOlderThan(ex.attempt_started);
  }
  if (isRetriableStatus(ex.response.status, ex.response.headers) &&
      ex.attempts < options_.backoff.steps) {
    absl::Duration delay = nextBackoff(ex);
    if (std::optional<int> after = retryAfterSeconds(ex.response.headers)) {
      delay = std::max(delay, absl::Seconds(*after));
    }
    scheduleRetry(ex, delay);
    return;
  }
  ApiResponse response = std::move(ex.response);
  finishWith(ex, absl::OkStatus(), &response);
}

void ApiServerClient::finish(Exchange& ex, absl::Status status) {
  finishWith(ex, std::move(status), nullptr);
}

void ApiServerClient::finishWith(Exchange& ex, absl::Status status, ApiResponse* response) {
  auto it = exchanges_.find(ex.id);
  if (it == exchanges_.end()) {
    return;
  }
  std::unique_ptr<Exchange> owned = std::move(it->second);
  exchanges_.erase(it);
  if (owned->conn != nullptr) {
    closeConnection(*owned->conn);
  }
  owned->timeout_timer.reset();
  owned->retry_timer.reset();
  // Freed on the next loop turn: parser callbacks up the stack may still refer to it.
  Exchange& kept = *owned;
  finished_.push_back(std::move(owned));
  scheduleCleanup();
  if (kept.streaming) {
    if (kept.handlers.on_end) {
      auto on_end = std::move(kept.handlers.on_end);
      kept.handlers = StreamHandlers();
      on_end(std::move(status));
    }
    return;
  }
  if (kept.callback) {
    auto callback = std::move(kept.callback);
    kept.callback = nullptr;
    if (status.ok() && response != nullptr) {
      callback(std::move(*response));
    } else {
      callback(status.ok() ? absl::InternalError("no response") : std::move(status));
    }
  }
}

}  // namespace aaproxy
