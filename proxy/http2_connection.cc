// Streams go: headers -> admission (the HTTP/1.1 path's) -> a pooled backend connection (request
// re-framed as HTTP/1.1, chunked when the length is unknown) -> response parsed with http-parser
// and sent as HEADERS + DATA. Backpressure: request DATA is acknowledged (WINDOW_UPDATE) only
// once written to the backend; a stream's backend is not read while its response buffer is full;
// nghttp2 is asked for frames only while the TLS queue is below its watermark.
#include "proxy/http2_connection.h"

#include <http_parser.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "authn/identity_headers.h"
#include "proxy/forwarded_identity.h"
#include "proxy/http2_session.h"
#include "proxy/upstream_tls.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "k8s/status.h"
#include "proxy/access_log.h"
#include "proxy/health.h"
#include "proxy/http_message.h"
#include "proxy/proxy_metrics.h"
#include "proxy/upstream_pool.h"
#include "proxy/worker.h"

namespace aaproxy {
namespace {

absl::string_view av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

std::string_view sv(const uint8_t* data, size_t len) {
  return std::string_view(reinterpret_cast<const char*>(data), len);
}

// Go's textproto.CanonicalMIMEHeaderKey, so that the backend sees the same names over HTTP/2
// (where they arrive lower case) as a Go server would hand it: "x-remote-user" -> "X-Remote-User".
// Written into `out`, whose buffer a reused stream keeps.
void assignCanonicalHeaderName(std::string& out, std::string_view name) {
  out.assign(name);
  for (char c : out) {
    if (!isHttpTokenChar(c)) {
      return;  // Go leaves names with other bytes as they are
    }
  }
  bool upper = true;
  for (char& c : out) {
    c = upper ? absl::ascii_toupper(static_cast<unsigned char>(c))
              : absl::ascii_tolower(static_cast<unsigned char>(c));
    upper = c == '-';
  }
}

// Appends a field to `map` in a line slot whose buffers survive the stream's reuse.
void addCanonical(HeaderMap& map, std::string_view name, std::string_view value) {
  Header& line = map.addLine();
  assignCanonicalHeaderName(line.name, name);
  line.value.assign(value);
}

void writeChunk(evbuffer* out, const uint8_t* data, size_t len) {
  char size_line[24];
  int n = std::snprintf(size_line, sizeof(size_line), "%zx\r\n", len);
  evbuffer_add(out, size_line, static_cast<size_t>(n));
  evbuffer_add(out, data, len);
  evbuffer_add(out, "\r\n", 2);
}

nghttp2_nv makeNv(const std::string& name, const std::string& value) {
  return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(),
                    value.size(), NGHTTP2_NV_FLAG_NONE};
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// One request/response exchange.

class Http2Connection::Stream : public UpstreamConnection::Handler {
 public:
  enum class State { kHeaders, kAdmitting, kForwarding, kResponding, kClosed };

  Stream(Http2Connection& conn, int32_t id, uint64_t serial)
      : conn_(conn), pending_body_(evbuffer_new()), body_(evbuffer_new()) {
    reset(id, serial);
  }

  // A closed stream's object serves a new stream: every field starts over, while the header
  // lines, strings and buffers keep their memory (no allocation per stream once warm).
  void reset(int32_t id, uint64_t serial) {
    id_ = id;
    serial_ = serial;
    state_ = State::kHeaders;
    head_.reset();
    head_.http_major = 2;
    head_.http_minor = 0;
    authority_.clear();
    host_.clear();
    cookie_.clear();
    header_bytes_ = 0;
    trailer_bytes_ = 0;
    header_overflow_ = false;
    request_complete_ = false;
    evbuffer_drain(pending_body_.get(), evbuffer_get_length(pending_body_.get()));
    unconsumed_ = 0;
    request_body_sent_ = 0;
    upstream_request_.clear();
    upstream_.reset();
    http_parser_init(&parser_, HTTP_RESPONSE);
    parser_.data = this;
    response_.reset();
    response_lines_.reset();
    evbuffer_drain(body_.get(), evbuffer_get_length(body_.get()));
    body_eof_ = false;
    body_sent_ = false;
    response_submitted_ = false;
    response_complete_ = false;
    response_bytes_seen_ = false;
    parser_paused_ = false;
    reading_paused_ = false;
    framing_until_close_ = false;
    connect_failed_ = false;
    data_frames_ = 0;
    data_frames_at_check_ = 0;
    pending_at_check_ = false;
    start_ = absl::Now();
    verb_.clear();
    user_name_.clear();
    audit_id_.clear();
    status_ = 0;
    logged_ = false;
  }
  ~Stream() override { upstream_.reset(); }

  int32_t id() const { return id_; }
  uint64_t serial() const { return serial_; }
  State state() const { return state_; }

  // --- request headers ---------------------------------------------------------------------

  void addHeader(std::string_view name, std::string_view value) {
    header_bytes_ += name.size() + value.size() + 32;  // RFC 9113's accounting
    if (header_bytes_ > conn_.worker_.options().max_header_bytes) {
      header_overflow_ = true;
      return;
    }
    if (!name.empty() && name[0] == ':') {
      if (name == ":method") {
        head_.method = std::string(value);
      } else if (name == ":path") {
        head_.target = std::string(value);
      } else if (name == ":authority") {
        authority_ = std::string(value);
      }
      return;  // :scheme needs nothing; nghttp2 refuses :protocol (no extended CONNECT)
    }
    if (name == "cookie") {
      // HTTP/2 splits cookies into several fields; HTTP/1.1 wants one line (RFC 9113 §8.2.3).
      absl::StrAppend(&cookie_, cookie_.empty() ? "" : "; ", av(value));
      return;
    }
    if (name == "host") {
      host_ = std::string(value);
      return;
    }
    addCanonical(head_.headers, name, value);
  }

