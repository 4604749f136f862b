// Connections are created non-blocking (bufferevent_socket_connect*) so a worker never waits.
// Plain connections read the socket themselves (onReadable); TLS ones read through OpenSSL's
// bufferevent and write with SSL_write from their own output buffer (writeTls).
#include "proxy/upstream_pool.h"

#include <arpa/inet.h>
#include <event2/bufferevent_ssl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "proxy/proxy_metrics.h"

namespace aaproxy {
namespace {

// One TLS record's worth of plaintext: what a single SSL_write can turn into one record.
constexpr size_t kMaxTlsRecordPlaintext = 16384;

void setNoDelay(evutil_socket_t fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));  // fails harmlessly on Unix sockets
}

// Whether errno after a failed TLS connect names the cause (a refused or reset connection)
// rather than being left over from an earlier non-blocking call.
bool meaningfulSocketError(int error) {
  return error != 0 && error != EAGAIN && error != EWOULDBLOCK && error != EINPROGRESS &&
         error != EINTR;
}

}  // namespace

void UpstreamConnection::flush() {
  if (!connected_ || peer_closed_) {
    return;  // the connect completion writes what is queued
  }
  if (ssl_ != nullptr) {
    if (event_pending(tls_write_event_.get(), EV_WRITE, nullptr) == 0) {
      writeTls();  // else the socket is full: onTlsWritable goes on when it is not
    }
    return;
  }
  evbuffer* out = bufferevent_get_output(bev_.get());
  if (evbuffer_get_length(out) == 0) {
    return;
  }
  // Socket bufferevents freeze the front of their output buffer so only they drain it; thaw it
  // for this write (single-threaded: nothing else touches the buffer meanwhile).
  evbuffer_unfreeze(out, 1);
  evbuffer_write(out, bufferevent_getfd(bev_.get()));
  evbuffer_freeze(out, 1);
  if (evbuffer_get_length(out) > 0) {
    bufferevent_enable(bev_.get(), EV_WRITE);  // the write callback reports when it drains
  }
}

void UpstreamConnection::writeTls() {
  evbuffer* out = tls_output_.get();
  size_t length = evbuffer_get_length(out);
  while (length > 0) {
    size_t n = std::min(length, kMaxTlsRecordPlaintext);
    // One contiguous piece per record: a request head and a small body go out as one record.
    // After a partial write OpenSSL wants the same bytes again: they are still at the front.
    unsigned char* data = evbuffer_pullup(out, static_cast<ev_ssize_t>(n));
    ERR_clear_error();
    int written = SSL_write(ssl_, data, static_cast<int>(n));
    if (written > 0) {
      evbuffer_drain(out, static_cast<size_t>(written));
      length -= static_cast<size_t>(written);
      continue;
    }
    const int socket_error = errno;
    int error = SSL_get_error(ssl_, written);
    if (error == SSL_ERROR_WANT_WRITE || error == SSL_ERROR_WANT_READ) {
      ERR_clear_error();
      event_add(tls_write_event_.get(), nullptr);  // onTlsWritable goes on
      return;
    }
    std::vector<unsigned long> errors;
    while (unsigned long e = ERR_get_error()) {
      errors.push_back(e);
    }
    onTlsClosed(BEV_EVENT_WRITING | BEV_EVENT_ERROR, socket_error, std::move(errors));
    return;
  }
}

void UpstreamConnection::onTlsWritable(evutil_socket_t, short, void* self) {
  auto* conn = static_cast<UpstreamConnection*>(self);
  conn->writeTls();
  // As a socket bufferevent's write callback: once the output is down to the low watermark.
  if (!conn->peer_closed_ && conn->handler_ != nullptr &&
      evbuffer_get_length(conn->tls_output_.get()) <= kBufferLowWatermark) {
    conn->handler_->onUpstreamDrained();
  }
}

