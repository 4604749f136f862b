// HTTP/1.1 connections from one worker to the backend (plain or TLS), kept alive and reused.
#pragma once

#include <event2/bufferevent.h>

#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"
#include "config/proxy_options.h"
#include "k8s/header_map.h"
#include "proxy/libevent_handles.h"
#include "proxy/upstream_tls.h"

namespace aaproxy {

class UpstreamConnection {
 public:
  UpstreamConnection() = default;
  UpstreamConnection(const UpstreamConnection&) = delete;
  UpstreamConnection& operator=(const UpstreamConnection&) = delete;
  // Whoever is using the connection for an exchange.
  class Handler {
   public:
    virtual ~Handler() = default;
    virtual void onUpstreamConnected() = 0;
    virtual void onUpstreamReadable() = 0;
    virtual void onUpstreamDrained() = 0;
    // EOF or an error; `error` is empty for a clean EOF.
    virtual void onUpstreamClosed(const std::string& error) = 0;
  };

  ~UpstreamConnection();

  // Bytes from the backend, and bytes queued for it (flush() sends them).
  evbuffer* input() const { return bufferevent_get_input(bev_.get()); }
  evbuffer* output() const {
    return ssl_ != nullptr ? tls_output_.get() : bufferevent_get_output(bev_.get());
  }
  // Whether to read from the backend; the user turns it off while the client is not keeping
  // up. Reading also pauses by itself while input() holds kBufferHighWatermark bytes.
  void setReading(bool on);

  // Writes what is buffered for the backend now, as far as the socket takes it, and asks for a
  // writability event only for the rest. libevent's socket bufferevents otherwise always wait a
  // loop turn (and two epoll_ctl calls) before writing.
  void flush();
  // Connected, and for TLS the handshake done. A TLS 1.3 backend that refuses our client
  // certificate does so after our side of the handshake is over: its alert, arriving before
  // anything else, turns this back to false (a failed connect, not a failed exchange).
  bool connected() const { return connected_; }
  // True when this connection served an earlier exchange (it may have gone stale).
  bool reused() const { return reused_; }

 private:
  friend class UpstreamPool;
  static void onReadable(evutil_socket_t fd, short, void* self);
  static void onTlsReadable(bufferevent*, void* self);
  static void onInputChanged(evbuffer*, const evbuffer_cb_info*, void* self);
  static void onWrite(bufferevent*, void* self);
  static void onEvent(bufferevent*, short what, void* self);
  static void onTlsWritable(evutil_socket_t, short, void* self);
  // From the loop, while the user reads: a close reported (after what came before it, as a
  // plain socket's EOF), or bytes OpenSSL holds decrypted handed over.
  static void onTlsDeferred(evutil_socket_t, short, void* self);
  void onTlsConnected();
  // EOF or an error on a TLS connection (`errors`: OpenSSL's for it); a handshake failure is
  // reported at once, a later close once the user has taken what came before it.
  void onTlsClosed(short what, int socket_error, std::vector<unsigned long> errors);
  // SSL_write from tls_output_, as far as the socket takes it; tls_write_event_ does the rest.
  // The bufferevent never writes after the handshake: its writes would call the user back from
  // inside its own evbuffer_add().
  void writeTls();
  // Moves what OpenSSL holds decrypted into input(); true if it moved any.
  bool pullPendingTls();
  void updateReadEvent();
  // EOF or a read/connect error: the user hears of it, an idle connection leaves the pool.
  // The connection may be gone when this returns.
  void reportClosed(const std::string& error);

  class UpstreamPool* pool_ = nullptr;
  // Plain: connects and writes, reads go through read_event_ instead (see onReadable).
  // TLS (ssl_ set): an OpenSSL bufferevent that also reads, through its own read path.
  BufferEventPtr bev_;
  SSL* ssl_ = nullptr;   // owned by bev_; null for plain connections
  EventPtr read_event_;  // plain: created once connected; freed before bev_ closes the socket
  bool read_wanted_ = true;
  bool read_armed_ = false;
  Handler* handler_ = nullptr;  // null while idle in the pool
  bool connected_ = false;
  bool reused_ = false;
  // TLS only.
  EvBufferPtr tls_output_;    // output(): what the user queued, sent by writeTls()
  EventPtr tls_write_event_;  // writability after a partial write; freed before bev_ closes
  // libevent reports a close from inside its read pass, possibly before the bytes that pass
  // read are committed to input(): the report waits for the loop (onTlsDeferred).
  EventPtr tls_deferred_;
  bool peer_closed_ = false;
  bool close_reported_ = false;
  bool received_data_ = false;
  std::string close_error_;
  std::list<std::unique_ptr<UpstreamConnection>>::iterator idle_position_;
};

class UpstreamPool {
 public:
  // `tls` is the context built from `address` (UpstreamTlsContext::create) when it is https://,
  // else null; one context is shared by the pools of every worker.
  UpstreamPool(event_base* base, const UpstreamAddress& address,
               std::shared_ptr<const UpstreamTlsContext> tls, absl::Duration connect_timeout,
               size_t max_idle);
  ~UpstreamPool();

  // An idle connection (already connected) or a new one being connected; `handler` gets its events.
  // Null when the connection fails at once (a Unix socket that does not exist); `error` says why.
  std::unique_ptr<UpstreamConnection> acquire(UpstreamConnection::Handler& handler,
                                              std::string& error);
  // Returns a connection whose exchange ended cleanly (response complete, request fully sent).
  void release(std::unique_ptr<UpstreamConnection> connection);

  size_t idleCount() const { return idle_.size(); }

 private:
  friend class UpstreamConnection;
  void dropIdle(UpstreamConnection* connection);

  event_base* base_;
  UpstreamAddress address_;
  std::shared_ptr<const UpstreamTlsContext> tls_;
  UpstreamTlsSessions tls_sessions_;  // outlives every connection's SSL (see ~Worker)
  absl::Duration connect_timeout_;
  size_t max_idle_;
  std::list<std::unique_ptr<UpstreamConnection>> idle_;
  // Nodes of connections handed out (null pointers), for release() to put back without
  // allocating. At most as many as connections ever idle at once.
  std::list<std::unique_ptr<UpstreamConnection>> spare_nodes_;
};

// Whether a request whose pooled connection turned out closed, before any response byte, may be
// sent again on a new one. The backend may have read and acted on it before closing, so, as Go's
// Transport (Request.isReplayable), only a request without a body whose method is GET, HEAD,
// OPTIONS or TRACE, or that carries Idempotency-Key / X-Idempotency-Key. (The caller checks the
// body.)
bool mayReplayOnNewConnection(std::string_view method, const HeaderMap& headers);

// High/low watermarks shared by both directions of forwarding.
inline constexpr size_t kBufferHighWatermark = 1 << 20;
inline constexpr size_t kBufferLowWatermark = 256 << 10;

}  // namespace aaproxy
