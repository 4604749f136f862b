// The request/response state machine. Requests on one connection are handled strictly in order:
// the parser is paused at the end of each request until its response has been written, so
// pipelined requests wait in the input buffer. Bodies stream in both directions with watermarks.
#include "proxy/client_connection.h"

#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <climits>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "authn/identity_headers.h"
#include "proxy/forwarded_identity.h"
#include "proxy/upstream_tls.h"
#include "common/logging.h"
#include "k8s/status.h"
#include "proxy/access_log.h"
#include "proxy/health.h"
#include "proxy/proxy_metrics.h"
#include "proxy/tls_context.h"
#include "proxy/worker.h"

namespace aaproxy {
namespace {

// A local answer to a request whose body is bigger than this closes the connection instead of
// reading the body (Go's net/http drains up to 256 KiB the same way).
constexpr uint64_t kMaxDiscardBody = 256 << 10;

ClientConnection* fromParser(http_parser* parser) {
  return static_cast<ClientConnection*>(parser->data);
}

// One TLS record's worth of plaintext: what a single SSL_write can turn into one record.
constexpr size_t kMaxTlsRecordPlaintext = 16384;

void writeChunk(evbuffer* out, const char* data, size_t len) {
  char size_line[24];
  int n = std::snprintf(size_line, sizeof(size_line), "%zx\r\n", len);
  evbuffer_add(out, size_line, static_cast<size_t>(n));
  evbuffer_add(out, data, len);
  evbuffer_add(out, "\r\n", 2);
}

}  // namespace

ClientConnection::ClientConnection(Worker& worker, BufferEventPtr bev, std::string peer_ip)
    : worker_(worker),
      bev_(std::move(bev)),
      ssl_(bufferevent_openssl_get_ssl(bev_.get())),
      out_(evbuffer_new()),
      peer_ip_(std::move(peer_ip)) {
  http_parser_init(&request_parser_, HTTP_REQUEST);
  request_parser_.data = this;
  http_parser_init(&response_parser_, HTTP_RESPONSE);
  response_parser_.data = this;
}

ClientConnection::~ClientConnection() = default;

void ClientConnection::start() {
  bufferevent* bev = bev_.get();
  bufferevent_setcb(bev, &onDownstreamRead, &onDownstreamWrite, &onDownstreamEvent, this);
  bufferevent_setwatermark(bev, EV_READ, 0, kBufferHighWatermark);
  bufferevent_setwatermark(bev, EV_WRITE, kBufferLowWatermark, 0);
  bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
  bufferevent_enable(bev, EV_READ | EV_WRITE);
  timer_.reset(evtimer_new(worker_.loop().base(), &onTimer, this));
  // The TLS handshake and the first request head share the header deadline.
  armTimer(worker_.options().read_header_timeout);
}

void ClientConnection::armTimer(absl::Duration timeout) {
  idle_stages_.cancel();
  timeval tv = absl::ToTimeval(timeout);
  evtimer_add(timer_.get(), &tv);
}

void ClientConnection::armIdleTimer() {
  idle_stages_.arm(timer_.get(), worker_.options().idle_timeout);
}

void ClientConnection::releaseIdleMemory() {
  releaseEmptyChains(bufferevent_get_input(bev_.get()));
  head_ = RequestHead();
  response_head_ = ResponseHead();
  std::string().swap(upstream_request_);
  std::string().swap(identity_lines_);
  std::string().swap(downstream_response_.head);
  std::string().swap(user_name_);
  std::string().swap(metrics_verb_);
  std::string().swap(audit_id_);
}

void ClientConnection::onTimer(evutil_socket_t, short, void* self) {
  auto* conn = static_cast<ClientConnection*>(self);
  if (conn->phase_ == Phase::kAwaitingRequest &&
      conn->idle_stages_.atReleaseStop(conn->timer_.get(), conn->worker_.options().idle_timeout)) {
    conn->releaseIdleMemory();
    return;
  }
  if (conn->phase_ == Phase::kAwaitingRequest || conn->phase_ == Phase::kReadingHead) {
    AA_VLOG(4) << "closing " << conn->peer_ip_ << ": "
               << (conn->phase_ == Phase::kAwaitingRequest ? "idle" : "request header")
               << " timeout";
    conn->closeNow();
  }
}

// ---------------------------------------------------------------------------------------------
// Downstream events.

void ClientConnection::onDownstreamEvent(bufferevent* bev, short what, void* self) {
  auto* conn = static_cast<ClientConnection*>(self);
  if (what & BEV_EVENT_CONNECTED) {
    conn->handshake_done_ = true;
    SSL* ssl = conn->ssl_;
    conn->peer_leaf_.reset(SSL_get1_peer_certificate(ssl));
    conn->peer_chain_ = peerCertificateChain(ssl);
    ProxyMetrics::get().tls_handshakes.inc();
    if (SSL_session_reused(ssl)) {
      ProxyMetrics::get().tls_resumptions.inc();
    }
    AA_VLOG(4) << "TLS handshake with " << conn->peer_ip_ << " done: " << SSL_get_version(ssl)
               << (SSL_session_reused(ssl) ? " (resumed)" : "")
               << (conn->peer_leaf_ ? " with client certificate" : " without client certificate");
    const unsigned char* alpn = nullptr;
    unsigned int alpn_length = 0;
    SSL_get0_alpn_selected(ssl, &alpn, &alpn_length);
    if (alpn_length == 2 && alpn[0] == 'h' && alpn[1] == '2') {
      conn->startHttp2();
      return;
    }
    if (SSL_has_pending(ssl)) {
      // The first request came in the same read as the client's Finished (read-ahead): no
      // socket event will announce it.
      conn->processDownstreamInput();
    }
    return;
  }
  // A close before the handshake is done (with or without an alert) is a failed handshake.
  if ((what & (BEV_EVENT_ERROR | BEV_EVENT_EOF)) && !conn->handshake_done_) {
    ProxyMetrics::get().tls_handshake_errors.inc();
  }
  if (what & BEV_EVENT_ERROR) {
    unsigned long ssl_error = bufferevent_get_openssl_error(bev);
    if (ssl_error != 0) {
      char buf[256];
      ERR_error_string_n(ssl_error, buf, sizeof(buf));
      AA_VLOG(2) << "TLS error from " << conn->peer_ip_ << ": " << buf;
    }
  } else if ((what & BEV_EVENT_EOF) &&
             (conn->phase_ == Phase::kReadingHead || conn->phase_ == Phase::kAdmitting ||
              conn->phase_ == Phase::kForwarding)) {
    AA_VLOG(2) << "client " << conn->peer_ip_ << " closed the connection with a response due";
  }
  if (conn->phase_ == Phase::kTunnel && conn->upstream_) {
    // The client finished: let the backend see what is left, then end both sides.
    conn->upstream_.reset();
  }
  conn->closeNow();
}

void ClientConnection::onDownstreamRead(bufferevent*, void* self) {
  auto* conn = static_cast<ClientConnection*>(self);
  if (conn->http2_) {
    conn->http2_->onReadable();
    return;
  }
  conn->processDownstreamInput();
}

void ClientConnection::startHttp2() {
  phase_ = Phase::kHttp2;
  evtimer_del(timer_.get());  // the HTTP/2 connection keeps its own idle timer
  http2_info_.peer_ip = peer_ip_;
  http2_info_.peer_leaf = peer_leaf_.get();
  http2_info_.peer_chain = peer_chain_.get();
  http2_info_.verification_cache = &verification_cache_;
  http2_ = std::make_unique<Http2Connection>(worker_, *this, http2_info_);
  if (absl::Status s = http2_->start(); !s.ok()) {
    AA_LOG(E) << "HTTP/2 with " << peer_ip_ << ": " << s.message();
    closeNow();
    return;
  }
  http2_->onReadable();  // the client's preface may have come with its Finished
}

evbuffer* ClientConnection::input() {
  pullBufferedTls();
  return bufferevent_get_input(bev_.get());
}

void ClientConnection::send(evbuffer* bytes) {
  evbuffer_add_buffer(out_.get(), bytes);
  flushDownstream();
}

size_t ClientConnection::queuedBytes() {
  return bev_ ? evbuffer_get_length(bufferevent_get_output(bev_.get())) : 0;
}

void ClientConnection::onDownstreamWrite(bufferevent* bev, void* self) {
  auto* conn = static_cast<ClientConnection*>(self);
  if (conn->close_after_flush_) {
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
      conn->closeNow();
    }
    return;
  }
  if (conn->phase_ == Phase::kTunnel) {
    if (conn->upstream_) {
      conn->upstream_->setReading(true);
      conn->pumpToClient();
    }
    return;
  }
  if (conn->http2_) {
    conn->http2_->onWritable();
    return;
  }
  if (conn->upstream_read_blocked_ && conn->upstream_) {
    conn->upstream_read_blocked_ = false;
    conn->upstream_->setReading(true);
    conn->processUpstreamInput();
  }
}