UpstreamConnection::~UpstreamConnection() {
  if (!bev_) {
    return;
  }
  evbuffer_remove_cb(input(), &UpstreamConnection::onInputChanged, this);
  if (ssl_ != nullptr && (connected_ || peer_closed_)) {
    // close_notify, as Go's client sends on Close. Marking the connection shut down also keeps
    // its session resumable: OpenSSL spoils the session of an SSL freed without a shutdown, and
    // that session object may be the one the pool offers next.
    ERR_clear_error();
    if (peer_closed_) {
      SSL_set_shutdown(ssl_, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    } else {
      SSL_shutdown(ssl_);
    }
    ERR_clear_error();
  }
}

void UpstreamConnection::setReading(bool on) {
  read_wanted_ = on;
  updateReadEvent();
}

void UpstreamConnection::updateReadEvent() {
  if (ssl_ != nullptr) {
    if (!connected_ && !peer_closed_) {
      return;  // onTlsConnected starts reading
    }
    // The bufferevent pauses by itself at the input's high watermark (bufferevent_setwatermark).
    bool arm = read_wanted_ && !peer_closed_;
    if (arm != read_armed_) {
      read_armed_ = arm;
      arm ? bufferevent_enable(bev_.get(), EV_READ) : bufferevent_disable(bev_.get(), EV_READ);
    }
    // A close to report, or bytes OpenSSL decrypted but the bufferevent left behind when the
    // input reached its high watermark: libevent resumes only on socket readability, which may
    // never come. Both are handled from the loop, not inside the caller.
    if (read_wanted_ && evbuffer_get_length(input()) < kBufferHighWatermark &&
        ((peer_closed_ && !close_reported_) || (!peer_closed_ && SSL_pending(ssl_) > 0))) {
      event_active(tls_deferred_.get(), 0, 0);
    }
    return;
  }
  bool arm = read_event_ && read_wanted_ && evbuffer_get_length(input()) < kBufferHighWatermark;
  if (arm == read_armed_) {
    return;
  }
  read_armed_ = arm;
  if (arm) {
    event_add(read_event_.get(), nullptr);
  } else {
    event_del(read_event_.get());
  }
}

void UpstreamConnection::onInputChanged(evbuffer*, const evbuffer_cb_info* info, void* self) {
  auto* conn = static_cast<UpstreamConnection*>(self);
  // Only a drain can resume reading that a full input buffer paused (TLS: or let a pending
  // close or left-behind bytes through).
  if (info->n_deleted > 0 && conn->read_wanted_ && (!conn->read_armed_ || conn->ssl_ != nullptr)) {
    conn->updateReadEvent();
  }
}

void UpstreamConnection::onTlsReadable(bufferevent*, void* self) {
  auto* conn = static_cast<UpstreamConnection*>(self);
  conn->received_data_ = true;
  if (conn->handler_ != nullptr) {
    conn->handler_->onUpstreamReadable();
  } else {
    conn->pool_->dropIdle(conn);  // an idle connection that speaks up is out of sync with us
  }
}

void UpstreamConnection::onReadable(evutil_socket_t fd, short, void* self) {
  auto* conn = static_cast<UpstreamConnection*>(self);
  // Read with one syscall into a stack buffer and copy what came into the input buffer (a
  // response is usually a few hundred bytes). libevent's socket bufferevents call
  // ioctl(FIONREAD) before every read, and reserving a full-size chain per read costs more
  // than the copy.
  constexpr size_t kReadSize = 16384;
  constexpr int kMaxReadsPerEvent = 4;  // bulk bodies: up to 64 KiB per loop turn
  char buffer[kReadSize];
  evbuffer* input = conn->input();
  bool got_data = false;
  for (int i = 0; i < kMaxReadsPerEvent; ++i) {
    size_t queued = evbuffer_get_length(input);
    if (queued >= kBufferHighWatermark) {
      break;
    }
    size_t want = std::min(kReadSize, kBufferHighWatermark - queued);
    ssize_t n = recv(fd, buffer, want, 0);
    if (n > 0) {
      evbuffer_add(input, buffer, static_cast<size_t>(n));
      got_data = true;
      if (static_cast<size_t>(n) < want) {
        break;  // the socket is empty for now
      }
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      break;
    }
    if (got_data && conn->handler_ != nullptr) {
      // Let the user take what arrived before the EOF; it reads again and sees the EOF.
      break;
    }
    conn->reportClosed(n == 0 ? std::string() : evutil_socket_error_to_string(errno));
    return;
  }
  conn->updateReadEvent();
  if (!got_data) {
    return;
  }
  if (conn->handler_ != nullptr) {
    conn->handler_->onUpstreamReadable();
  } else {
    // An idle connection that speaks up is out of sync with us: drop it.
    conn->pool_->dropIdle(conn);
  }
}

void UpstreamConnection::reportClosed(const std::string& error) {
  if (handler_ == nullptr) {
    pool_->dropIdle(this);
    return;
  }
  handler_->onUpstreamClosed(error);
}

void UpstreamConnection::onWrite(bufferevent* bev, void* self) {
  auto* conn = static_cast<UpstreamConnection*>(self);
  if (evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
    // Back to optimistic writes: no writability interest while nothing is queued.
    bufferevent_disable(bev, EV_WRITE);
  }
  if (conn->handler_ != nullptr) {
    conn->handler_->onUpstreamDrained();
  }
}

void UpstreamConnection::onEvent(bufferevent* bev, short what, void* self) {
  auto* conn = static_cast<UpstreamConnection*>(self);
  const int socket_error = EVUTIL_SOCKET_ERROR();
  if (conn->ssl_ != nullptr) {
    if (what & BEV_EVENT_CONNECTED) {
      conn->onTlsConnected();
      return;
    }
    std::vector<unsigned long> errors;
    while (unsigned long error = bufferevent_get_openssl_error(bev)) {
      // libevent also queues bare SSL_get_error() codes (library 0) for socket-level failures;
      // those are told by errno.
      if (ERR_GET_LIB(error) != 0) {
        errors.push_back(error);
      }
    }
    conn->onTlsClosed(what, socket_error, std::move(errors));
    return;
  }
  if (what & BEV_EVENT_CONNECTED) {
    conn->connected_ = true;
    int fd = bufferevent_getfd(bev);
    setNoDelay(fd);
    bufferevent_set_timeouts(bev, nullptr, nullptr);
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
      bufferevent_disable(bev, EV_WRITE);
    }
    conn->read_event_.reset(event_new(conn->pool_->base_, fd, EV_READ | EV_PERSIST,
                                      &UpstreamConnection::onReadable, conn));
    conn->updateReadEvent();
    if (conn->handler_ != nullptr) {
      conn->handler_->onUpstreamConnected();
    }
    return;
  }
  std::string error;
  if (what & BEV_EVENT_TIMEOUT) {
    error = "connect timeout";
  } else if (what & BEV_EVENT_ERROR) {
    error = socket_error != 0 ? evutil_socket_error_to_string(socket_error) : "connection error";
  }
  conn->reportClosed(error);
}

