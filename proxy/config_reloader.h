// Live reload of the static policy file and the route table of --config: checked on SIGHUP and
// every --tls-reload-interval; a file that no longer loads is logged with its field, counted,
// reported on /readyz/config-files, and the last good configuration keeps serving.
#pragma once

#include <string>

#include "config/proxy_options.h"
#include "proxy/delegated_admission.h"
#include "proxy/health.h"

namespace aaproxy {

class ConfigReloader {
 public:
  // `options` are those the proxy started with (their policy and routes are loaded already).
  ConfigReloader(const ProxyOptions& options, DelegatedAdmission& admission, HealthState& health);

  // Reloads what changed on disk since the last check (`force`: everything, as for SIGHUP).
  void check(bool force);

 private:
  struct WatchedFile {
    std::string path;  // "" = not configured
    std::string content;  // as last read (applied or rejected)
    std::string error;    // why `content` was rejected
  };
  // Re-reads `file`; true when it should be applied (changed, or `force`).
  static bool changed(WatchedFile& file, bool force);
  void reportErrors();

  const ProxyOptions& options_;
  DelegatedAdmission& admission_;
  HealthState& health_;
  WatchedFile policy_;
  WatchedFile config_;
};

}  // namespace aaproxy
