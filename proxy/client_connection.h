// One client (downstream) TLS connection: parses requests with http-parser, runs admission,
// forwards to a backend connection and streams the response back, one request at a time.
#pragma once

#include <http_parser.h>

#include <memory>
#include <string>

#include "absl/time/time.h"
#include "authn/authenticator.h"
#include "proxy/admission.h"
#include "proxy/http2_connection.h"
#include "proxy/http_message.h"
#include "proxy/idle_timer.h"
#include "proxy/libevent_handles.h"
#include "proxy/upstream_pool.h"

namespace aaproxy {

class Worker;

class ClientConnection : public UpstreamConnection::Handler,
                         public Http2Connection::Transport,
                         public std::enable_shared_from_this<ClientConnection> {
 public:
  ClientConnection(Worker& worker, BufferEventPtr bev, std::string peer_ip);
  ~ClientConnection() override;

  void start();
  // Closes at once (shutdown, fatal errors).
  void closeNow() override;
  // Closes now if idle, else after the response in flight (tunnels and watches run on until
  // the shutdown grace period ends).
  void drain();
  // At the end of the grace period: ends a streamed response cleanly (terminating chunk) and
  // closes tunnels, after flushing what is buffered.
  void endStreams();

  // UpstreamConnection::Handler
  void onUpstreamConnected() override;
  void onUpstreamReadable() override;
  void onUpstreamDrained() override;
  void onUpstreamClosed(const std::string& error) override;

 private:
  enum class Phase {
    kAwaitingRequest,  // keep-alive idle (or TLS handshake)
    kReadingHead,
    kAdmitting,
    kForwarding,
    kRespondingLocally,  // a local answer was written; the request body is being discarded
    kTunnel,
    kHttp2,  // ALPN chose h2: http2_ frames the connection
    kClosing,
  };
  enum class PauseReason { kNone, kHeadComplete, kMessageComplete };

  // Downstream bufferevent callbacks.
  static void onDownstreamRead(bufferevent*, void* self);
  static void onDownstreamWrite(bufferevent*, void* self);
  static void onDownstreamEvent(bufferevent*, short what, void* self);
  static void onTimer(evutil_socket_t, short, void* self);

  // Request parser callbacks.
  static int onRequestUrl(http_parser*, const char* at, size_t len);
  static int onRequestHeaderField(http_parser*, const char* at, size_t len);
  static int onRequestHeaderValue(http_parser*, const char* at, size_t len);
  static int onRequestHeadersComplete(http_parser*);
  static int onRequestBody(http_parser*, const char* at, size_t len);
  static int onRequestMessageComplete(http_parser*);

  // Response parser callbacks.
  static int onResponseStatus(http_parser*, const char* at, size_t len);
  static int onResponseHeaderField(http_parser*, const char* at, size_t len);
  static int onResponseHeaderValue(http_parser*, const char* at, size_t len);
  static int onResponseHeadersComplete(http_parser*);
  static int onResponseBody(http_parser*, const char* at, size_t len);
  static int onResponseMessageComplete(http_parser*);

  static const http_parser_settings& requestSettings();
  static const http_parser_settings& responseSettings();

  // Parses what the client sent (as far as the current request allows) and flushes what that
  // queued for the backend.
  void processDownstreamInput();
  void parseDownstreamInput();
  void processUpstreamInput();
  void startAdmission();
  void onAdmitted(AdmissionVerdict verdict);
  void startForwarding(const UserInfo& user, bool send_identity);
  // Answers /healthz, /livez, /readyz and /metrics here; false for any other path.
  bool serveLocalEndpoint();
  void connectUpstream();
  void respondLocally(int status, const std::string& content_type, const std::string& body,
                      const HeaderMap& headers);
  void respondWithStatus(int status, std::string_view reason, std::string_view message);
  void onRequestComplete();
  void onResponseComplete();
  // The last chunk of a re-chunked body and the trailers that may be forwarded with it; a
  // request's lose what admission strips from heads first.
  void writeLastChunk(evbuffer* out, HeaderMap& trailers, const HeaderMap& head, bool request);
  void finishCycle();
  void enterTunnel();
  // Tunnel pumps: move what one side sent to the other, pausing the reader at the watermark.
  void pumpToBackend();
  void pumpToClient();
  // With TLS read-ahead, OpenSSL may hold records beyond the one the bufferevent asked for;
  // bufferevent_openssl only checks SSL_pending (decrypted bytes), so they would wait for a
  // socket event that never comes. Moves them into the input buffer; true if it moved any.
  bool pullBufferedTls();
  // Sends what out_ holds: at once when the socket takes it, else through the bufferevent.
  void flushDownstream();
  void closeAfterFlush() override;
  // Http2Connection::Transport
  evbuffer* input() override;
  void send(evbuffer* bytes) override;
  size_t queuedBytes() override;
  // After the handshake, when ALPN chose h2.
  void startHttp2();
  void armTimer(absl::Duration timeout);
  // After a response, when the connection is kept alive: the idle timeout, with a stop after
  // kIdleReleaseDelay to release the memory an idle connection does not need (IdleStages).
  void armIdleTimer();
  // Frees what only a request in progress needs: the input buffer's empty chain that
  // bufferevent_openssl reserves for its next read, and the kept header and request buffers.
  void releaseIdleMemory();
  void logRequest(int status);
  void releaseUpstream(bool reusable);
  bool forwardingBodyBlocked() const;

  Worker& worker_;
  BufferEventPtr bev_;
  SSL* ssl_;  // owned by bev_
  // Response bytes produced by one parsing step; flushDownstream() empties it, so outside a
  // step all unsent bytes are in the bufferevent's output (where the watermarks look).
  EvBufferPtr out_;
  std::string peer_ip_;
  X509Ptr peer_leaf_;
  X509StackPtr peer_chain_;  // as sent; after ticket resumption, as the ticket carried it
  PeerVerificationCache verification_cache_;
  bool handshake_done_ = false;
  ConnectionInfo http2_info_;  // what every HTTP/2 stream's admission sees
  std::unique_ptr<Http2Connection> http2_;
  EventPtr timer_;  // the header deadline, or the idle one
  IdleStages idle_stages_;
  Phase phase_ = Phase::kAwaitingRequest;
  bool close_after_flush_ = false;
  bool draining_ = false;

  // Request side.
  http_parser request_parser_;
  PauseReason request_pause_ = PauseReason::kNone;
  RequestHead head_;
  HeaderLineCollector request_lines_;
  size_t request_line_bytes_ = 0;
  size_t header_bytes_ = 0;
  int parse_error_status_ = 0;
  bool request_complete_ = false;
  uint64_t request_seq_ = 0;
  uint64_t request_body_sent_ = 0;
  std::string upstream_request_;  // kept for one retry on a stale pooled connection
  std::string identity_lines_;    // X-Remote-* (and Trailer) lines the proxy adds to the client's
  DownstreamResponse downstream_response_;  // the response head being written; buffer reused
  absl::Time request_start_;
  std::string user_name_;
  std::string metrics_verb_;  // the Kubernetes verb once known, upper case
  std::string audit_id_;      // the aggregator's Audit-ID, for the access log

  // Response side.
  std::unique_ptr<UpstreamConnection> upstream_;
  size_t upstream_index_ = 0;  // the request's backend (AdmissionVerdict::upstream)
  http_parser response_parser_;
  bool response_paused_ = false;
  ResponseHead response_head_;
  HeaderLineCollector response_lines_;
  bool response_started_ = false;  // a final head was written downstream
  bool response_complete_ = false;
  bool response_bytes_seen_ = false;
  bool close_after_response_ = false;
  BodyFraming framing_ = BodyFraming::kNone;
  bool upstream_read_blocked_ = false;
  bool tunnel_pending_ = false;
  bool connect_failed_ = false;
  bool request_logged_ = false;
  int response_status_ = 0;
};

}  // namespace aaproxy
