// One worker thread: an event loop, its listener on the shared port, its client connections and
// its own pool of backend connections. Nothing here is touched by another thread except post().
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "config/proxy_options.h"
#include "common/mutex.h"
#include "proxy/admission.h"
#include "proxy/event_loop.h"
#include "proxy/health.h"
#include "proxy/libevent_handles.h"
#include "proxy/tls_context.h"
#include "proxy/upstream_pool.h"

namespace aaproxy {

class ClientConnection;

// State every worker shares; immutable except the serving TLS context, which is swapped whole.
class SharedProxyState {
 public:
  // `upstream_tls[i]`: built from options.upstreams[i] when it is https://, else null.
  SharedProxyState(ProxyOptions options, std::shared_ptr<const ServerTlsContext> tls,
                   std::unique_ptr<RequestAdmission> admission,
                   std::vector<std::shared_ptr<const UpstreamTlsContext>> upstream_tls)
      : options_(std::move(options)),
        tls_(std::move(tls)),
        admission_(std::move(admission)),
        upstream_tls_(std::move(upstream_tls)) {}

  const ProxyOptions& options() const { return options_; }
  const std::shared_ptr<const UpstreamTlsContext>& upstreamTls(size_t index) const {
    return upstream_tls_[index];
  }
  RequestAdmission& admission() const { return *admission_; }
  HealthState& health() const { return health_; }

  std::shared_ptr<const ServerTlsContext> tls() const {
    MutexLock lock(&mutex_);
    return tls_;
  }
  void setTls(std::shared_ptr<const ServerTlsContext> tls) {
    MutexLock lock(&mutex_);
    tls_ = std::move(tls);
  }

 private:
  const ProxyOptions options_;
  mutable Mutex mutex_;
  std::shared_ptr<const ServerTlsContext> tls_ ABSL_GUARDED_BY(mutex_);
  std::unique_ptr<RequestAdmission> admission_;
  const std::vector<std::shared_ptr<const UpstreamTlsContext>> upstream_tls_;
  mutable HealthState health_;
};

class Worker {
 public:
  Worker(int index, const SharedProxyState& shared);
  ~Worker();

  // Listens on `fd` (a bound, listening socket this worker now owns).
  absl::Status listen(evutil_socket_t fd);

  EventLoop& loop() { return loop_; }
  const ProxyOptions& options() const { return shared_.options(); }
  RequestAdmission& admission() const { return shared_.admission(); }
  HealthState& health() const { return shared_.health(); }
  // The pool of ProxyOptions::upstreams[index] (an AdmissionVerdict's `upstream`).
  UpstreamPool& upstreamPool(size_t index) { return *pools_[index]; }
  bool draining() const { return draining_; }
  int index() const { return index_; }

  // Called by a connection that has closed itself; it is destroyed once its callbacks unwind.
  void retire(ClientConnection* connection);
  // Open client connections; readable from any thread (shutdown waits on it).
  size_t openConnections() const { return open_connections_.load(); }

  // Graceful: closes the listener and idle connections; busy ones close after their response.
  void drain();
  // Ends streamed responses and tunnels cleanly (see ClientConnection::endStreams).
  void endStreams();
  // Closes the listener and every connection; then the loop can stop.
  void shutdown();

 private:
  void forEachConnection(const std::function<void(ClientConnection&)>& fn);
  static void onAccept(evconnlistener*, evutil_socket_t fd, sockaddr* addr, int len, void* self);
  static void onReap(evutil_socket_t, short, void* self);

  int index_;
  const SharedProxyState& shared_;
  EventLoop loop_;
  std::vector<std::unique_ptr<UpstreamPool>> pools_;
  ListenerPtr listener_;
  EventPtr reap_event_;
  absl::flat_hash_map<ClientConnection*, std::shared_ptr<ClientConnection>> connections_;
  std::vector<std::shared_ptr<ClientConnection>> retired_;
  std::atomic<size_t> open_connections_{0};
  bool draining_ = false;
};

}  // namespace aaproxy
