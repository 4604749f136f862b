// Keeps the data of one ConfigMap (by default kube-system/extension-apiserver-authentication)
// current, as k8s.io/apiserver's informer-based controllers do: a GET at start, then a watch,
// plus a re-read every resync period. Runs on the loop of the ApiServerClient it is given (a
// dedicated control loop); consumers publish what onUpdate delivers to other loops themselves.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "kube/apiserver_client.h"

namespace aaproxy {

using ConfigMapData = std::map<std::string, std::string>;

struct ConfigMapSourceOptions {
  std::string namespace_name = "kube-system";
  std::string name = "extension-apiserver-authentication";
  // Upstream re-reads the CA keys every minute besides watching.
  absl::Duration resync_period = absl::Minutes(1);
  // Pause before re-listing and re-watching after a watch ends or fails.
  absl::Duration rewatch_delay = absl::Seconds(1);
  // --authentication-tolerate-lookup-failure: a failed first lookup is logged, not fatal.
  bool tolerate_lookup_failure = false;
  std::function<void(std::string_view message)> log;  // default: stderr
};

// Parses a ConfigMap object's JSON: its `data` (absent or null: empty) and resourceVersion.
struct ParsedConfigMap {
  ConfigMapData data;
  std::string resource_version;
};
absl::StatusOr<ParsedConfigMap> parseConfigMapJson(std::string_view json);

class ConfigMapSource {
 public:
  // Called on the client's loop with the new data, only when it differs from the last delivered.
  using UpdateCallback = std::function<void(const ConfigMapData& data)>;

  ConfigMapSource(ApiServerClient& client, ConfigMapSourceOptions options,
                  UpdateCallback on_update);
  ~ConfigMapSource();  // stops the watch and the timers; no callback runs afterwards
  ConfigMapSource(const ConfigMapSource&) = delete;
  ConfigMapSource& operator=(const ConfigMapSource&) = delete;

  // The first lookup; `started` gets OK when the ConfigMap was read (onUpdate has run), when it
  // does not exist (nothing is trusted yet), or when the lookup failed and failures are
  // tolerated; otherwise the fatal error. Watching and resyncing continue in every OK case.
  void start(std::function<void(absl::Status)> started);

  // The last delivered data; nullopt until one was.
  const std::optional<ConfigMapData>& current() const { return current_; }

  struct Stats {
    uint64_t lists = 0;    // GETs, the first one included
    uint64_t watches = 0;  // watch requests started
    uint64_t updates = 0;  // onUpdate calls
  };
  const Stats& stats() const { return stats_; }

 private:
  void list(std::function<void(absl::Status)> done);
  void startWatch();
  void onWatchLine(std::string_view line);
  void onWatchEnd(const absl::Status& status);
  void scheduleRewatch();
  void scheduleResync();
  void apply(ParsedConfigMap parsed, std::string_view origin);
  void log(std::string_view message) const;
  std::string objectPath() const;
  std::string watchPath() const;

  ApiServerClient& client_;
  const ConfigMapSourceOptions options_;
  const UpdateCallback on_update_;
  std::optional<ConfigMapData> current_;
  std::string resource_version_;
  std::optional<ApiServerClient::StreamId> watch_;
  LineBuffer watch_lines_;
  event* resync_timer_ = nullptr;
  event* rewatch_timer_ = nullptr;
  // Callbacks of requests in flight check this token, so none runs after destruction.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  Stats stats_;
};

}  // namespace aaproxy
