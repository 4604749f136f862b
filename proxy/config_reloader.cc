#include "proxy/config_reloader.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "authz/static_policy.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "config/flags.h"
#include "config/route_table.h"

namespace aaproxy {
namespace {

struct ReloadMetrics {
  Counter& policy_ok;
  Counter& policy_failed;
  Counter& routes_ok;
  Counter& routes_failed;

  static ReloadMetrics& get() {
    static ReloadMetrics* m = [] {
      MetricsRegistry& r = MetricsRegistry::global();
      const char* help = "Reloads of the static policy and of the --config route table by result.";
      return new ReloadMetrics{
          r.counter("aaproxy_config_reloads_total", help, "file=\"policy\",result=\"success\""),
          r.counter("aaproxy_config_reloads_total", help, "file=\"policy\",result=\"failure\""),
          r.counter("aaproxy_config_reloads_total", help, "file=\"routes\",result=\"success\""),
          r.counter("aaproxy_config_reloads_total", help, "file=\"routes\",result=\"failure\""),
      };
    }();
    return *m;
  }
};

std::string readAll(const std::string& path, bool& ok) {
  std::ifstream in(path, std::ios::binary);
  ok = static_cast<bool>(in);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

}  // namespace

ConfigReloader::ConfigReloader(const ProxyOptions& options, DelegatedAdmission& admission,
                               HealthState& health)
    : options_(options), admission_(admission), health_(health) {
  bool static_mode = !options.authorization_policy_file.empty();
  if (static_mode) {
    policy_.path = options.authorization_policy_file;
    bool ok = false;
    policy_.content = readAll(policy_.path, ok);
  }
  if (!options.config_file.empty()) {
    config_.path = options.config_file;
    bool ok = false;
    config_.content = readAll(config_.path, ok);
  }
  ReloadMetrics::get();  // the series exist from the start
}

bool ConfigReloader::changed(WatchedFile& file, bool force) {
  if (file.path.empty()) {
    return false;
  }
  bool ok = false;
  std::string content = readAll(file.path, ok);
  if (!ok) {
    // A file being replaced (or removed): keep the current configuration, try next time.
    if (force) {
      file.error = absl::StrCat("\"", file.path, "\": cannot be read");
    }
    return false;
  }
  if (!force && content == file.content) {
    return false;
  }
  file.content = std::move(content);
  return true;
}

void ConfigReloader::check(bool force) {
  ReloadMetrics& metrics = ReloadMetrics::get();
  if (changed(policy_, force)) {
    absl::StatusOr<StaticPolicy> policy = StaticPolicy::parse(policy_.content);
    absl::Status applied =
        policy.ok() ? admission_.updatePolicy(std::make_shared<const StaticPolicy>(*std::move(policy)))
                    : policy.status();
    if (applied.ok()) {
      metrics.policy_ok.inc();
      policy_.error.clear();
      AA_LOG(I) << "reloaded --authorization-policy-file \"" << policy_.path << "\"";
    } else {
      metrics.policy_failed.inc();
      policy_.error =
          absl::StrCat("--authorization-policy-file: \"", policy_.path, "\": ", applied.message());
      AA_LOG(E) << "keeping the previous policy: " << policy_.error;
    }
  }
  if (changed(config_, force)) {
    absl::StatusOr<std::shared_ptr<const RouteTable>> routes = reloadRouteTable(options_);
    absl::Status applied =
        routes.ok() ? admission_.updateRoutes(*std::move(routes)) : routes.status();
    if (applied.ok()) {
      metrics.routes_ok.inc();
      config_.error.clear();
      AA_LOG(I) << "reloaded the routes of --config \"" << config_.path << "\"";
    } else {
      metrics.routes_failed.inc();
      config_.error = std::string(applied.message());
      AA_LOG(E) << "keeping the previous routes: " << config_.error;
    }
  }
  reportErrors();
}

void ConfigReloader::reportErrors() {
  std::string error = policy_.error;
  if (!config_.error.empty()) {
    absl::StrAppend(&error, error.empty() ? "" : "; ", config_.error);
  }
  health_.setConfigFileError(std::move(error));
}

}  // namespace aaproxy
