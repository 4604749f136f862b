// Connections are created non-blocking (bufferevent_socket_connect*) so a worker never waits.
#include "proxy/upstream_pool.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>

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

void UpstreamConnection::onRead(bufferevent*, void* self) {
  auto* conn = static_cast<UpstreamConnection*>(self);
  if (conn->handler_ != nullptr) {
    conn->handler_->onUpstreamReadable();
  } else {
    // An idle connection that speaks up is out of sync with us: drop it.
    conn->pool_->dropIdle(conn);
  }
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
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));  // fails harmlessly on Unix sockets
    bufferevent_set_timeouts(bev, nullptr, nullptr);
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
      bufferevent_disable(bev, EV_WRITE);
    }
    if (conn->handler_ != nullptr) {
      conn->handler_->onUpstreamConnected();
    }
    return;
  }
  if (conn->handler_ == nullptr) {
    conn->pool_->dropIdle(conn);
    return;
  }
  std::string error;
  if (what & BEV_EVENT_TIMEOUT) {
    error = "connect timeout";
  } else if (what & BEV_EVENT_ERROR) {
    int err = EVUTIL_SOCKET_ERROR();
    error = err != 0 ? evutil_socket_error_to_string(err) : "connection error";
  }
  conn->handler_->onUpstreamClosed(error);
}

UpstreamPool::UpstreamPool(event_base* base, const UpstreamAddress& address,
                           absl::Duration connect_timeout, size_t max_idle)
    : base_(base), address_(address), connect_timeout_(connect_timeout), max_idle_(max_idle) {}

UpstreamPool::~UpstreamPool() = default;

std::unique_ptr<UpstreamConnection> UpstreamPool::acquire(UpstreamConnection::Handler& handler,
                                                          std::string& error) {
  if (!idle_.empty()) {
    std::unique_ptr<UpstreamConnection> conn = std::move(idle_.front());
    idle_.pop_front();
    conn->handler_ = &handler;
    conn->reused_ = true;
    bufferevent_enable(conn->bev(), EV_READ);
    return conn;
  }
  auto conn = std::make_unique<UpstreamConnection>();
  conn->pool_ = this;
  conn->handler_ = &handler;
  conn->bev_.reset(bufferevent_socket_new(base_, -1, BEV_OPT_CLOSE_ON_FREE));
  bufferevent* bev = conn->bev();
  bufferevent_setcb(bev, &UpstreamConnection::onRead, &UpstreamConnection::onWrite,
                    &UpstreamConnection::onEvent, conn.get());
  bufferevent_setwatermark(bev, EV_READ, 0, kBufferHighWatermark);
  bufferevent_setwatermark(bev, EV_WRITE, kBufferLowWatermark, 0);
  timeval timeout = absl::ToTimeval(connect_timeout_);
  bufferevent_set_timeouts(bev, nullptr, &timeout);
  bufferevent_enable(bev, EV_READ | EV_WRITE);
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
      evbuffer_get_length(bufferevent_get_input(connection->bev())) != 0) {
    return;  // closed by the destructor
  }
  connection->handler_ = nullptr;
  bufferevent_enable(connection->bev(), EV_READ);
  idle_.push_front(std::move(connection));
  idle_.front()->idle_position_ = idle_.begin();
}

void UpstreamPool::dropIdle(UpstreamConnection* connection) {
  // Erasing frees the bufferevent; libevent keeps it alive until the running callback returns.
  idle_.erase(connection->idle_position_);
}

}  // namespace aaproxy
