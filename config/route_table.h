// The route table of the --config file: which backend serves a path, and how its requests are
// authorized. Parsed and validated once at start; the data path only calls match().
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "config/proxy_options.h"

namespace YAML {
class Node;
}

namespace aaproxy {

enum class RouteAuthorization {
  kKubernetes,          // RequestInfo of the request, as k8s.io/apiserver (the default)
  kResourceAttributes,  // fixed (or rewritten) resource attributes, verb from the method
  kNonResource,         // the request's path and lowercased method, as a non-resource request
  kPublic,              // no authentication or authorization (kube-rbac-proxy's --ignore-paths)
  kDeny,                // authenticated, then always forbidden
};

std::string_view routeAuthorizationName(RouteAuthorization mode);

// One attribute of `resourceAttributes`: text with "{{ .Value }}" placeholders, kept split at
// them so that filling one in is appends only.
class AttributeTemplate {
 public:
  AttributeTemplate() = default;
  // Fails on "{{" that is not the one supported action, "{{ .Value }}" (spaces optional).
  static absl::StatusOr<AttributeTemplate> parse(std::string_view text);

  std::string fill(std::string_view value) const;
  bool templated() const { return pieces_.size() > 1; }
  const std::string& text() const { return text_; }

 private:
  std::string text_;
  std::vector<std::string> pieces_;  // literal text between placeholders; size = placeholders + 1
};

struct ResourceAttributesTemplate {
  AttributeTemplate namespace_name;
  AttributeTemplate api_group;
  AttributeTemplate api_version;
  AttributeTemplate resource;
  AttributeTemplate subresource;
  AttributeTemplate name;

  bool templated() const;
};

// Where the value of "{{ .Value }}" comes from (kube-rbac-proxy's `rewrites`, plus a path
// segment). Each value found gives its own set of attributes; all of them must be allowed.
struct AttributeRewrites {
  std::string query_parameter;  // every value of this query parameter, decoded
  std::string http_header;      // every value of this header (case-insensitive name)
  int path_segment = -1;        // this 0-based segment of the decoded path ("/a/b": 0 = "a")

  bool any() const { return !query_parameter.empty() || !http_header.empty() || path_segment >= 0; }
};

struct RouteConfig {
  // A path prefix on segment boundaries: "/metrics" serves "/metrics" and "/metrics/..." but not
  // "/metricsx"; "/" serves everything. The longest matching prefix wins.
  std::string path;
  // Unset: the --upstream flag's backend.
  std::optional<UpstreamAddress> upstream;
  RouteAuthorization authorization = RouteAuthorization::kKubernetes;
  ResourceAttributesTemplate resource_attributes;  // kResourceAttributes
  AttributeRewrites rewrites;                      // kResourceAttributes
  // Filled by resolveRoutes(): index into ProxyOptions::upstreams.
  size_t upstream_index = 0;
};

// Parses the `routes:` list of the --config file. Errors name the field: `routes[1].path: ...`.
absl::StatusOr<std::vector<RouteConfig>> parseRoutes(const YAML::Node& node);

// Gives each route its backend (the route's own, else `default_upstream`) as an index into
// `upstreams`, which receives every distinct backend once. With no routes, one route "/" to
// `default_upstream` with kubernetes authorization. Fails, naming the route, when a route has
// no backend and there is no default.
absl::Status resolveRoutes(std::vector<RouteConfig>& routes,
                           const std::optional<UpstreamAddress>& default_upstream,
                           std::vector<UpstreamAddress>& upstreams);

// The routes sorted for matching: longest prefix first.
class RouteTable {
 public:
  explicit RouteTable(std::vector<RouteConfig> routes);

  // The route serving `decoded_path` (Go's URL.Path), or null when none does.
  const RouteConfig* match(std::string_view decoded_path) const;
  // True for the table of a command line without routes (one "/" route, kubernetes).
  bool isDefault() const { return default_; }
  const std::vector<RouteConfig>& routes() const { return routes_; }

 private:
  std::vector<RouteConfig> routes_;
  bool default_ = false;
};

// Whether `path` is a prefix of `decoded_path` on a segment boundary.
bool routePathMatches(std::string_view prefix, std::string_view decoded_path);

// Go's path.Match: `*` any run of non-'/' bytes, `?` one non-'/' byte, `[...]` classes with
// ranges and `^` negation, `\` escapes. InvalidArgument for a malformed pattern (ErrBadPattern).
absl::StatusOr<bool> goPathMatch(std::string_view pattern, std::string_view name);

// A path that a backend may normalize to another route's path: a "." or ".." segment, or an
// empty segment before the last ("//"). Rejected with 400 when a route table is configured.
bool hasAmbiguousSegments(std::string_view decoded_path);

}  // namespace aaproxy
