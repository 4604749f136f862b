// Accepting, TLS setup per connection, and deferred destruction of closed connections.
#include "proxy/worker.h"

#include <arpa/inet.h>
#include <event2/bufferevent_ssl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include "common/logging.h"
#include "proxy/client_connection.h"
#include "proxy/proxy_metrics.h"

namespace aaproxy {
namespace {

std::string addressToString(const sockaddr* addr) {
  char buf[INET6_ADDRSTRLEN] = "";
  if (addr->sa_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(addr)->sin_addr, buf, sizeof(buf));
  } else if (addr->sa_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(addr)->sin6_addr, buf, sizeof(buf));
  }
  return buf;
}

}  // namespace

Worker::Worker(int index, const SharedProxyState& shared)
    : index_(index), shared_(shared) {
  const std::vector<UpstreamAddress>& upstreams = shared.options().upstreams;
  for (size_t i = 0; i < upstreams.size(); ++i) {
    pools_.push_back(std::make_unique<UpstreamPool>(loop_.base(), upstreams[i],
                                                    shared.upstreamTls(i),
                                                    shared.options().upstream_connect_timeout, 128));
  }
  reap_event_.reset(event_new(loop_.base(), -1, 0, &Worker::onReap, this));
}

Worker::~Worker() {
  // Connections hold bufferevents of this loop: release them before the loop goes.
  connections_.clear();
  retired_.clear();
  listener_.reset();
}

absl::Status Worker::listen(evutil_socket_t fd) {
  listener_.reset(evconnlistener_new(loop_.base(), &Worker::onAccept, this,
                                     LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, -1, fd));
  if (!listener_) {
    return absl::InternalError("cannot listen");
  }
  return absl::OkStatus();
}

void Worker::onAccept(evconnlistener*, evutil_socket_t fd, sockaddr* addr, int, void* self) {
  auto* worker = static_cast<Worker*>(self);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  ProxyMetrics::get().connections_accepted.inc();
  std::shared_ptr<const ServerTlsContext> tls = worker->shared_.tls();
  SSL* ssl = SSL_new(tls->get());
  if (ssl == nullptr) {
    evutil_closesocket(fd);
    return;
  }
  BufferEventPtr bev(bufferevent_openssl_socket_new(worker->loop_.base(), fd, ssl,
                                                    BUFFEREVENT_SSL_ACCEPTING,
                                                    BEV_OPT_CLOSE_ON_FREE));
  if (!bev) {
    SSL_free(ssl);
    evutil_closesocket(fd);
    return;
  }
  auto conn = std::make_shared<ClientConnection>(*worker, std::move(bev), addressToString(addr));
  worker->connections_.emplace(conn.get(), conn);
  worker->open_connections_.store(worker->connections_.size());
  conn->start();
}

void Worker::retire(ClientConnection* connection) {
  auto it = connections_.find(connection);
  if (it == connections_.end()) {
    return;
  }
  retired_.push_back(std::move(it->second));
  connections_.erase(it);
  open_connections_.store(connections_.size());
  event_active(reap_event_.get(), EV_READ, 0);
}

void Worker::onReap(evutil_socket_t, short, void* self) {
  static_cast<Worker*>(self)->retired_.clear();
}

void Worker::forEachConnection(const std::function<void(ClientConnection&)>& fn) {
  // A snapshot: the calls may close connections, which removes them from the map.
  std::vector<std::shared_ptr<ClientConnection>> open;
  open.reserve(connections_.size());
  for (auto& [ptr, conn] : connections_) {
    open.push_back(conn);
  }
  for (auto& conn : open) {
    fn(*conn);
  }
}

void Worker::drain() {
  draining_ = true;
  listener_.reset();
  forEachConnection([](ClientConnection& conn) { conn.drain(); });
}

void Worker::endStreams() {
  forEachConnection([](ClientConnection& conn) { conn.endStreams(); });
}

void Worker::shutdown() {
  listener_.reset();
  forEachConnection([](ClientConnection& conn) { conn.closeNow(); });
  retired_.clear();
}

}  // namespace aaproxy