  // A field of the request's trailer section (HEADERS after DATA); false when the section is
  // larger than --max-header-bytes allows (the stream is then reset).
  bool addTrailer(std::string_view name, std::string_view value) {
    trailer_bytes_ += name.size() + value.size() + 32;
    if (trailer_bytes_ > conn_.worker_.options().max_header_bytes) {
      return false;
    }
    // nghttp2 refuses pseudo-header fields in trailers; connection-specific ones are filtered
    // with the rest when the section is written (appendLastChunk).
    addCanonical(head_.trailers, name, value);
    return true;
  }

  void onHeadersComplete(bool end_stream) {
    request_complete_ = end_stream;
    // :authority wins over a Host field, as in Go's server.
    std::string host = !authority_.empty() ? authority_ : host_;
    if (!host.empty()) {
      head_.headers.add("Host", std::move(host));
    }
    if (!cookie_.empty()) {
      head_.headers.add("Cookie", std::move(cookie_));
    }
    if (std::optional<std::string_view> length = head_.headers.get("Content-Length")) {
      uint64_t n = 0;
      if (absl::SimpleAtoi(av(*length), &n)) {
        head_.content_length = n;
      }
    }
    // A body of unknown length goes to the backend chunked; none at all, without framing. So
    // does one that announces trailers (which only a chunked body can carry to the backend).
    head_.chunked =
        !end_stream && (!head_.content_length.has_value() || head_.headers.has("Trailer"));
    audit_id_ = std::string(head_.headers.get("Audit-ID").value_or(""));
    if (header_overflow_) {
      // The HTTP/1.1 path's answer, word for word.
      respondWithStatus(431, "RequestHeaderFieldsTooLarge", "Request Header Fields Too Large");
      return;
    }
    if (head_.method == "CONNECT") {
      // Tunnels (exec, attach, port-forward, WebSocket) stay on HTTP/1.1, as upstream serves them.
      respondWithStatus(405, "MethodNotAllowed",
                        "CONNECT is not supported over HTTP/2; use HTTP/1.1 upgrades");
      return;
    }
    startAdmission();
  }

  // --- request body --------------------------------------------------------------------------

  void onData(const uint8_t* data, size_t len) {
    if (state_ == State::kForwarding && upstream_) {
      writeBody(upstream_->output(), data, len);
      upstream_->flush();
      if (evbuffer_get_length(upstream_->output()) < kBufferHighWatermark) {
        nghttp2_session_consume(conn_.session_, id_, len);
      } else {
        unconsumed_ += len;  // acknowledged in onUpstreamDrained
      }
      return;
    }
    if (state_ == State::kHeaders || state_ == State::kAdmitting) {
      // Held until admission decides; the stream window bounds how much.
      writeBody(pending_body_.get(), data, len);
      unconsumed_ += len;
      return;
    }
    nghttp2_session_consume(conn_.session_, id_, len);  // answered locally: discarded
  }

  void onRequestComplete() {
    request_complete_ = true;
    if (head_.chunked) {
      evbuffer* out = state_ == State::kForwarding && upstream_ ? upstream_->output()
                                                                : pending_body_.get();
      if (head_.trailers.empty()) {
        evbuffer_add(out, "0\r\n\r\n", 5);
      } else {
        // A client must not pass an identity (or credentials) to the backend in a trailer.
        conn_.worker_.admission().stripTrailers(head_.trailers, conn_.worker_.loop());
        std::string last;
        appendLastChunk(head_.trailers, head_.headers, last);
        evbuffer_add(out, last.data(), last.size());
      }
      if (state_ == State::kForwarding && upstream_) {
        upstream_->flush();
      }
    }
    maybeReleaseUpstream();
  }

  // --- the end ------------------------------------------------------------------------------

  // nghttp2 closed the stream (both sides done, or a reset either way).
  void onClosed(uint32_t error_code) {
    if (!logged_ && status_ != 0) {
      log();
    }
    if (error_code != NGHTTP2_NO_ERROR) {
      AA_VLOG(4) << "stream " << id_ << " from " << conn_.info_.peer_ip << " reset: "
                 << nghttp2_http2_strerror(error_code);
    }
    state_ = State::kClosed;
    // Reset by the client mid-exchange, the backend connection is in the middle of a message:
    // it is closed, never pooled (the backend sees the close and stops). The connection's other
    // streams have their own backend connections and carry on.
    releaseUpstream(upstream_ && exchange_done() && request_complete_);
  }

  // Shutdown: a streamed response ends here, cleanly.
  void endStream() {
    if (state_ == State::kForwarding && response_submitted_ && !body_eof_) {
      body_eof_ = true;
      releaseUpstream(false);
      nghttp2_session_resume_data(conn_.session_, id_);
    }
  }

