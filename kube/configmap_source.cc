// ConfigMap get + watch + periodic resync; see configmap_source.h.
#include "kube/configmap_source.h"

#include <event2/event.h>
#include <simdjson.h>

#include <cstdio>

#include "absl/strings/str_cat.h"

namespace aaproxy {
namespace {

// Percent-encoding of a field selector value (`=` is the only reserved character we produce).
std::string fieldSelector(const std::string& name) {
  return absl::StrCat("metadata.name%3D", name);
}

}  // namespace

absl::StatusOr<ParsedConfigMap> parseConfigMapJson(std::string_view json) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(json.data(), json.size()).get(root) != simdjson::SUCCESS || !root.is_object()) {
    return absl::InvalidArgumentError("ConfigMap: invalid JSON");
  }
  ParsedConfigMap out;
  std::string_view rv;
  if (root.at_pointer("/metadata/resourceVersion").get(rv) == simdjson::SUCCESS) {
    out.resource_version = std::string(rv);
  }
  simdjson::dom::element data;
  if (root["data"].get(data) != simdjson::SUCCESS || data.is_null()) {
    return out;
  }
  simdjson::dom::object object;
  if (data.get(object) != simdjson::SUCCESS) {
    return absl::InvalidArgumentError("ConfigMap: data is not an object");
  }
  for (auto field : object) {
    std::string_view value;
    if (field.value.get(value) != simdjson::SUCCESS) {
      return absl::InvalidArgumentError(
          absl::StrCat("ConfigMap: data.", std::string(field.key), " is not a string"));
    }
    out.data.emplace(std::string(field.key), std::string(value));
  }
  return out;
}

ConfigMapSource::ConfigMapSource(ApiServerClient& client, ConfigMapSourceOptions options,
                                 UpdateCallback on_update)
    : client_(client), options_(std::move(options)), on_update_(std::move(on_update)) {}

ConfigMapSource::~ConfigMapSource() {
  *alive_ = false;
  if (watch_) {
    client_.cancel(*watch_);
  }
  if (resync_timer_ != nullptr) {
    event_free(resync_timer_);
  }
  if (rewatch_timer_ != nullptr) {
    event_free(rewatch_timer_);
  }
}

void ConfigMapSource::log(std::string_view message) const {
  if (options_.log) {
    options_.log(message);
  } else {
    std::fprintf(stderr, "configmap %s/%s: %.*s\n", options_.namespace_name.c_str(),
                 options_.name.c_str(), static_cast<int>(message.size()), message.data());
  }
}

std::string ConfigMapSource::objectPath() const {
  return absl::StrCat("/api/v1/namespaces/", options_.namespace_name, "/configmaps/",
                      options_.name);
}

std::string ConfigMapSource::watchPath() const {
  std::string path =
      absl::StrCat("/api/v1/namespaces/", options_.namespace_name,
                   "/configmaps?fieldSelector=", fieldSelector(options_.name), "&watch=true");
  if (!resource_version_.empty()) {
    absl::StrAppend(&path, "&resourceVersion=", resource_version_);
  }
  return path;
}

void ConfigMapSource::apply(ParsedConfigMap parsed, std::string_view origin) {
  if (!parsed.resource_version.empty()) {
    resource_version_ = parsed.resource_version;
  }
  if (current_.has_value() && *current_ == parsed.data) {
    return;
  }
  current_ = std::move(parsed.data);
  ++stats_.updates;
  log(absl::StrCat("loaded new data (", std::string(origin), ", resourceVersion ",
                   resource_version_.empty() ? "?" : resource_version_, ")"));
  on_update_(*current_);
}

// Outcome of one GET: OK after applying data or on 404; the error otherwise.
void ConfigMapSource::list(std::function<void(absl::Status)> done) {
  ++stats_.lists;
  std::weak_ptr<bool> alive = alive_;
  client_.request(
      "GET", objectPath(), "", {},
      [this, alive, done = std::move(done)](absl::StatusOr<ApiResponse> r) {
        if (alive.expired() || !*alive.lock()) {
          return;
        }
        if (!r.ok()) {
          done(r.status());
          return;
        }
        if (r->status == 404) {
          done(absl::OkStatus());  // nothing to trust yet, and nothing to take away
          return;
        }
        if (r->status == 403) {
          log(absl::StrCat("forbidden; usually fixed by 'kubectl create rolebinding -n ",
                           options_.namespace_name,
                           " ROLEBINDING_NAME --role=extension-apiserver-authentication-reader "
                           "--serviceaccount=YOUR_NS:YOUR_SA'"));
        }
        if (r->status != 200) {
          done(absl::UnavailableError(absl::StrCat("GET ", objectPath(), ": HTTP ", r->status, ": ",
                                                   r->body.substr(0, 512))));
          return;
        }
        absl::StatusOr<ParsedConfigMap> parsed = parseConfigMapJson(r->body);
        if (!parsed.ok()) {
          done(parsed.status());
          return;
        }
        apply(*std::move(parsed), "get");
        done(absl::OkStatus());
      });
}

