// The listening side: N workers sharing one port (SO_REUSEPORT), started and stopped together.
#pragma once

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proxy/worker.h"

namespace aaproxy {

class ProxyServer {
 public:
  // Binds the port (so errors surface before anything runs) and builds the workers.
  static absl::StatusOr<std::unique_ptr<ProxyServer>> create(std::unique_ptr<SharedProxyState> shared);
  ~ProxyServer();

  uint16_t port() const { return port_; }
  SharedProxyState& shared() { return *shared_; }
  // The workers' loops, for per-loop state (kube-apiserver clients) set up before start().
  std::vector<Dispatcher*> loops();

  void start();
  // Stops accepting and lets in-flight requests finish, for at most `grace`.
  void drain(absl::Duration grace);
  // Stops accepting, closes connections and ends the worker loops. Safe from any thread.
  void stop();
  void wait();

  // Open client connections across the workers; readable from any thread.
  size_t openConnections() const;

 private:
  bool waitForNoConnections(absl::Duration timeout) const;

  ProxyServer() = default;

  std::unique_ptr<SharedProxyState> shared_;
  std::vector<std::unique_ptr<Worker>> workers_;
  uint16_t port_ = 0;
};

}  // namespace aaproxy