  // nghttp2 asks for response body bytes (the peer's flow-control windows allowing).
  ssize_t readBody(uint8_t* buf, size_t length, uint32_t* flags) {
    size_t available = evbuffer_get_length(body_.get());
    if (available == 0 && !body_eof_) {
      return NGHTTP2_ERR_DEFERRED;
    }
    int n = evbuffer_remove(body_.get(), buf, std::min(length, available));
    if (n < 0) {
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    ++data_frames_;
    ++conn_.data_frames_sent_;
    if (body_eof_ && evbuffer_get_length(body_.get()) == 0) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      body_sent_ = true;
      if (response_complete_ && !response_.trailers.empty()) {
        submitTrailers(flags);
      }
    }
    if (reading_paused_ && evbuffer_get_length(body_.get()) < kStreamBufferHigh / 2) {
      conn_.resume_reading_.push_back(id_);
    }
    return n;
  }

  // The backend's trailers as a HEADERS frame with END_STREAM after the last DATA frame (which
  // then does not end the stream), as nghttp2 lets a data source do.
  void submitTrailers(uint32_t* flags) {
    std::vector<std::pair<std::string, std::string>> fields;
    appendHttp2TrailerFields(response_.trailers, response_.headers, fields);
    if (fields.empty()) {
      return;
    }
    std::vector<nghttp2_nv> nva;
    nva.reserve(fields.size());
    for (const auto& [name, value] : fields) {
      nva.push_back(makeNv(name, value));
    }
    int rv = nghttp2_submit_trailer(conn_.session_, id_, nva.data(), nva.size());
    if (rv == 0) {
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
    } else {
      AA_VLOG(2) << "stream " << id_ << ": cannot submit trailers: " << nghttp2_strerror(rv);
    }
  }

  // Response bytes (or the end of the body) wait for nghttp2 to send them.
  bool hasUnsentResponse() const {
    return response_submitted_ && !body_sent_ &&
           (body_eof_ || evbuffer_get_length(body_.get()) > 0);
  }

  // For the stall check, once per period: whether response bytes waited through the whole
  // period since the last call without a DATA frame going out.
  bool stalledSinceLastCheck() {
    bool pending = hasUnsentResponse();
    bool stalled = pending && pending_at_check_ && data_frames_ == data_frames_at_check_;
    pending_at_check_ = pending;
    data_frames_at_check_ = data_frames_;
    return stalled;
  }

  void resumeReading() {
    if (!reading_paused_ || !upstream_) {
      return;
    }
    reading_paused_ = false;
    upstream_->setReading(true);
    processUpstreamInput();
  }

  // UpstreamConnection::Handler
  void onUpstreamConnected() override {}
  void onUpstreamReadable() override {
    processUpstreamInput();
    conn_.scheduleSend();
  }
  void onUpstreamDrained() override {
    if (unconsumed_ > 0 && state_ == State::kForwarding) {
      nghttp2_session_consume(conn_.session_, id_, unconsumed_);
      unconsumed_ = 0;
      conn_.scheduleSend();
    }
  }
  void onUpstreamClosed(const std::string& error) override {
    bool never_connected = connect_failed_ || (upstream_ && !upstream_->connected());
    connect_failed_ = false;
    bool stale_reuse = upstream_ && upstream_->reused() && !response_bytes_seen_ &&
                       request_body_sent_ == 0 && !head_.hasBody() &&
                       mayReplayOnNewConnection(head_.method, head_.headers);
    if (!response_submitted_ && stale_reuse) {
      upstream_.reset();  // an idle pooled connection the backend had closed: once more
      connectUpstream();
      conn_.scheduleSend();
      return;
    }
    if (response_submitted_ && !body_eof_ && framing_until_close_ && error.empty()) {
      // A close-delimited body ends with the connection.
      http_parser_execute(&parser_, &responseSettings(), nullptr, 0);
      if (HTTP_PARSER_ERRNO(&parser_) == HPE_PAUSED) {
        upstream_.reset();
        onResponseComplete();
        conn_.scheduleSend();
        return;
      }
    }
    upstream_.reset();
    if (response_submitted_) {
      if (!body_eof_) {
        AA_VLOG(2) << "backend closed mid-response for " << head_.method << " " << head_.target
                   << (error.empty() ? "" : ": " + error);
        nghttp2_submit_rst_stream(conn_.session_, NGHTTP2_FLAG_NONE, id_, NGHTTP2_INTERNAL_ERROR);
      }
      conn_.scheduleSend();
      return;
    }
    std::string reason = error.empty() ? "connection closed before a response" : error;
    AA_LOG(E) << "backend " << conn_.worker_.options().upstreams[upstream_index_].display
              << " unavailable for "
              << head_.method << " " << head_.target << ": " << reason;
    (never_connected ? ProxyMetrics::get().upstream_connect_errors
                     : ProxyMetrics::get().upstream_response_errors)
        .inc();
    if (never_connected && isUpstreamTlsHandshakeError(reason)) {
      respondWithStatus(502, "InternalError",
                        absl::StrCat("backend TLS handshake failed: ", reason));
    } else if (never_connected) {
      conn_.worker_.health().setBackendReachable(false);
      respondWithStatus(503, "ServiceUnavailable", absl::StrCat("backend unavailable: ", reason));
    } else {
      respondWithStatus(502, "InternalError", absl::StrCat("error reading from backend: ", reason));
    }
    conn_.scheduleSend();
  }

