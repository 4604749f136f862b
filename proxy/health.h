// Health of the proxy as /healthz, /livez and /readyz report it (k8s.io/apiserver's format).
#pragma once

#include <atomic>
#include <optional>
#include <string_view>
#include <string>
#include <vector>

#include "common/mutex.h"

namespace aaproxy {

// Facts the endpoints report on; written by whoever learns them, read by any worker.
class HealthState {
 public:
  // Readiness turns false first when shutting down, so load balancers stop sending traffic.
  void setShuttingDown() { shutting_down_.store(true); }
  bool shuttingDown() const { return shutting_down_.load(); }

  // Client-certificate authentication configuration (ConfigMap or flags) has been loaded.
  void setAuthenticationConfigLoaded(bool loaded) { authn_loaded_.store(loaded); }
  bool authenticationConfigLoaded() const { return authn_loaded_.load(); }

  // The backend's last answer (connection made) or failure.
  void setBackendReachable(bool reachable) { backend_reachable_.store(reachable); }
  bool backendReachable() const { return backend_reachable_.load(); }

  // Why the policy or route file on disk was last rejected ("" once one loads again): the
  // last good configuration keeps serving.
  void setConfigFileError(std::string error) {
    MutexLock lock(&mutex_);
    config_file_error_ = std::move(error);
  }
  std::string configFileError() const {
    MutexLock lock(&mutex_);
    return config_file_error_;
  }

 private:
  std::atomic<bool> shutting_down_{false};
  std::atomic<bool> authn_loaded_{true};
  std::atomic<bool> backend_reachable_{true};
  mutable Mutex mutex_;
  std::string config_file_error_ ABSL_GUARDED_BY(mutex_);
};

struct HealthCheckResult {
  std::string name;
  bool ok = true;
  std::string reason;  // why it failed
  // Reported (in ?verbose and /readyz/<name>) but never failing the endpoint as a whole: a
  // rejected config file leaves the last good configuration serving.
  bool informational = false;
};

// Which checks an endpoint runs: livez and healthz only liveness; readyz adds readiness.
std::vector<HealthCheckResult> runHealthChecks(const HealthState& state, bool readiness);

// The response of /healthz-style endpoints: 200 "ok" when every check passes (the list when
// `verbose`), else 500 with the list and "<endpoint> check failed". `only` selects one check
// (/readyz/<name>); an unknown name yields 404.
struct HealthResponse {
  int status = 200;
  std::string body;
};
HealthResponse renderHealth(const std::string& endpoint, const std::vector<HealthCheckResult>& checks,
                            bool verbose, const std::string& only);

// Routes /healthz, /livez, /readyz (and /<endpoint>/<check>, ?verbose) for both the serving port
// and the plain health port; nullopt for any other path.
std::optional<HealthResponse> serveHealthEndpoint(const HealthState& state, std::string_view path,
                                                  std::string_view query);

}  // namespace aaproxy