void UpstreamConnection::onTlsConnected() {
  bufferevent* bev = bev_.get();
  connected_ = true;
  bufferevent_set_timeouts(bev, nullptr, nullptr);
  // From now on a backend may close without close_notify, as many do: a body framed by length
  // or chunks is complete regardless, and an unframed one ends at the close anyway (as over
  // plain TCP). Before this, a dirty close stays an error so that errno tells why connecting
  // failed. OpenSSL 3 calls such a close an error of its own unless told to ignore it.
  bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
  SSL_set_options(ssl_, SSL_OP_IGNORE_UNEXPECTED_EOF);
  bool resumed = SSL_session_reused(ssl_) == 1;
  (resumed ? ProxyMetrics::get().upstream_tls_resumptions
           : ProxyMetrics::get().upstream_tls_full_handshakes)
      .inc();
  AA_VLOG(4) << "TLS handshake with backend " << pool_->address_.display
             << " done: " << SSL_get_version(ssl_) << (resumed ? " (resumed)" : "");
  tls_deferred_.reset(event_new(pool_->base_, -1, 0, &UpstreamConnection::onTlsDeferred, this));
  tls_write_event_.reset(event_new(pool_->base_, bufferevent_getfd(bev), EV_WRITE,
                                   &UpstreamConnection::onTlsWritable, this));
  // The bufferevent only reads from now on: writes go out through writeTls().
  bufferevent_disable(bev, EV_WRITE);
  writeTls();  // what was queued during the handshake
  updateReadEvent();
  if (handler_ != nullptr) {
    handler_->onUpstreamConnected();
  }
  // As a socket bufferevent's write callback after its connect: a writer that stopped at the
  // high watermark while the handshake ran (an HTTP/2 stream holding back WINDOW_UPDATEs, a
  // client connection that stopped reading) goes on. Otherwise only onTlsWritable would tell
  // it, and that runs only when a write could not complete at once.
  if (handler_ != nullptr && !peer_closed_ &&
      evbuffer_get_length(tls_output_.get()) <= kBufferLowWatermark) {
    handler_->onUpstreamDrained();
  }
}