 private:
  static Stream* fromParser(http_parser* p) { return static_cast<Stream*>(p->data); }
  static const http_parser_settings& responseSettings();
  static int onResponseStatus(http_parser* p, const char* at, size_t len) {
    fromParser(p)->response_.reason.append(at, len);
    return 0;
  }
  static int onResponseHeaderField(http_parser* p, const char* at, size_t len) {
    Stream* s = fromParser(p);
    s->response_lines_.field(s->response_.headers, s->response_.trailers, at, len);
    return 0;
  }
  static int onResponseHeaderValue(http_parser* p, const char* at, size_t len) {
    Stream* s = fromParser(p);
    s->response_lines_.value(s->response_.headers, s->response_.trailers, at, len);
    return 0;
  }
  static int onResponseHeadersComplete(http_parser* p);
  static int onResponseBody(http_parser* p, const char* at, size_t len) {
    Stream* s = fromParser(p);
    if (!s->body_eof_) {
      evbuffer_add(s->body_.get(), at, len);
    }
    return 0;
  }
  static int onResponseMessageComplete(http_parser* p);

  bool exchange_done() const { return response_complete_; }

  void writeBody(evbuffer* out, const uint8_t* data, size_t len) {
    if (head_.chunked) {
      writeChunk(out, data, len);
    } else {
      evbuffer_add(out, data, len);
    }
    request_body_sent_ += len;
  }

  void startAdmission() {
    state_ = State::kAdmitting;
    std::weak_ptr<bool> alive = conn_.alive_;
    Http2Connection* conn = &conn_;
    int32_t id = id_;
    uint64_t serial = serial_;
    conn_.worker_.admission().admit(
        head_, conn_.info_, conn_.worker_.loop(),
        [alive, conn, id, serial](AdmissionVerdict verdict) {
          if (alive.expired()) {
            return;
          }
          Stream* stream = conn->findStream(id);
          if (stream != nullptr && stream->serial_ == serial &&
              stream->state_ == State::kAdmitting) {
            stream->onAdmitted(std::move(verdict));
            conn->scheduleSend();
          }
        });
  }

  void onAdmitted(AdmissionVerdict verdict) {
    verb_ = std::move(verdict.verb);
    user_name_ = verdict.user.name;
    if (verdict.kind == AdmissionVerdict::Kind::kRespond) {
      respond(verdict.status,
              verdict.content_type.empty() ? "application/json" : verdict.content_type,
              verdict.body, verdict.headers);
      return;
    }
    if (!verdict.serve_local_endpoints || !serveLocalEndpoint()) {
      upstream_index_ = verdict.upstream;
      startForwarding(verdict.user, verdict.send_identity);
    }
  }

  bool serveLocalEndpoint() {
    std::string_view target = head_.target;
    std::string_view path = target.substr(0, target.find('?'));
    std::string_view query = target.size() > path.size() ? target.substr(path.size() + 1) : "";
    HeaderMap headers;
    headers.add("X-Content-Type-Options", "nosniff");
    if (path == "/metrics") {
      respond(200, "text/plain; version=0.0.4; charset=utf-8", MetricsRegistry::global().render(),
              headers);
      return true;
    }
    if (std::optional<HealthResponse> health =
            serveHealthEndpoint(conn_.worker_.health(), path, query)) {
      respond(health->status, "text/plain; charset=utf-8", health->body, headers);
      return true;
    }
    return false;
  }

  void startForwarding(const UserInfo& user, bool send_identity) {
    std::string identity;
    if (absl::Status s =
            prepareForwardedIdentity(head_.headers, user, send_identity,
                                     conn_.worker_.options().auth_header_fields, identity);
        !s.ok()) {
      AA_LOG(W) << "not forwarding " << head_.method << " " << head_.target << " for user \""
                << absl::CEscape(absl::string_view(user.name.data(), user.name.size()))
                << "\": " << s.message();
      respondWithStatus(502, "InternalError",
                        absl::StrCat("cannot forward the request: ", s.message()));
      return;
    }
    if (head_.chunked && head_.headers.has("Trailer")) {
      HeaderMap announced = forwardableTrailerNames(head_.headers);
      conn_.worker_.admission().stripTrailers(announced, conn_.worker_.loop());
      appendTrailerAnnouncement(announced, identity);
    }
    serializeUpstreamRequest(head_, conn_.info_.peer_ip, identity, upstream_request_);
    state_ = State::kForwarding;
    connectUpstream();
  }

  void connectUpstream() {
    http_parser_init(&parser_, HTTP_RESPONSE);
    parser_.data = this;
    response_lines_.reset();
    std::string error;
    upstream_ = conn_.worker_.upstreamPool(upstream_index_).acquire(*this, error);
    if (!upstream_) {
      connect_failed_ = true;
      onUpstreamClosed(error);
      return;
    }
    evbuffer_add(upstream_->output(), upstream_request_.data(), upstream_request_.size());
    // What the client sent while admission ran, acknowledged once handed to the socket. (A
    // stale pooled connection is retried only for idempotent requests without a body.)
    evbuffer_add_buffer(upstream_->output(), pending_body_.get());
    upstream_->flush();
    if (evbuffer_get_length(upstream_->output()) < kBufferHighWatermark) {
      onUpstreamDrained();
    }
  }

