// Connections are created non-blocking (bufferevent_socket_connect*) so a worker never waits.
#include "proxy/upstream_pool.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace aaproxy {

void UpstreamConnection::flush() {
  if (!connected_) {
    return;  // the connect completion writes what is queued
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

UpstreamConnection::~UpstreamConnection() {
  if (bev_) {
    evbuffer_remove_cb(input(), &UpstreamConnection::onInputChanged, this);
  }
}

void UpstreamConnection::setReading(bool on) {
  read_wanted_ = on;
  updateReadEvent();
}

void UpstreamConnection::updateReadEvent() {
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
  // Only a drain can resume reading that a full input buffer paused.
  if (info->n_deleted > 0 && conn->read_wanted_ && !conn->read_armed_) {
    conn->updateReadEvent();
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
  if (what & BEV_EVENT_CONNECTED) {
    conn->connected_ = true;
    int fd = bufferevent_getfd(bev);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
               sizeof(one));  // fails harmlessly on Unix sockets
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
    int err = EVUTIL_SOCKET_ERROR();
    error = err != 0 ? evutil_socket_error_to_string(err) : "connection error";
  }
  conn->reportClosed(error);
}

UpstreamPool::UpstreamPool(event_base* base, const UpstreamAddress& address,
                           absl::Duration connect_timeout, size_t max_idle)
    : base_(base), address_(address), connect_timeout_(connect_timeout), max_idle_(max_idle) {}

UpstreamPool::~UpstreamPool() = default;

std::unique_ptr<UpstreamConnection> UpstreamPool::acquire(UpstreamConnection::Handler& handler,
                                                          std::string& error) {
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
  conn->bev_.reset(bufferevent_socket_new(base_, -1, BEV_OPT_CLOSE_ON_FREE));
  bufferevent* bev = conn->bev_.get();
  bufferevent_setcb(bev, nullptr, &UpstreamConnection::onWrite, &UpstreamConnection::onEvent,
                    conn.get());
  evbuffer_add_cb(conn->input(), &UpstreamConnection::onInputChanged, conn.get());
  bufferevent_setwatermark(bev, EV_WRITE, kBufferLowWatermark, 0);
  timeval timeout = absl::ToTimeval(connect_timeout_);
  bufferevent_set_timeouts(bev, nullptr, &timeout);
  // Writing only: EV_WRITE reports the connect; reading is read_event_'s job.
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
  return conn;
}

void UpstreamPool::release(std::unique_ptr<UpstreamConnection> connection) {
  if (idle_.size() >= max_idle_ || !connection->connected_ ||
      evbuffer_get_length(connection->input()) != 0) {
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