void UpstreamConnection::onTlsClosed(short what, int socket_error,
                                     std::vector<unsigned long> errors) {
  if (peer_closed_) {
    return;  // reported already
  }
  bufferevent* bev = bev_.get();
  if (errors.empty() && connected_ && !reused_ && !received_data_ && (what & BEV_EVENT_WRITING)) {
    // A backend that refuses us right after our side of the handshake (TLS 1.3 checks our
    // certificate then) sends its alert and closes without reading our request, which resets
    // the connection: the write fails while the alert still waits in the socket. Peek for it.
    char byte;
    ERR_clear_error();
    if (SSL_peek(ssl_, &byte, 1) <= 0) {
      while (unsigned long error = ERR_get_error()) {
        errors.push_back(error);
      }
    }
    ERR_clear_error();
  }
  UpstreamTlsError tls_error = pool_->tls_->describeError(ssl_, errors);
  std::string error = tls_error.message;
  if (error.empty()) {
    if (what & BEV_EVENT_TIMEOUT) {
      error = "connect timeout";  // the timeouts cover the TCP connect and the handshake only
    } else if ((what & BEV_EVENT_ERROR) && bufferevent_socket_get_dns_error(bev) != 0) {
      error = evutil_gai_strerror(bufferevent_socket_get_dns_error(bev));
    } else if (meaningfulSocketError(socket_error) &&
               (!connected_ || (what & BEV_EVENT_ERROR) || socket_error == ECONNRESET)) {
      // libevent reports a reset after the handshake as the dirty close allowed above.
      error = evutil_socket_error_to_string(socket_error);
    } else if (!connected_) {
      error = "connection closed during the TLS handshake";
    } else if (what & BEV_EVENT_ERROR) {
      error = "connection error";
    }
    // Otherwise a close (with or without close_notify): no error, as a plain socket's EOF.
  }
  if (!connected_) {
    reportClosed(error);  // the handshake failed: nothing was read
    return;
  }
  if (tls_error.peer_alert && !reused_ && !received_data_) {
    // A TLS 1.3 backend checks our certificate after our side of the handshake is over; its
    // refusal, before any response, means the connection never carried an exchange.
    connected_ = false;
  }
  peer_closed_ = true;
  close_error_ = std::move(error);
  read_armed_ = false;
  bufferevent_disable(bev, EV_READ | EV_WRITE);
  event_del(tls_write_event_.get());
  event_active(tls_deferred_.get(), 0, 0);
}