  void processUpstreamInput() {
    while (upstream_ && !parser_paused_) {
      evbuffer* input = upstream_->input();
      if (evbuffer_get_length(input) == 0) {
        return;
      }
      if (evbuffer_get_length(body_.get()) >= kStreamBufferHigh) {
        reading_paused_ = true;
        upstream_->setReading(false);
        return;
      }
      response_bytes_seen_ = true;
      if (!conn_.worker_.health().backendReachable()) {
        conn_.worker_.health().setBackendReachable(true);
      }
      evbuffer_iovec vec;
      if (evbuffer_peek(input, -1, nullptr, &vec, 1) < 1) {
        return;
      }
      size_t parsed = http_parser_execute(&parser_, &responseSettings(),
                                          static_cast<const char*>(vec.iov_base), vec.iov_len);
      evbuffer_drain(input, parsed);
      if (response_submitted_ && evbuffer_get_length(body_.get()) > 0) {
        nghttp2_session_resume_data(conn_.session_, id_);  // the provider may be deferred
        conn_.watchForStall();
      }
      http_errno err = HTTP_PARSER_ERRNO(&parser_);
      if (err == HPE_PAUSED) {
        parser_paused_ = true;
        onResponseComplete();
        return;
      }
      if (err != HPE_OK || parsed < vec.iov_len) {
        AA_LOG(E) << "malformed response from backend for " << head_.method << " "
                  << head_.target << ": " << http_errno_description(err);
        upstream_.reset();
        if (response_submitted_) {
          nghttp2_submit_rst_stream(conn_.session_, NGHTTP2_FLAG_NONE, id_,
                                    NGHTTP2_INTERNAL_ERROR);
        } else {
          respondWithStatus(502, "InternalError", "malformed response from backend");
        }
        return;
      }
    }
  }

  void onResponseComplete() {
    response_complete_ = true;
    body_eof_ = true;
    nghttp2_session_resume_data(conn_.session_, id_);
    conn_.watchForStall();
    maybeReleaseUpstream();
  }

  void maybeReleaseUpstream() {
    if (upstream_ && response_complete_ && request_complete_) {
      releaseUpstream(http_should_keep_alive(&parser_) != 0 && !framing_until_close_);
    }
  }

  void releaseUpstream(bool reusable) {
    if (!upstream_) {
      return;
    }
    if (reusable && evbuffer_get_length(upstream_->output()) == 0) {
      conn_.worker_.upstreamPool(upstream_index_).release(std::move(upstream_));
    } else {
      upstream_.reset();
    }
  }

  void respondWithStatus(int status, std::string_view reason, std::string_view message) {
    respond(status, "application/json", failureStatusJson(status, reason, message), HeaderMap());
  }

  // A local answer: HEADERS and the whole body.
  void respond(int status, std::string_view content_type, std::string_view body,
               const HeaderMap& headers) {
    releaseUpstream(false);
    state_ = State::kResponding;
    evbuffer_drain(pending_body_.get(), evbuffer_get_length(pending_body_.get()));
    if (unconsumed_ > 0) {
      nghttp2_session_consume(conn_.session_, id_, unconsumed_);
      unconsumed_ = 0;
    }
    evbuffer_add(body_.get(), body.data(), body.size());
    body_eof_ = true;
    std::vector<std::pair<std::string, std::string>> fields;
    fields.emplace_back(":status", std::to_string(status));
    if (!content_type.empty()) {
      fields.emplace_back("content-type", std::string(content_type));
    }
    for (const Header& h : headers.entries()) {
      fields.emplace_back(absl::AsciiStrToLower(av(h.name)), h.value);
    }
    fields.emplace_back("content-length", std::to_string(body.size()));
    submit(fields, head_.method != "HEAD");
    status_ = status;
  }

  void submit(const std::vector<std::pair<std::string, std::string>>& fields, bool with_body) {
    std::vector<nghttp2_nv> nva;
    nva.reserve(fields.size());
    for (const auto& [name, value] : fields) {
      nva.push_back(makeNv(name, value));
    }
    nghttp2_data_provider provider;
    provider.source.ptr = this;
    provider.read_callback = &Http2Connection::readResponseData;
    response_submitted_ = true;
    if (!with_body) {
      body_eof_ = true;
      body_sent_ = true;
      evbuffer_drain(body_.get(), evbuffer_get_length(body_.get()));
    } else {
      conn_.watchForStall();
    }
    int rv = nghttp2_submit_response(conn_.session_, id_, nva.data(), nva.size(),
                                     with_body ? &provider : nullptr);
    if (rv != 0) {
      AA_VLOG(2) << "stream " << id_ << ": cannot submit the response: " << nghttp2_strerror(rv);
    }
  }

  void log() {
    logged_ = true;
    logRequestCompleted({.method = head_.method,
                         .target = head_.target,
                         .verb = verb_,
                         .user = user_name_,
                         .status = status_,
                         .latency = absl::Now() - start_,
                         .audit_id = audit_id_,
                         .client = conn_.info_.peer_ip,
                         .protocol = "HTTP/2.0"});
  }

  Http2Connection& conn_;
  int32_t id_ = 0;
  uint64_t serial_ = 0;
  State state_ = State::kHeaders;

  // Request.
  RequestHead head_;
  std::string authority_;
  std::string host_;
  std::string cookie_;
  size_t header_bytes_ = 0;
  size_t trailer_bytes_ = 0;
  bool header_overflow_ = false;
  bool request_complete_ = false;
  EvBufferPtr pending_body_;  // DATA received during admission (already framed for HTTP/1.1)
  size_t unconsumed_ = 0;     // DATA bytes not yet acknowledged to the client's window
  uint64_t request_body_sent_ = 0;
  std::string upstream_request_;