bool ClientConnection::forwardingBodyBlocked() const {
  return phase_ == Phase::kForwarding && upstream_ &&
         evbuffer_get_length(upstream_->output()) >= kBufferHighWatermark;
}

void ClientConnection::processDownstreamInput() {
  for (;;) {
    parseDownstreamInput();
    if (!upstream_) {
      return;
    }
    // Whatever parsing queued for the backend goes out now; if that made room under the
    // watermark, parsing can go on at once.
    bool blocked = forwardingBodyBlocked();
    upstream_->flush();
    if (!blocked || forwardingBodyBlocked()) {
      return;
    }
  }
}

void ClientConnection::parseDownstreamInput() {
  if (phase_ == Phase::kTunnel) {
    if (upstream_) {
      pumpToBackend();
    }
    return;
  }
  evbuffer* input = bufferevent_get_input(bev_.get());
  while (evbuffer_get_length(input) > 0 || pullBufferedTls()) {
    if (phase_ == Phase::kClosing || phase_ == Phase::kAdmitting ||
        request_pause_ != PauseReason::kNone || forwardingBodyBlocked()) {
      return;
    }
    if (phase_ == Phase::kAwaitingRequest) {
      phase_ = Phase::kReadingHead;
      request_start_ = absl::Now();
      armTimer(worker_.options().read_header_timeout);
    }
    evbuffer_iovec vec;
    if (evbuffer_peek(input, -1, nullptr, &vec, 1) < 1) {
      return;
    }
    size_t parsed = http_parser_execute(&request_parser_, &requestSettings(),
                                        static_cast<const char*>(vec.iov_base), vec.iov_len);
    evbuffer_drain(input, parsed);
    http_errno err = HTTP_PARSER_ERRNO(&request_parser_);
    if (err == HPE_PAUSED) {
      PauseReason reason = request_pause_;
      if (reason == PauseReason::kHeadComplete) {
        startAdmission();
      } else if (reason == PauseReason::kMessageComplete) {
        onRequestComplete();
      }
      continue;  // the loop re-checks whether parsing may go on
    }
    if (err != HPE_OK) {
      int status = parse_error_status_ != 0 ? parse_error_status_ : 400;
      if (err == HPE_HEADER_OVERFLOW) {
        status = 431;
      }
      if (phase_ == Phase::kReadingHead) {
        std::string message =
            status == 431   ? "Request Header Fields Too Large"
            : status == 414 ? "Request-URI Too Long"
            : err == HPE_CB_header_field ? "malformed HTTP request: invalid header field name"
            : err == HPE_CB_header_value ? "malformed HTTP request: invalid header field value"
                            : absl::StrCat("malformed HTTP request: ", http_errno_description(err));
        AA_VLOG(2) << "bad request from " << peer_ip_ << ": " << message;
        respondWithStatus(status, status == 400 ? "BadRequest" : "", message);
        closeAfterFlush();
      } else {
        closeNow();  // a broken body mid-stream: nothing sensible to answer
      }
      return;
    }
    if (parsed < vec.iov_len) {
      closeNow();
      return;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Request parsing.

int ClientConnection::onRequestUrl(http_parser* p, const char* at, size_t len) {
  ClientConnection* c = fromParser(p);
  c->request_line_bytes_ += len;
  if (c->request_line_bytes_ > c->worker_.options().max_request_line_bytes) {
    c->parse_error_status_ = 414;
    return 1;
  }
  c->head_.target.append(at, len);
  return 0;
}

int ClientConnection::onRequestHeaderField(http_parser* p, const char* at, size_t len) {
  ClientConnection* c = fromParser(p);
  c->header_bytes_ += len;
  if (c->header_bytes_ > c->worker_.options().max_header_bytes) {
    c->parse_error_status_ = 431;
    return 1;
  }
  if (!c->request_lines_.field(c->head_.headers, c->head_.trailers, at, len)) {
    return 1;  // a space or another non-token byte in a name: 400 (HPE_CB_header_field)
  }
  return 0;
}

int ClientConnection::onRequestHeaderValue(http_parser* p, const char* at, size_t len) {
  ClientConnection* c = fromParser(p);
  c->header_bytes_ += len;
  if (c->header_bytes_ > c->worker_.options().max_header_bytes) {
    c->parse_error_status_ = 431;
    return 1;
  }
  if (!c->request_lines_.value(c->head_.headers, c->head_.trailers, at, len)) {
    return 1;  // a control byte in a value: 400 (HPE_CB_header_value)
  }
  return 0;
}

int ClientConnection::onRequestHeadersComplete(http_parser* p) {
  ClientConnection* c = fromParser(p);
  c->request_lines_.headEnded();
  RequestHead& head = c->head_;
  head.method = http_method_str(static_cast<http_method>(p->method));
  head.http_major = p->http_major;
  head.http_minor = p->http_minor;
  head.keep_alive = http_should_keep_alive(p) != 0 && !c->draining_;
  head.upgrade = p->upgrade != 0;
  head.chunked = (p->flags & F_CHUNKED) != 0;
  if (head.headers.has("Content-Length") && !head.chunked) {
    head.content_length = p->content_length;
  }
  c->request_pause_ = PauseReason::kHeadComplete;
  http_parser_pause(p, 1);
  return 0;
}

int ClientConnection::onRequestBody(http_parser* p, const char* at, size_t len) {
  ClientConnection* c = fromParser(p);
  if (c->phase_ != Phase::kForwarding || !c->upstream_) {
    return 0;  // discarded (local answer) or the backend is gone
  }
  if (c->head_.chunked) {
    writeChunk(c->upstream_->output(), at, len);
  } else {
    evbuffer_add(c->upstream_->output(), at, len);
  }
  c->request_body_sent_ += len;
  return 0;
}

int ClientConnection::onRequestMessageComplete(http_parser* p) {
  ClientConnection* c = fromParser(p);
  if (c->phase_ == Phase::kForwarding && c->upstream_ && c->head_.chunked) {
    c->writeLastChunk(c->upstream_->output(), c->head_.trailers, c->head_.headers, true);
  }
  c->request_pause_ = PauseReason::kMessageComplete;
  http_parser_pause(p, 1);
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Admission and forwarding.

void ClientConnection::startAdmission() {
  phase_ = Phase::kAdmitting;
  audit_id_ = std::string(head_.headers.get("Audit-ID").value_or(""));
  evtimer_del(timer_.get());
  ConnectionInfo info;
  info.peer_ip = peer_ip_;
  info.peer_leaf = peer_leaf_.get();
  info.peer_chain = peer_chain_.get();
  info.verification_cache = &verification_cache_;
  uint64_t seq = ++request_seq_;
  std::weak_ptr<ClientConnection> weak = weak_from_this();
  worker_.admission().admit(head_, info, worker_.loop(), [weak, seq](AdmissionVerdict verdict) {
    std::shared_ptr<ClientConnection> self = weak.lock();
    if (self && self->request_seq_ == seq && self->phase_ == Phase::kAdmitting) {
      self->onAdmitted(std::move(verdict));
    }
  });
}

void ClientConnection::onAdmitted(AdmissionVerdict verdict) {
  metrics_verb_ = std::move(verdict.verb);
  user_name_ = verdict.user.name;
  if (verdict.kind == AdmissionVerdict::Kind::kForward) {
    if (!verdict.serve_local_endpoints || !serveLocalEndpoint()) {
      upstream_index_ = verdict.upstream;
      startForwarding(verdict.user, verdict.send_identity);
    }
    return;
  }
  static const std::string kJson = "application/json";
  respondLocally(verdict.status, verdict.content_type.empty() ? kJson : verdict.content_type,
                 verdict.body, verdict.headers);
}

void ClientConnection::respondWithStatus(int status, std::string_view reason,
                                         std::string_view message) {
  std::string reason_text(reason);
  if (reason_text.empty()) {
    reason_text = std::string(httpReasonPhrase(status));
    reason_text.erase(std::remove(reason_text.begin(), reason_text.end(), ' '), reason_text.end());
  }
  respondLocally(status, "application/json", failureStatusJson(status, reason_text, message), {});
}

void ClientConnection::respondLocally(int status, const std::string& content_type,
                                      const std::string& body, const HeaderMap& headers) {
  // Keep the connection only if the rest of the request is cheap to read past.
  bool body_unread = !request_complete_ && head_.hasBody();
  bool close =
      !head_.keep_alive || head_.upgrade || phase_ == Phase::kReadingHead ||
      (body_unread && (head_.chunked || head_.content_length.value_or(0) > kMaxDiscardBody)) ||
      (phase_ == Phase::kForwarding && !request_complete_);
  std::string response =
      serializeLocalResponse(status, content_type, body, headers, close, head_.http_minor);
  evbuffer_add(out_.get(), response.data(), response.size());
  flushDownstream();
  logRequest(status);
  releaseUpstream(false);
  if (close) {
    closeAfterFlush();
    return;
  }
  phase_ = Phase::kRespondingLocally;
  response_complete_ = true;
  close_after_response_ = false;
  if (request_complete_) {
    finishCycle();
    return;
  }
  request_pause_ = PauseReason::kNone;
  http_parser_pause(&request_parser_, 0);
  processDownstreamInput();
}

bool ClientConnection::serveLocalEndpoint() {
  std::string_view target = head_.target;
  std::string_view path = target.substr(0, target.find('?'));
  std::string_view query = target.size() > path.size() ? target.substr(path.size() + 1) : "";
  if (path == "/metrics") {
    HeaderMap headers;
    headers.add("X-Content-Type-Options", "nosniff");
    respondLocally(200, "text/plain; version=0.0.4; charset=utf-8",
                   MetricsRegistry::global().render(), headers);
    return true;
  }
  if (std::optional<HealthResponse> health = serveHealthEndpoint(worker_.health(), path, query)) {
    HeaderMap headers;
    headers.add("X-Content-Type-Options", "nosniff");
    respondLocally(health->status, "text/plain; charset=utf-8", health->body, headers);
    return true;
  }
  return false;
}

void ClientConnection::endStreams() {
  if (http2_) {
    http2_->endStreams();
    return;
  }
  if (phase_ == Phase::kForwarding && response_started_ && !response_complete_) {
    if (framing_ == BodyFraming::kChunked) {
      // The terminating chunk: clients see a complete (if short) watch rather than an error.
      evbuffer_add(out_.get(), "0\r\n\r\n", 5);
    }
    logRequest(response_status_);
    releaseUpstream(false);
    closeAfterFlush();
  } else if (phase_ == Phase::kTunnel) {
    releaseUpstream(false);
    closeAfterFlush();
  }
}

void ClientConnection::drain() {
  draining_ = true;
  if (http2_) {
    http2_->drain();
    return;
  }
  if (phase_ == Phase::kAwaitingRequest &&
      evbuffer_get_length(bufferevent_get_input(bev_.get())) == 0) {
    closeNow();
  }
}

void ClientConnection::startForwarding(const UserInfo& user, bool send_identity) {
  identity_lines_.clear();
  // Admission strips them too; never forward a client's.
  if (absl::Status identity = prepareForwardedIdentity(
          head_.headers, user, send_identity, worker_.options().auth_header_fields, identity_lines_);
      !identity.ok()) {
    // A line break in a certificate's CN must not become a header line of its own.
    AA_LOG(W) << "not forwarding " << head_.method << " " << head_.target << " for user \""
              << absl::CEscape(absl::string_view(user.name.data(), user.name.size()))
              << "\": " << identity.message();
    respondWithStatus(502, "InternalError",
                      absl::StrCat("cannot forward the request: ", identity.message()));
    return;
  }
  if (head_.http_minor >= 1) {
    if (std::optional<std::string_view> expect = head_.headers.get("Expect");
        expect &&
        absl::EqualsIgnoreCase(absl::string_view(expect->data(), expect->size()), "100-continue")) {
      // Answered here, as Go's server does when the handler starts reading the body.
      evbuffer_add(out_.get(), "HTTP/1.1 100 Continue\r\n\r\n", 25);
      flushDownstream();
    }
  }
  if (head_.chunked && head_.headers.has("Trailer")) {
    // Announce only the trailers that may be forwarded (see writeLastChunk).
    HeaderMap announced = forwardableTrailerNames(head_.headers);
    worker_.admission().stripTrailers(announced, worker_.loop());
    appendTrailerAnnouncement(announced, identity_lines_);
  }
  serializeUpstreamRequest(head_, peer_ip_, identity_lines_, upstream_request_);
  phase_ = Phase::kForwarding;
  connectUpstream();
  if (phase_ != Phase::kForwarding) {
    return;
  }
  request_pause_ = PauseReason::kNone;
  http_parser_pause(&request_parser_, 0);
  processDownstreamInput();
}

void ClientConnection::connectUpstream() {
  http_parser_init(&response_parser_, HTTP_RESPONSE);
  response_parser_.data = this;
  response_lines_.reset();
  response_paused_ = false;
  response_bytes_seen_ = false;
  std::string error;
  upstream_ = worker_.upstreamPool(upstream_index_).acquire(*this, error);
  if (!upstream_) {
    connect_failed_ = true;
    onUpstreamClosed(error);
    return;
  }
  evbuffer_add(upstream_->output(), upstream_request_.data(), upstream_request_.size());
  upstream_->flush();
}

void ClientConnection::onUpstreamConnected() {}

void ClientConnection::onUpstreamDrained() {
  if (phase_ == Phase::kTunnel) {
    bufferevent_enable(bev_.get(), EV_READ);
    pumpToBackend();
    return;
  }
  if (phase_ == Phase::kForwarding && request_pause_ == PauseReason::kNone) {
    processDownstreamInput();
  }
}

void ClientConnection::onUpstreamClosed(const std::string& error) {
  if (phase_ == Phase::kTunnel) {
    upstream_.reset();
    closeAfterFlush();
    return;
  }
  bool never_connected = connect_failed_ || (upstream_ && !upstream_->connected());
  connect_failed_ = false;
  bool stale_reuse = upstream_ && upstream_->reused() && !response_bytes_seen_ &&
                     request_body_sent_ == 0 && !head_.hasBody() &&
                     mayReplayOnNewConnection(head_.method, head_.headers);
  if (!response_started_ && !response_bytes_seen_ && stale_reuse) {
    // The backend closed an idle pooled connection just as we picked it: try once on a new one
    // (only what may be sent twice: mayReplayOnNewConnection).
    AA_VLOG(4) << "retrying " << head_.method << " " << head_.target << " on a new connection";
    upstream_.reset();
    connectUpstream();
    return;
  }
  if (response_started_ && framing_ == BodyFraming::kUntilClose && error.empty()) {
    // A close-delimited body ends with the connection: tell the parser.
    http_parser_execute(&response_parser_, &responseSettings(), nullptr, 0);
    flushDownstream();
    if (response_complete_) {
      return;
    }
  }
  upstream_.reset();
  if (response_started_) {
    AA_VLOG(2) << "backend closed mid-response for " << head_.method << " " << head_.target
               << (error.empty() ? "" : ": " + error);
    closeAfterFlush();
    return;
  }
  std::string reason = error.empty() ? "connection closed before a response" : error;
  AA_LOG(E) << "backend " << worker_.options().upstreams[upstream_index_].display << " unavailable for "
            << head_.method << " " << head_.target << ": " << reason;
  (never_connected ? ProxyMetrics::get().upstream_connect_errors
                   : ProxyMetrics::get().upstream_response_errors)
      .inc();
  if (never_connected && isUpstreamTlsHandshakeError(reason)) {
    respondWithStatus(502, "InternalError",
                      absl::StrCat("backend TLS handshake failed: ", reason));
  } else if (never_connected) {
    if (worker_.health().backendReachable()) {
      worker_.health().setBackendReachable(false);
    }
    respondWithStatus(503, "ServiceUnavailable", absl::StrCat("backend unavailable: ", reason));
  } else {
    respondWithStatus(502, "InternalError", absl::StrCat("error reading from backend: ", reason));
  }
}

void ClientConnection::releaseUpstream(bool reusable) {
  if (!upstream_) {
    return;
  }
  if (reusable) {
    worker_.upstreamPool(upstream_index_).release(std::move(upstream_));
  } else {
    upstream_.reset();
  }
}

// ---------------------------------------------------------------------------------------------
// Response parsing and streaming.

void ClientConnection::onUpstreamReadable() {
  if (phase_ == Phase::kTunnel) {
    pumpToClient();
    return;
  }
  processUpstreamInput();
}

void ClientConnection::processUpstreamInput() {
  if (!upstream_) {
    return;
  }
  evbuffer* input = upstream_->input();
  while (upstream_ && evbuffer_get_length(input) > 0 && !response_paused_) {
    if (phase_ != Phase::kForwarding) {
      return;
    }
    if (evbuffer_get_length(bufferevent_get_output(bev_.get())) >= kBufferHighWatermark) {
      upstream_read_blocked_ = true;
      upstream_->setReading(false);
      return;
    }
    if (!response_bytes_seen_ && !worker_.health().backendReachable()) {
      worker_.health().setBackendReachable(true);
    }
    response_bytes_seen_ = true;
    evbuffer_iovec vec;
    if (evbuffer_peek(input, -1, nullptr, &vec, 1) < 1) {
      return;
    }
    size_t parsed = http_parser_execute(&response_parser_, &responseSettings(),
                                        static_cast<const char*>(vec.iov_base), vec.iov_len);
    evbuffer_drain(input, parsed);
    flushDownstream();
    http_errno err = HTTP_PARSER_ERRNO(&response_parser_);
    if (err == HPE_PAUSED) {
      if (tunnel_pending_) {
        enterTunnel();
      } else {
        onResponseComplete();
      }
      return;
    }
    if (err != HPE_OK || parsed < vec.iov_len) {
      AA_LOG(E) << "malformed response from backend for " << head_.method << " " << head_.target
                << ": " << http_errno_description(err);
      upstream_.reset();
      if (response_started_) {
        closeAfterFlush();
      } else {
        respondWithStatus(502, "InternalError", "malformed response from backend");
      }
      return;
    }
  }
}

int ClientConnection::onResponseStatus(http_parser* p, const char* at, size_t len) {
  fromParser(p)->response_head_.reason.append(at, len);
  return 0;
}

int ClientConnection::onResponseHeaderField(http_parser* p, const char* at, size_t len) {
  ClientConnection* c = fromParser(p);
  c->response_lines_.field(c->response_head_.headers, c->response_head_.trailers, at, len);
  return 0;
}

int ClientConnection::onResponseHeaderValue(http_parser* p, const char* at, size_t len) {
  ClientConnection* c = fromParser(p);
  c->response_lines_.value(c->response_head_.headers, c->response_head_.trailers, at, len);
  return 0;
}

int ClientConnection::onResponseHeadersComplete(http_parser* p) {
  ClientConnection* c = fromParser(p);
  c->response_lines_.headEnded();
  ResponseHead& head = c->response_head_;
  head.status = p->status_code;
  head.http_major = p->http_major;
  head.http_minor = p->http_minor;
  head.keep_alive = http_should_keep_alive(p) != 0;
  head.chunked = (p->flags & F_CHUNKED) != 0;
  if (head.headers.has("Content-Length") && !head.chunked) {
    head.content_length = p->content_length;
  }
  const bool is_head = c->head_.method == "HEAD";
  const bool interim = head.status / 100 == 1 && head.status != 101;
  const bool body_allowed = !is_head && head.status != 204 && head.status != 304;
  if (head.status == 100) {
    // Expect was not forwarded, so this is unsolicited; the client already got ours.
  } else if (head.status == 101 && !c->head_.upgrade) {
    c->parse_error_status_ = 502;
    return -1;
  } else {
    DownstreamResponse& out = c->downstream_response_;
    buildDownstreamResponse(head, c->head_, body_allowed, c->head_.keep_alive, out);
    evbuffer_add(c->out_.get(), out.head.data(), out.head.size());
    if (!interim) {
      c->response_started_ = true;
      c->framing_ = out.framing;
      c->close_after_response_ = out.close_after;
      c->response_status_ = head.status;
    }
    if (head.status == 101) {
      c->tunnel_pending_ = true;
    }
  }
  if (interim) {
    return 0;
  }
  return is_head ? 1 : 0;
}

int ClientConnection::onResponseBody(http_parser* p, const char* at, size_t len) {
  ClientConnection* c = fromParser(p);
  if (c->framing_ == BodyFraming::kChunked) {
    writeChunk(c->out_.get(), at, len);
  } else if (c->framing_ != BodyFraming::kNone) {
    evbuffer_add(c->out_.get(), at, len);
  }
  return 0;
}

int ClientConnection::onResponseMessageComplete(http_parser* p) {
  ClientConnection* c = fromParser(p);
  int status = c->response_head_.status;
  if (status / 100 == 1 && status != 101) {
    c->response_head_.reset();  // an interim response; the final one follows
    c->response_lines_.reset();
    return 0;
  }
  if (c->framing_ == BodyFraming::kChunked) {
    c->writeLastChunk(c->out_.get(), c->response_head_.trailers, c->response_head_.headers, false);
  }
  c->response_paused_ = true;
  http_parser_pause(p, 1);
  return 0;
}

void ClientConnection::writeLastChunk(evbuffer* out, HeaderMap& trailers, const HeaderMap& head,
                                      bool request) {
  if (trailers.empty()) {
    evbuffer_add(out, "0\r\n\r\n", 5);  // the usual body: nothing to build
    return;
  }
  if (request) {
    // A client must not pass an identity (or credentials) to the backend in a trailer.
    worker_.admission().stripTrailers(trailers, worker_.loop());
  }
  std::string last;
  appendLastChunk(trailers, head, last);
  evbuffer_add(out, last.data(), last.size());
}

void ClientConnection::onResponseComplete() {
  response_complete_ = true;
  logRequest(response_status_);
  bool upstream_reusable = request_complete_ && http_should_keep_alive(&response_parser_) != 0 &&
                           framing_ != BodyFraming::kUntilClose;
  releaseUpstream(upstream_reusable);
  if (!request_complete_) {
    // The backend answered before the request body was sent; the connection cannot continue.
    closeAfterFlush();
    return;
  }
  finishCycle();
}

void ClientConnection::onRequestComplete() {
  request_complete_ = true;
  if (phase_ == Phase::kRespondingLocally || (phase_ == Phase::kForwarding && response_complete_)) {
    finishCycle();
  }
}

void ClientConnection::finishCycle() {
  if (close_after_response_ || !head_.keep_alive || draining_) {
    closeAfterFlush();
    return;
  }
  // Ready for the next request, which may already be waiting in the input buffer.
  head_.reset();
  response_head_.reset();
  request_lines_.reset();
  response_lines_.reset();
  request_line_bytes_ = 0;
  header_bytes_ = 0;
  parse_error_status_ = 0;
  request_complete_ = false;
  request_body_sent_ = 0;
  upstream_request_.clear();
  user_name_.clear();
  metrics_verb_.clear();
  audit_id_.clear();
  request_logged_ = false;
  response_started_ = false;
  response_complete_ = false;
  response_bytes_seen_ = false;
  response_paused_ = false;
  close_after_response_ = false;
  framing_ = BodyFraming::kNone;
  response_status_ = 0;
  phase_ = Phase::kAwaitingRequest;
  armIdleTimer();
  request_pause_ = PauseReason::kNone;
  http_parser_pause(&request_parser_, 0);
  processDownstreamInput();
}

// ---------------------------------------------------------------------------------------------
// Upgrades: after a 101 the connection is a byte pipe in both directions.

void ClientConnection::enterTunnel() {
  phase_ = Phase::kTunnel;
  tunnel_pending_ = false;
  logRequest(101);
  evtimer_del(timer_.get());
  pumpToBackend();
  if (upstream_) {
    pumpToClient();
  }
}

void ClientConnection::pumpToBackend() {
  pullBufferedTls();
  evbuffer* out = upstream_->output();
  evbuffer_add_buffer(out, bufferevent_get_input(bev_.get()));
  upstream_->flush();
  if (evbuffer_get_length(out) >= kBufferHighWatermark) {
    bufferevent_disable(bev_.get(), EV_READ);  // re-enabled by onUpstreamDrained
  }
}

void ClientConnection::pumpToClient() {
  evbuffer_add_buffer(out_.get(), upstream_->input());
  flushDownstream();
  if (evbuffer_get_length(bufferevent_get_output(bev_.get())) >= kBufferHighWatermark) {
    upstream_->setReading(false);  // re-enabled by onDownstreamWrite
  }
}

// ---------------------------------------------------------------------------------------------
// Reading from the client.

bool ClientConnection::pullBufferedTls() {
  if (!handshake_done_ || !bev_ || !SSL_has_pending(ssl_)) {
    return false;
  }
  evbuffer* input = bufferevent_get_input(bev_.get());
  bool pulled = false;
  while (SSL_has_pending(ssl_) && evbuffer_get_length(input) < kBufferHighWatermark) {
    evbuffer_iovec space;
    if (evbuffer_reserve_space(input, static_cast<ev_ssize_t>(kMaxTlsRecordPlaintext), &space, 1) <
        1) {
      return pulled;
    }
    ERR_clear_error();
    int n =
        SSL_read(ssl_, space.iov_base, static_cast<int>(std::min<size_t>(space.iov_len, INT_MAX)));
    if (n > 0) {
      space.iov_len = static_cast<size_t>(n);
      evbuffer_commit_space(input, &space, 1);
      pulled = true;
      continue;
    }
    evbuffer_commit_space(input, nullptr, 0);
    int error = SSL_get_error(ssl_, n);
    ERR_clear_error();
    if (error != SSL_ERROR_WANT_READ && error != SSL_ERROR_WANT_WRITE) {
      // close_notify or a broken record among the buffered bytes: end the connection the way
      // the bufferevent would have, from the event loop rather than from inside this call.
      bufferevent_trigger_event(bev_.get(),
                                error == SSL_ERROR_ZERO_RETURN ? BEV_EVENT_EOF : BEV_EVENT_ERROR,
                                BEV_TRIG_DEFER_CALLBACKS);
    }
    break;  // the rest of a partial record comes through the socket and the bufferevent
  }
  return pulled;
}

// ---------------------------------------------------------------------------------------------
// Writing to the client.

void ClientConnection::flushDownstream() {
  evbuffer* pending = out_.get();
  size_t length = evbuffer_get_length(pending);
  if (length == 0) {
    return;
  }
  evbuffer* output = bufferevent_get_output(bev_.get());
  // bufferevent_openssl never writes before a writability event: handing it data costs an
  // epoll_ctl to ask for EPOLLOUT, a loop turn, and another epoll_ctl to drop it. When it has
  // nothing queued (so no SSL_write of its own is pending a retry), write here at once.
  // Whatever the socket does not take, or any TLS condition, is handed to the bufferevent,
  // which retries with the same bytes at the front as OpenSSL requires.
  if (handshake_done_ && evbuffer_get_length(output) == 0) {
    while (length > 0) {
      size_t n = std::min(length, kMaxTlsRecordPlaintext);
      // One contiguous piece per record: the head and the body go out as one record.
      unsigned char* data = evbuffer_pullup(pending, static_cast<ev_ssize_t>(n));
      ERR_clear_error();
      int written = SSL_write(ssl_, data, static_cast<int>(n));
      if (written <= 0) {
        ERR_clear_error();  // the bufferevent's retry reports a lasting error
        break;
      }
      evbuffer_drain(pending, static_cast<size_t>(written));
      length -= static_cast<size_t>(written);
    }
    if (length == 0) {
      return;
    }
  }
  evbuffer_add_buffer(output, pending);
}

// ---------------------------------------------------------------------------------------------
// Closing.

void ClientConnection::closeAfterFlush() {
  if (phase_ == Phase::kClosing && !close_after_flush_) {
    return;
  }
  phase_ = Phase::kClosing;
  close_after_flush_ = true;
  flushDownstream();
  bufferevent_disable(bev_.get(), EV_READ);
  if (evbuffer_get_length(bufferevent_get_output(bev_.get())) == 0) {
    closeNow();
    return;
  }
  bufferevent_setwatermark(bev_.get(), EV_WRITE, 0, 0);
  bufferevent_enable(bev_.get(), EV_WRITE);
}

void ClientConnection::closeNow() {
  if (!bev_) {
    return;
  }
  if (response_started_ && !request_logged_) {
    logRequest(response_status_);  // a response cut short (client gone, backend gone, shutdown)
  }
  phase_ = Phase::kClosing;
  close_after_flush_ = false;
  evtimer_del(timer_.get());
  upstream_.reset();
  if (http2_) {
    http2_->abort();  // freed with this object: closeNow may run inside its callbacks
  }
  if (handshake_done_) {
    // close_notify lets clients tell a complete close-delimited body from a truncated one.
    SSL_set_quiet_shutdown(ssl_, 0);
    SSL_shutdown(ssl_);
  }
  bufferevent_setcb(bev_.get(), nullptr, nullptr, nullptr, nullptr);
  bev_.reset();
  worker_.retire(this);
}

void ClientConnection::logRequest(int status) {
  request_logged_ = true;
  logRequestCompleted({.method = head_.method,
                       .target = head_.target,
                       .verb = metrics_verb_,
                       .user = user_name_,
                       .status = status,
                       .latency = absl::Now() - request_start_,
                       .audit_id = audit_id_,
                       .client = peer_ip_,
                       .protocol = head_.http_minor == 0 ? "HTTP/1.0" : "HTTP/1.1"});
}

const http_parser_settings& ClientConnection::requestSettings() {
  static const http_parser_settings settings = [] {
    http_parser_settings s{};
    s.on_url = &ClientConnection::onRequestUrl;
    s.on_header_field = &ClientConnection::onRequestHeaderField;
    s.on_header_value = &ClientConnection::onRequestHeaderValue;
    s.on_headers_complete = &ClientConnection::onRequestHeadersComplete;
    s.on_body = &ClientConnection::onRequestBody;
    s.on_message_complete = &ClientConnection::onRequestMessageComplete;
    return s;
  }();
  return settings;
}

const http_parser_settings& ClientConnection::responseSettings() {
  static const http_parser_settings settings = [] {
    http_parser_settings s{};
    s.on_status = &ClientConnection::onResponseStatus;
    s.on_header_field = &ClientConnection::onResponseHeaderField;
    s.on_header_value = &ClientConnection::onResponseHeaderValue;
    s.on_headers_complete = &ClientConnection::onResponseHeadersComplete;
    s.on_body = &ClientConnection::onResponseBody;
    s.on_message_complete = &ClientConnection::onResponseMessageComplete;
    return s;
  }();
  return settings;
}

}  // namespace aaproxy
