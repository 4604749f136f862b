#include "proxy/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "common/metrics.h"

namespace aaproxy {
namespace {

absl::StatusOr<int> bindListener(const std::string& address, uint16_t port) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (inet_pton(AF_INET, address.c_str(), &reinterpret_cast<sockaddr_in*>(&ss)->sin_addr) == 1) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    len = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, address.c_str(),
                       &reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr) == 1) {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    len = sizeof(sockaddr_in6);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--bind-address: \"", address, "\" is not an IP address"));
  }
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || listen(fd, 1024) != 0) {
    int err = errno;
    close(fd);
    return absl::InvalidArgumentError(absl::StrCat("--secure-port: cannot listen on ", address,
                                                   ":", port, ": ", std::strerror(err)));
  }
  return fd;
}

uint16_t boundPort(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  if (ss.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  }
  return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
}

}  // namespace

absl::StatusOr<std::unique_ptr<ProxyServer>> ProxyServer::create(
    std::unique_ptr<SharedProxyState> shared) {
  std::unique_ptr<ProxyServer> server(new ProxyServer());
  server->shared_ = std::move(shared);
  const ProxyOptions& options = server->shared_->options();
  uint16_t port = static_cast<uint16_t>(options.secure_port);
  for (int i = 0; i < options.workers; ++i) {
    absl::StatusOr<int> fd = bindListener(options.bind_address, port);
    if (!fd.ok()) {
      return fd.status();
    }
    if (i == 0) {
      port = boundPort(*fd);  // --secure-port 0 picks one; the other workers share it
      server->port_ = port;
    }
    auto worker = std::make_unique<Worker>(i, *server->shared_);
    if (absl::Status s = worker->listen(*fd); !s.ok()) {
      close(*fd);
      return s;
    }
    server->workers_.push_back(std::move(worker));
  }
  ProxyServer* raw = server.get();
  MetricsRegistry::global().gauge("aaproxy_open_connections", "Open client connections.", "",
                                  [raw] { return static_cast<double>(raw->openConnections()); });
  return server;
}

ProxyServer::~ProxyServer() {
  stop();
  wait();
  // Admission owns per-loop kube-apiserver clients whose events live on the workers' bases:
  // it goes first, while the bases still exist.
  shared_.reset();
  workers_.clear();
}

std::vector<Dispatcher*> ProxyServer::loops() {
  std::vector<Dispatcher*> out;
  for (auto& worker : workers_) {
    out.push_back(&worker->loop());
  }
  return out;
}

void ProxyServer::start() {
  for (auto& worker : workers_) {
    worker->loop().start();
  }
}

size_t ProxyServer::openConnections() const {
  size_t open = 0;
  for (const auto& worker : workers_) {
    open += worker->openConnections();
  }
  return open;
}

bool ProxyServer::waitForNoConnections(absl::Duration timeout) const {
  absl::Time deadline = absl::Now() + timeout;
  while (openConnections() != 0) {
    if (absl::Now() >= deadline) {
      return false;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return true;
}

void ProxyServer::drain(absl::Duration grace) {
  shared_->health().setShuttingDown();
  for (auto& worker : workers_) {
    Worker* w = worker.get();
    w->loop().post([w] { w->drain(); });
  }
  if (waitForNoConnections(grace)) {
    return;
  }
  AA_LOG(W) << "shutdown grace period over: ending the remaining streams and tunnels";
  for (auto& worker : workers_) {
    Worker* w = worker.get();
    w->loop().post([w] { w->endStreams(); });
  }
  // A moment for the terminating chunks to be flushed before the loops stop.
  waitForNoConnections(absl::Seconds(2));
}

void ProxyServer::stop() {
  for (auto& worker : workers_) {
    Worker* w = worker.get();
    w->loop().post([w] { w->shutdown(); });
    w->loop().stop();
  }
}

void ProxyServer::wait() {
  for (auto& worker : workers_) {
    worker->loop().join();
  }
}

}  // namespace aaproxy