  // Response.
  std::unique_ptr<UpstreamConnection> upstream_;
  size_t upstream_index_ = 0;  // the stream's backend (AdmissionVerdict::upstream)
  http_parser parser_;
  ResponseHead response_;
  HeaderLineCollector response_lines_;
  EvBufferPtr body_;  // response bytes for DATA frames
  bool body_eof_ = false;
  bool body_sent_ = false;  // the DATA frame ending the body went out
  bool response_submitted_ = false;
  bool response_complete_ = false;
  bool response_bytes_seen_ = false;
  bool parser_paused_ = false;
  bool reading_paused_ = false;
  bool framing_until_close_ = false;
  bool connect_failed_ = false;

  // Flow-control stalls (see Http2Connection::checkStalls).
  uint64_t data_frames_ = 0;
  uint64_t data_frames_at_check_ = 0;
  bool pending_at_check_ = false;

  // Access log.
  absl::Time start_;
  std::string verb_;
  std::string user_name_;
  std::string audit_id_;
  int status_ = 0;
  bool logged_ = false;
};

const http_parser_settings& Http2Connection::Stream::responseSettings() {
  static const http_parser_settings settings = [] {
    http_parser_settings s{};
    s.on_status = &Stream::onResponseStatus;
    s.on_header_field = &Stream::onResponseHeaderField;
    s.on_header_value = &Stream::onResponseHeaderValue;
    s.on_headers_complete = &Stream::onResponseHeadersComplete;
    s.on_body = &Stream::onResponseBody;
    s.on_message_complete = &Stream::onResponseMessageComplete;
    return s;
  }();
  return settings;
}

int Http2Connection::Stream::onResponseHeadersComplete(http_parser* p) {
  Stream* s = fromParser(p);
  s->response_lines_.headEnded();
  ResponseHead& head = s->response_;
  head.status = p->status_code;
  if (head.status / 100 == 1) {
    // 100 Continue and other interim answers are not relayed (the request body is streamed
    // without waiting); a 101 cannot happen, since no upgrade is forwarded over HTTP/2.
    return head.status == 101 ? -1 : 0;
  }
  const bool is_head = s->head_.method == "HEAD";
  const bool body_allowed = !is_head && head.status != 204 && head.status != 304;
  head.chunked = (p->flags & F_CHUNKED) != 0;
  s->framing_until_close_ = body_allowed && !head.chunked && !head.headers.has("Content-Length");
  std::vector<std::pair<std::string, std::string>> fields;
  fields.emplace_back(":status", std::to_string(head.status));
  appendHttp2ResponseFields(head, fields);
  s->status_ = head.status;
  s->submit(fields, body_allowed);
  return is_head ? 1 : 0;
}

int Http2Connection::Stream::onResponseMessageComplete(http_parser* p) {
  Stream* s = fromParser(p);
  if (s->response_.status / 100 == 1) {
    s->response_.reset();
    s->response_lines_.reset();
    return 0;
  }
  http_parser_pause(p, 1);
  return 0;
}

// ---------------------------------------------------------------------------------------------
// The session.

Http2Connection::Http2Connection(Worker& worker, Transport& transport, const ConnectionInfo& info)
    : worker_(worker), transport_(transport), info_(info), out_(evbuffer_new()) {
  send_event_.reset(event_new(worker_.loop().base(), -1, 0, &Http2Connection::onSendEvent, this));
  idle_timer_.reset(evtimer_new(worker_.loop().base(), &Http2Connection::onIdleTimer, this));
  stall_timer_.reset(evtimer_new(worker_.loop().base(), &Http2Connection::onStallTimer, this));
}

Http2Connection::~Http2Connection() {
  alive_.reset();
  if (session_ != nullptr) {
    nghttp2_session_del(session_);  // before the streams its data providers point to
  }
  streams_.clear();
  closed_.clear();
  spare_.clear();
}

absl::Status Http2Connection::start() {
  const ProxyOptions& options = worker_.options();
  uint32_t max_streams = options.http2_max_streams_per_connection > 0
                             ? static_cast<uint32_t>(options.http2_max_streams_per_connection)
                             : kDefaultMaxStreams;
  absl::StatusOr<nghttp2_session*> session = newHttp2ServerSession(
      {&onBeginHeaders, &onHeader, &onFrameReceived, &onDataChunk, &onStreamClosed}, this,
      max_streams, options.max_header_bytes);
  if (!session.ok()) {
    return session.status();
  }
  session_ = *session;
  updateIdleTimer();
  sendPending();
  return absl::OkStatus();
}

Http2Connection::Stream* Http2Connection::findStream(int32_t id) {
  auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : it->second.get();
}

void Http2Connection::onReadable() {
  if (session_ == nullptr || closing_) {
    return;
  }
  // input() also brings in TLS records OpenSSL read ahead, so ask again until it is empty.
  evbuffer* input;
  while (!closing_ && evbuffer_get_length(input = transport_.input()) > 0) {
    evbuffer_iovec vec;
    if (evbuffer_peek(input, -1, nullptr, &vec, 1) < 1) {
      break;
    }
    ssize_t n = nghttp2_session_mem_recv(session_, static_cast<const uint8_t*>(vec.iov_base),
                                         vec.iov_len);
    if (n < 0) {
      fail("reading", static_cast<int>(n));
      return;
    }
    evbuffer_drain(input, static_cast<size_t>(n));
  }
  sendPending();
}

void Http2Connection::onWritable() { sendPending(); }

void Http2Connection::recycleClosedStreams() {
  for (std::unique_ptr<Stream>& stream : closed_) {
    if (spare_.size() < kMaxSpareStreams) {
      stream->reset(0, 0);  // lets go of its backend connection and buffered bytes now
      spare_.push_back(std::move(stream));
    }
  }
  closed_.clear();
}

void Http2Connection::scheduleSend() {
  if (!send_scheduled_ && !closing_) {
    send_scheduled_ = true;
    event_active(send_event_.get(), EV_READ, 0);
  }
}

void Http2Connection::onSendEvent(evutil_socket_t, short, void* self) {
  auto* conn = static_cast<Http2Connection*>(self);
  conn->send_scheduled_ = false;
  conn->sendPending();
}

void Http2Connection::sendPending() {
  if (session_ == nullptr || closing_) {
    return;
  }
  while (true) {
    while (transport_.queuedBytes() < kBufferHighWatermark) {
      const uint8_t* data = nullptr;
      ssize_t n = nghttp2_session_mem_send(session_, &data);
      if (n < 0) {
        fail("writing", static_cast<int>(n));
        return;
      }
      if (n == 0) {
        break;
      }
      evbuffer_add(out_.get(), data, static_cast<size_t>(n));
      if (evbuffer_get_length(out_.get()) >= 64 << 10) {
        transport_.send(out_.get());
      }
    }
    if (evbuffer_get_length(out_.get()) > 0) {
      transport_.send(out_.get());
    }
    if (resume_reading_.empty()) {
      break;
    }
    std::vector<int32_t> ids;
    ids.swap(resume_reading_);
    for (int32_t id : ids) {
      if (Stream* stream = findStream(id)) {
        stream->resumeReading();
      }
    }
  }
  recycleClosedStreams();
  updateIdleTimer();
  bool done = !nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_);
  if (done || (draining_ && streams_.empty() && !nghttp2_session_want_write(session_))) {
    closing_ = true;
    transport_.closeAfterFlush();
  }
}

void Http2Connection::fail(const char* what, int error) {
  AA_VLOG(2) << "HTTP/2 connection from " << info_.peer_ip << " failed while " << what << ": "
             << nghttp2_strerror(error);
  // nghttp2 has queued a GOAWAY for protocol errors and floods: send it, then close.
  const uint8_t* data = nullptr;
  ssize_t n;
  while ((n = nghttp2_session_mem_send(session_, &data)) > 0) {
    evbuffer_add(out_.get(), data, static_cast<size_t>(n));
  }
  transport_.send(out_.get());
  closing_ = true;
  abort();
  transport_.closeAfterFlush();
}

void Http2Connection::updateIdleTimer() {
  if (streams_.empty() && !closing_) {
    idle_stages_.arm(idle_timer_.get(), worker_.options().idle_timeout);
  } else {
    idle_stages_.cancel();
    evtimer_del(idle_timer_.get());
  }
}

void Http2Connection::releaseIdleMemory() {
  closed_.clear();
  closed_.shrink_to_fit();
  spare_.clear();
  spare_.shrink_to_fit();
  resume_reading_.clear();
  resume_reading_.shrink_to_fit();
  streams_ = {};
  releaseEmptyChains(out_.get());
  releaseEmptyChains(transport_.input());
}

void Http2Connection::onIdleTimer(evutil_socket_t, short, void* self) {
  auto* conn = static_cast<Http2Connection*>(self);
  if (conn->idle_stages_.atReleaseStop(conn->idle_timer_.get(),
                                       conn->worker_.options().idle_timeout)) {
    conn->releaseIdleMemory();
    return;
  }
  AA_VLOG(4) << "closing HTTP/2 connection from " << conn->info_.peer_ip << ": idle timeout";
  conn->drain();
}

void Http2Connection::watchForStall() {
  absl::Duration timeout = worker_.options().http2_stall_timeout;
  if (stall_timer_armed_ || closing_ || timeout <= absl::ZeroDuration()) {
    return;
  }
  stall_timer_armed_ = true;
  timeval tv = absl::ToTimeval(timeout);
  evtimer_add(stall_timer_.get(), &tv);
}

void Http2Connection::onStallTimer(evutil_socket_t, short, void* self) {
  auto* conn = static_cast<Http2Connection*>(self);
  conn->stall_timer_armed_ = false;
  conn->checkStalls();
}

void Http2Connection::checkStalls() {
  if (session_ == nullptr || closing_) {
    return;
  }
  const bool connection_moved = data_frames_sent_ != data_frames_at_check_;
  data_frames_at_check_ = data_frames_sent_;
  std::vector<int32_t> stalled;
  bool pending = false;
  for (auto& [id, stream] : streams_) {
    if (stream->stalledSinceLastCheck()) {
      stalled.push_back(id);
    }
    pending = pending || stream->hasUnsentResponse();
  }
  const absl::Duration timeout = worker_.options().http2_stall_timeout;
  if (!stalled.empty() && !connection_moved) {
    // Not one DATA frame in a whole period while responses waited: the client keeps its
    // connection window shut (or stopped reading the socket). Its streams would hold their
    // backend connections and buffers for as long as it likes.
    AA_VLOG(2) << "closing HTTP/2 connection from " << info_.peer_ip << ": no response data "
               << "could be sent for " << absl::FormatDuration(timeout)
               << " (flow-control window closed)";
    ProxyMetrics::get().http2_stalled_connections.inc();
    closeStalled();
    return;
  }
  for (int32_t id : stalled) {
    // The connection moves, but this stream's window stays shut: the stream alone goes.
    AA_VLOG(2) << "resetting stream " << id << " from " << info_.peer_ip
               << ": no response data could be sent for " << absl::FormatDuration(timeout)
               << " (flow-control window closed)";
    ProxyMetrics::get().http2_stalled_streams.inc();
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_ENHANCE_YOUR_CALM);
  }
  if (pending) {
    watchForStall();
  }
  sendPending();
}

