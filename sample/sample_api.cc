// Routes and exact bodies of the sample backend. Field order follows what the reference
// sample server emits (§6); the other bodies follow the Go structs' field order.
#include "sample/sample_api.h"

#include <charconv>

#include "k8s/status.h"

namespace aaproxy::sample {
namespace {

constexpr std::string_view kGroupVersionPrefix = "/apis/sample-api-server/v1alpha1";

std::string quoted(std::string_view s) {
  std::string out;
  appendGoJsonString(out, s);
  return out;
}

std::vector<std::string_view> splitPath(std::string_view path) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) {
      slash = path.size();
    }
    parts.push_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  return parts;
}

std::optional<int64_t> parseNonNegative(std::optional<std::string_view> s) {
  if (!s.has_value() || s->empty()) {
    return std::nullopt;
  }
  int64_t value = 0;
  auto [end, ec] = std::from_chars(s->data(), s->data() + s->size(), value);
  if (ec != std::errc() || end != s->data() + s->size() || value < 0) {
    return std::nullopt;
  }
  return value;
}

// Kubernetes' rule for the `watch` query parameter: present and neither "0" nor "false".
bool isWatch(const RequestTarget& target) {
  auto watch = target.queryValue("watch");
  return watch.has_value() && *watch != "0" && *watch != "false";
}

Route fixed(int status, std::string body, std::string contentType = "application/json") {
  Route route;
  route.status = status;
  route.body = std::move(body);
  route.contentType = std::move(contentType);
  return route;
}

Route badRequest(std::string_view message) {
  return fixed(400, failureStatusJson(400, "BadRequest", message, StatusDetails{}));
}

Route watchRoute(std::string_view ns, const RequestTarget& target) {
  Route route;
  route.kind = RouteKind::kWatch;
  route.ns = std::string(ns);
  if (auto timeout = target.queryValue("timeoutSeconds"); timeout.has_value()) {
    auto seconds = parseNonNegative(timeout);
    if (!seconds.has_value()) {
      return badRequest("invalid timeoutSeconds");
    }
    route.timeoutSeconds = *seconds;
  }
  return route;
}

Route routeSampleApi(std::string_view method, const RequestTarget& target,
                     const std::vector<std::string_view>& rest) {
  if (method != "GET" && method != "HEAD") {
    return fixed(
        405, failureStatusJson(405, "MethodNotAllowed",
                               "the server does not allow this method on the requested resource",
                               StatusDetails{}));
  }
  if (rest.empty()) {
    return fixed(200, apiResourceListJson());
  }
  bool watchVerb = rest[0] == "watch";
  size_t i = watchVerb ? 1 : 0;
  if (rest.size() - i < 3 || rest[i] != "namespaces" || rest[i + 1].empty() ||
      rest[i + 2] != "samples") {
    return fixed(404, notFoundStatusJson());
  }
  std::string_view ns = rest[i + 1];
  size_t remaining = rest.size() - i - 3;
  if (remaining == 0) {
    if (watchVerb || isWatch(target)) {
      return watchRoute(ns, target);
    }
    return fixed(200, sampleListJson(ns));
  }
  if (remaining == 1 && !watchVerb && !rest[i + 3].empty()) {
    return fixed(200, sampleJson(ns, rest[i + 3]));
  }
  return fixed(404, notFoundStatusJson());
}

bool isTokenName(std::string_view name) {
  if (name.empty()) {
    return false;
  }
  for (char c : name) {
    bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (!alnum && std::string_view("!#$%&'*+-.^_`|~").find(c) == std::string_view::npos) {
      return false;
    }
  }
  return true;
}

Route routeDebug(std::string_view endpoint, const RequestTarget& target) {
  Route route;
  if (endpoint == "headers") {
    route.kind = RouteKind::kDebugHeaders;
  } else if (endpoint == "body") {
    route.kind = RouteKind::kDebugBody;
  } else if (endpoint == "bytes") {
    auto n = parseNonNegative(target.queryValue("n"));
    if (!n.has_value()) {
      return badRequest("n must be a non-negative integer");
    }
    route.kind = RouteKind::kDebugBytes;
    route.bytes = static_cast<uint64_t>(*n);
    route.contentType = "application/octet-stream";
  } else if (endpoint == "echo") {
    route.kind = RouteKind::kDebugEcho;
  } else if (endpoint == "slow") {
    auto ms = parseNonNegative(target.queryValue("ms"));
    if (!ms.has_value()) {
      return badRequest("ms must be a non-negative integer");
    }
    route.kind = RouteKind::kDebugSlow;
    route.delayMs = *ms;
    route.contentType = "text/plain";
    route.body = "slow\n";
  } else if (endpoint == "trailers") {
    // /debug/trailers?Name=value&...: each query pair (raw, as written) becomes a trailer line.
    for (const auto& [name, value] : target.query) {
      if (!isTokenName(name)) {
        return badRequest("trailer names must be HTTP tokens");
      }
      route.trailers.emplace_back(name, value);
    }
    route.kind = RouteKind::kDebugTrailers;
    route.contentType = "text/plain";
    route.body = std::string(kTrailersBody);
  } else {
    return fixed(404, notFoundStatusJson());
  }
  return route;
}

}  // namespace