void UpstreamConnection::onTlsDeferred(evutil_socket_t, short, void* self) {
  auto* conn = static_cast<UpstreamConnection*>(self);
  if (conn->handler_ != nullptr &&
      (!conn->read_wanted_ || evbuffer_get_length(conn->input()) >= kBufferHighWatermark)) {
    return;  // setReading(true) or a drain brings it back (updateReadEvent)
  }
  if (conn->peer_closed_) {
    if (!conn->close_reported_) {
      conn->close_reported_ = true;
      std::string error = std::move(conn->close_error_);  // the user may destroy this connection
      conn->reportClosed(error);
    }
    return;
  }
  if (conn->pullPendingTls()) {
    onTlsReadable(conn->bev_.get(), conn);
  }
}

bool UpstreamConnection::pullPendingTls() {
  evbuffer* in = input();
  bool pulled = false;
  // Only what OpenSSL holds decrypted: reading that much never touches the socket.
  while (SSL_pending(ssl_) > 0 && evbuffer_get_length(in) < kBufferHighWatermark) {
    size_t want =
        std::min<size_t>(SSL_pending(ssl_), kBufferHighWatermark - evbuffer_get_length(in));
    evbuffer_iovec space;
    if (evbuffer_reserve_space(in, static_cast<ev_ssize_t>(want), &space, 1) < 1) {
      break;
    }
    ERR_clear_error();
    int n = SSL_read(ssl_, space.iov_base, static_cast<int>(std::min(want, space.iov_len)));
    if (n <= 0) {
      evbuffer_commit_space(in, nullptr, 0);
      ERR_clear_error();
      break;
    }
    space.iov_len = static_cast<size_t>(n);
    evbuffer_commit_space(in, &space, 1);
    pulled = true;
  }
  return pulled;
}

UpstreamPool::UpstreamPool(event_base* base, const UpstreamAddress& address,
                           std::shared_ptr<const UpstreamTlsContext> tls,
                           absl::Duration connect_timeout, size_t max_idle)
    : base_(base),
      address_(address),
      tls_(std::move(tls)),
      connect_timeout_(connect_timeout),
      max_idle_(max_idle) {}

UpstreamPool::~UpstreamPool() = default;