void ConfigMapSource::start(std::function<void(absl::Status)> started) {
  list([this, started = std::move(started)](const absl::Status& status) {
    if (!status.ok()) {
      if (!options_.tolerate_lookup_failure) {
        started(absl::Status(status.code(), absl::StrCat("unable to load configmap based "
                                                         "request-header-client-ca-file: ",
                                                         status.message())));
        return;
      }
      log(absl::StrCat(
          "error looking up in-cluster authentication configuration: ", status.message(),
          "; continuing without it (--authentication-tolerate-lookup-failure)"));
    }
    startWatch();
    scheduleResync();
    started(absl::OkStatus());
  });
}

void ConfigMapSource::startWatch() {
  ++stats_.watches;
  watch_lines_ = LineBuffer();
  auto status_code = std::make_shared<int>(0);
  watch_ = client_.stream(
      "GET", watchPath(), {},
      {.on_headers = [status_code](int status, const HeaderMap&) { *status_code = status; },
       .on_data =
           [this, status_code](std::string_view data) {
             if (*status_code != 200) {
               return;
             }
             watch_lines_.append(data, [this](std::string_view line) { onWatchLine(line); });
           },
       .on_end =
           [this, status_code](absl::Status status) {
             if (status.ok() && *status_code != 200) {
               status = absl::UnavailableError(absl::StrCat("watch: HTTP ", *status_code));
             }
             onWatchEnd(status);
           }});
}

void ConfigMapSource::onWatchLine(std::string_view line) {
  if (!watch_) {
    return;  // cancelled by an earlier line of the same chunk
  }
  simdjson::dom::parser parser;
  simdjson::dom::element event;
  std::string_view type;
  simdjson::dom::element object;
  if (parser.parse(line.data(), line.size()).get(event) != simdjson::SUCCESS ||
      event["type"].get(type) != simdjson::SUCCESS ||
      event["object"].get(object) != simdjson::SUCCESS) {
    log("watch: undecodable event ignored");
    return;
  }
  if (type == "ERROR") {
    // Typically 410 Gone (resourceVersion too old): list again and watch from there.
    log(absl::StrCat("watch: error event: ", simdjson::to_string(object)));
    resource_version_.clear();
    if (watch_) {
      client_.cancel(*watch_);
      watch_.reset();
    }
    scheduleRewatch();
    return;
  }
  if (type == "BOOKMARK") {
    return;
  }
  absl::StatusOr<ParsedConfigMap> parsed = parseConfigMapJson(simdjson::to_string(object));
  if (!parsed.ok()) {
    log(absl::StrCat("watch: ", parsed.status().message(), "; keeping the last good data"));
    return;
  }
  if (type == "DELETED") {
    // As upstream's controllers: a missing ConfigMap is an error; the last values stay in force.
    resource_version_ = parsed->resource_version;
    log("deleted; keeping the last good data");
    return;
  }
  apply(*std::move(parsed), "watch");
}

void ConfigMapSource::onWatchEnd(const absl::Status& status) {
  watch_.reset();
  if (!status.ok()) {
    log(absl::StrCat("watch ended: ", status.message()));
  }
  scheduleRewatch();
}

void ConfigMapSource::scheduleRewatch() {
  if (rewatch_timer_ == nullptr) {
    rewatch_timer_ = evtimer_new(
        client_.base(),
        [](evutil_socket_t, short, void* arg) {
          auto* self = static_cast<ConfigMapSource*>(arg);
          // Re-list first so that nothing missed while not watching is lost.
          self->list([self](const absl::Status& status) {
            if (!status.ok()) self->log(absl::StrCat("re-list failed: ", status.message()));
            if (!self->watch_) self->startWatch();
          });
        },
        this);
  }
  if (evtimer_pending(rewatch_timer_, nullptr)) {
    return;
  }
  timeval tv = absl::ToTimeval(options_.rewatch_delay);
  evtimer_add(rewatch_timer_, &tv);
}

void ConfigMapSource::scheduleResync() {
  if (resync_timer_ == nullptr) {
    resync_timer_ = event_new(
        client_.base(), -1, EV_PERSIST,
        [](evutil_socket_t, short, void* arg) {
          auto* self = static_cast<ConfigMapSource*>(arg);
          self->list([self](const absl::Status& status) {
            if (!status.ok()) {
              self->log(absl::StrCat("resync failed: ", status.message(),
                                     "; keeping the last good data"));
            }
          });
        },
        this);
  }
  timeval tv = absl::ToTimeval(options_.resync_period);
  evtimer_add(resync_timer_, &tv);
}

}  // namespace aaproxy