std::optional<std::string_view> RequestTarget::queryValue(std::string_view key) const {
  for (const auto& [k, v] : query) {
    if (k == key) {
      return std::string_view(v);
    }
  }
  return std::nullopt;
}

RequestTarget parseRequestTarget(std::string_view target) {
  RequestTarget parsed;
  size_t question = target.find('?');
  parsed.path = std::string(target.substr(0, question));
  if (question == std::string_view::npos) {
    return parsed;
  }
  std::string_view query = target.substr(question + 1);
  if (size_t hash = query.find('#'); hash != std::string_view::npos) {
    query = query.substr(0, hash);
  }
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) {
      continue;
    }
    size_t eq = pair.find('=');
    if (eq == std::string_view::npos) {
      parsed.query.emplace_back(std::string(pair), "");
    } else {
      parsed.query.emplace_back(std::string(pair.substr(0, eq)), std::string(pair.substr(eq + 1)));
    }
  }
  return parsed;
}

Route routeRequest(std::string_view method, std::string_view rawTarget) {
  RequestTarget target = parseRequestTarget(rawTarget);
  std::string_view path = target.path;
  if (path == "/healthz") {
    return fixed(200, "ok", "text/plain; charset=utf-8");
  }
  if (path.substr(0, 7) == "/debug/") {
    return routeDebug(path.substr(7), target);
  }
  if (path == "/apis" || path == "/apis/") {
    return fixed(200, apiGroupListJson());
  }
  if (path == "/apis/sample-api-server" || path == "/apis/sample-api-server/") {
    return fixed(200, apiGroupJson());
  }
  if (path.substr(0, kGroupVersionPrefix.size()) == kGroupVersionPrefix) {
    std::string_view rest = path.substr(kGroupVersionPrefix.size());
    if (rest.empty() || rest == "/") {
      return routeSampleApi(method, target, {});
    }
    if (rest[0] == '/') {
      rest.remove_prefix(1);
      if (!rest.empty() && rest.back() == '/') {
        rest.remove_suffix(1);
      }
      return routeSampleApi(method, target, splitPath(rest));
    }
  }
  return fixed(404, notFoundStatusJson());
}

namespace {

// The one group and version, as an APIGroup's fields after its TypeMeta.
constexpr std::string_view kGroupFields =
    "\"name\":\"sample-api-server\",\"versions\":[{\"groupVersion\":\"sample-api-server/v1alpha1\","
    "\"version\":\"v1alpha1\"}],\"preferredVersion\":{\"groupVersion\":"
    "\"sample-api-server/v1alpha1\",\"version\":\"v1alpha1\"}";

}  // namespace

std::string apiGroupListJson() {
  // Inside an APIGroupList the groups carry no TypeMeta (omitempty), as upstream serves it.
  return std::string("{\"kind\":\"APIGroupList\",\"apiVersion\":\"v1\",\"groups\":[{") +
         std::string(kGroupFields) + "}]}\n";
}

std::string apiGroupJson() {
  return std::string("{\"kind\":\"APIGroup\",\"apiVersion\":\"v1\",") + std::string(kGroupFields) +
         "}\n";
}

std::string apiResourceListJson() {
  return "{\"apiVersion\":\"v1\",\"kind\":\"APIResourceList\",\"groupVersion\":"
         "\"sample-api-server/v1alpha1\",\"resources\":[{\"group\":\"sample-api-server\","
         "\"kind\":\"Sample\",\"name\":\"samples\",\"namespaced\":true,\"singularName\":\"sample\","
         "\"verbs\":[\"get\",\"list\"]}]}\n";
}

std::string sampleListJson(std::string_view ns) {
  return "{\"apiVersion\":\"sample-api-server/v1alpha1\",\"kind\":\"SampleList\",\"metadata\":{"
         "\"resourceVersion\":\"1\"},\"items\":[{\"apiVersion\":\"sample-api-server/v1alpha1\","
         "\"kind\":\"Sample\",\"metadata\":{\"name\":\"sample1\"},\"spec\":{\"name\":" +
         quoted(ns) + "}}]}\n";
}

std::string sampleJson(std::string_view ns, std::string_view name) {
  std::string specName = std::string(ns) + "." + std::string(name);
  return "{\"apiVersion\":\"sample-api-server/v1alpha1\",\"kind\":\"Sample\",\"metadata\":{"
         "\"name\":" +
         quoted(name) + "},\"spec\":{\"name\":" + quoted(specName) + "}}\n";
}

std::string notFoundStatusJson() {
  return failureStatusJson(404, "NotFound", "the server could not find the requested resource",
                           StatusDetails{});
}

std::string watchEventJson(std::string_view type, std::string_view ns, uint64_t resourceVersion) {
  return "{\"type\":" + quoted(type) +
         ",\"object\":{\"apiVersion\":\"sample-api-server/v1alpha1\",\"kind\":\"Sample\","
         "\"metadata\":{\"name\":\"sample1\",\"resourceVersion\":\"" +
         std::to_string(resourceVersion) + "\"},\"spec\":{\"name\":" + quoted(ns) + "}}}\n";
}

}  // namespace aaproxy::sample