std::unique_ptr<UpstreamConnection> UpstreamPool::acquire(UpstreamConnection::Handler& handler,
                                                          std::string& error) {
  while (!idle_.empty() && idle_.front()->peer_closed_) {
    dropIdle(idle_.front().get());  // a TLS close whose report is still on its way
  }
  if (!idle_.empty()) {
    std::unique_ptr<UpstreamConnection> conn = std::move(idle_.front());
    spare_nodes_.splice(spare_nodes_.begin(), idle_, idle_.begin());  // kept for release()
    conn->handler_ = &handler;
    conn->reused_ = true;
    conn->setReading(true);
    return conn;
  }
  auto conn = std::make_unique<UpstreamConnection>();
  conn->pool_ = this;
  conn->handler_ = &handler;
  timeval timeout = absl::ToTimeval(connect_timeout_);
  if (tls_ != nullptr) {
    SslPtr ssl = tls_->newSsl(tls_sessions_);
    if (!ssl) {
      error = "cannot create a TLS connection";
      return nullptr;
    }
    // libevent frees the SSL itself on its failure paths past allocation; only when out of
    // memory could it leak here.
    conn->bev_.reset(bufferevent_openssl_socket_new(
        base_, -1, ssl.release(), BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE));
    if (!conn->bev_) {
      error = "cannot create a TLS connection";
      return nullptr;
    }
    conn->ssl_ = bufferevent_openssl_get_ssl(conn->bev_.get());
  } else {
    conn->bev_.reset(bufferevent_socket_new(base_, -1, BEV_OPT_CLOSE_ON_FREE));
  }
  bufferevent* bev = conn->bev_.get();
  if (tls_ != nullptr) {
    conn->tls_output_.reset(evbuffer_new());
    bufferevent_setcb(bev, &UpstreamConnection::onTlsReadable, nullptr,
                      &UpstreamConnection::onEvent, conn.get());
  } else {
    bufferevent_setcb(bev, nullptr, &UpstreamConnection::onWrite, &UpstreamConnection::onEvent,
                      conn.get());
  }
  evbuffer_add_cb(conn->input(), &UpstreamConnection::onInputChanged, conn.get());
  bufferevent_setwatermark(bev, EV_WRITE, kBufferLowWatermark, 0);
  if (tls_ != nullptr) {
    // The bufferevent reads TLS, pausing at the watermark; the timeout covers the handshake.
    bufferevent_setwatermark(bev, EV_READ, 0, kBufferHighWatermark);
    bufferevent_set_timeouts(bev, &timeout, &timeout);
  } else {
    bufferevent_set_timeouts(bev, nullptr, &timeout);
  }
  // Writing only: EV_WRITE reports the connect; reading is read_event_'s job (TLS: enabled
  // once the handshake is done, see updateReadEvent).
  bufferevent_disable(bev, EV_READ);
  bufferevent_enable(bev, EV_WRITE);
  int rc = -1;
  if (address_.kind == UpstreamAddress::Kind::kUnix) {
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    std::strncpy(sun.sun_path, address_.path.c_str(), sizeof(sun.sun_path) - 1);
    rc = bufferevent_socket_connect(bev, reinterpret_cast<sockaddr*>(&sun), sizeof(sun));
  } else {
    sockaddr_storage ss{};
    int len = sizeof(ss);
    std::string hostport = address_.host.find(':') != std::string::npos
                               ? absl::StrCat("[", address_.host, "]:", address_.port)
                               : absl::StrCat(address_.host, ":", address_.port);
    if (evutil_parse_sockaddr_port(hostport.c_str(), reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
      rc = bufferevent_socket_connect(bev, reinterpret_cast<sockaddr*>(&ss), len);
    } else {
      // A host name: resolved at connect time by libevent (blocking resolution is avoided by
      // configuring an IP; a name here is resolved synchronously once per new connection).
      rc = bufferevent_socket_connect_hostname(bev, nullptr, AF_UNSPEC, address_.host.c_str(),
                                               address_.port);
    }
  }
  if (rc != 0) {
    // libevent reports refusals through the event callback, but other immediate failures
    // (ENOENT for a missing socket file) only through the return value.
    int err = EVUTIL_SOCKET_ERROR();
    error = err != 0 ? evutil_socket_error_to_string(err) : "connect failed";
    return nullptr;
  }
  if (tls_ != nullptr && bufferevent_getfd(bev) >= 0) {
    setNoDelay(bufferevent_getfd(bev));  // the handshake's flights go out at once too
  }
  return conn;
}

void UpstreamPool::release(std::unique_ptr<UpstreamConnection> connection) {
  if (idle_.size() >= max_idle_ || !connection->connected_ || connection->peer_closed_ ||
      evbuffer_get_length(connection->input()) != 0 ||
      evbuffer_get_length(connection->output()) != 0) {
    return;  // closed by the destructor
  }
  connection->handler_ = nullptr;
  connection->setReading(true);  // an idle connection that closes or speaks up is dropped
  // A keep-alive request takes a connection and gives it back: reuse the list node.
  if (spare_nodes_.empty()) {
    idle_.push_front(std::move(connection));
  } else {
    idle_.splice(idle_.begin(), spare_nodes_, spare_nodes_.begin());
    idle_.front() = std::move(connection);
  }
  idle_.front()->idle_position_ = idle_.begin();
}

bool mayReplayOnNewConnection(std::string_view method, const HeaderMap& headers) {
  return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "TRACE" ||
         headers.has("Idempotency-Key") || headers.has("X-Idempotency-Key");
}

void UpstreamPool::dropIdle(UpstreamConnection* connection) {
  // Erasing frees the bufferevent; libevent keeps it alive until the running callback returns.
  idle_.erase(connection->idle_position_);
}

}  // namespace aaproxy