void Http2Connection::closeStalled() {
  closing_ = true;
  if (transport_.queuedBytes() > 0) {
    // The client stopped reading the socket too: a GOAWAY would never get through.
    abort();  // the streams go, and their backend connections with them
    transport_.closeNow();
    return;
  }
  static constexpr std::string_view kDebug = "flow-control window closed too long";
  nghttp2_submit_goaway(
      session_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(session_),
      NGHTTP2_ENHANCE_YOUR_CALM, reinterpret_cast<const uint8_t*>(kDebug.data()), kDebug.size());
  const uint8_t* data = nullptr;
  ssize_t n;
  while ((n = nghttp2_session_mem_send(session_, &data)) > 0) {
    evbuffer_add(out_.get(), data, static_cast<size_t>(n));
  }
  abort();
  transport_.send(out_.get());
  transport_.closeAfterFlush();
}

void Http2Connection::drain() {
  if (session_ == nullptr || draining_) {
    return;
  }
  draining_ = true;
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(session_), NGHTTP2_NO_ERROR,
                        nullptr, 0);
  sendPending();
}

void Http2Connection::endStreams() {
  for (auto& [id, stream] : streams_) {
    stream->endStream();
  }
  drain();
  sendPending();
}

void Http2Connection::abort() {
  closing_ = true;
  evtimer_del(idle_timer_.get());
  evtimer_del(stall_timer_.get());
  stall_timer_armed_ = false;
  for (auto& [id, stream] : streams_) {
    closed_.push_back(std::move(stream));
  }
  streams_.clear();
}

