// An optional plain-HTTP listener for kubelet probes (/healthz, /livez, /readyz), served on the
// control loop without authentication, so probes work whatever the authentication setup.
#pragma once

#include <event2/http.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "proxy/health.h"

namespace aaproxy {

class HealthServer {
 public:
  HealthServer(event_base* base, const HealthState& health);
  ~HealthServer();

  absl::Status listen(const std::string& address, int port);

 private:
  static void onRequest(evhttp_request* request, void* self);

  const HealthState& health_;
  evhttp* http_ = nullptr;
};

}  // namespace aaproxy