// ---------------------------------------------------------------------------------------------
// nghttp2 callbacks.

int Http2Connection::onBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* self) {
  auto* conn = static_cast<Http2Connection*>(self);
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
    return 0;
  }
  int32_t id = frame->hd.stream_id;
  uint64_t serial = ++conn->next_serial_;
  std::unique_ptr<Stream>& slot = conn->streams_[id];
  if (!conn->spare_.empty()) {
    slot = std::move(conn->spare_.back());
    conn->spare_.pop_back();
    slot->reset(id, serial);
  } else {
    slot = std::make_unique<Stream>(*conn, id, serial);
  }
  return 0;
}

int Http2Connection::onHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                              size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                              void* self) {
  auto* conn = static_cast<Http2Connection*>(self);
  if (frame->hd.type != NGHTTP2_HEADERS) {
    return 0;
  }
  Stream* stream = conn->findStream(frame->hd.stream_id);
  if (stream == nullptr) {
    return 0;
  }
  if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
    stream->addHeader(sv(name, namelen), sv(value, valuelen));
  } else if (frame->headers.cat == NGHTTP2_HCAT_HEADERS &&
             !stream->addTrailer(sv(name, namelen), sv(value, valuelen))) {
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // RST_STREAM; the backend connection goes
  }
  return 0;
}

int Http2Connection::onFrameReceived(nghttp2_session*, const nghttp2_frame* frame, void* self) {
  auto* conn = static_cast<Http2Connection*>(self);
  Stream* stream = conn->findStream(frame->hd.stream_id);
  if (stream == nullptr) {
    return 0;
  }
  bool end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
  if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
    stream->onHeadersComplete(end_stream);
  } else if (end_stream && (frame->hd.type == NGHTTP2_DATA || frame->hd.type == NGHTTP2_HEADERS)) {
    stream->onRequestComplete();
  }
  return 0;
}

int Http2Connection::onDataChunk(nghttp2_session* session, uint8_t, int32_t stream_id,
                                 const uint8_t* data, size_t len, void* self) {
  auto* conn = static_cast<Http2Connection*>(self);
  if (Stream* stream = conn->findStream(stream_id)) {
    stream->onData(data, len);
  } else {
    nghttp2_session_consume(session, stream_id, len);
  }
  return 0;
}

int Http2Connection::onStreamClosed(nghttp2_session*, int32_t stream_id, uint32_t error_code,
                                    void* self) {
  auto* conn = static_cast<Http2Connection*>(self);
  auto it = conn->streams_.find(stream_id);
  if (it == conn->streams_.end()) {
    return 0;
  }
  it->second->onClosed(error_code);
  conn->closed_.push_back(std::move(it->second));
  conn->streams_.erase(it);
  return 0;
}

ssize_t Http2Connection::readResponseData(nghttp2_session*, int32_t, uint8_t* buf, size_t length,
                                          uint32_t* flags, nghttp2_data_source* source, void*) {
  return static_cast<Stream*>(source->ptr)->readBody(buf, length, flags);
}

}  // namespace aaproxy
