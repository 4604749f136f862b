#include "config/route_table.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"

namespace aaproxy {
namespace {

absl::Status fieldError(absl::string_view field, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", message));
}

// A mapping's keys must be among `known`; the first unknown one is named.
absl::Status checkKeys(const YAML::Node& node, absl::string_view field,
                       const std::vector<absl::string_view>& known) {
  for (const auto& entry : node) {
    if (!entry.first.IsScalar()) {
      return fieldError(field, "keys must be plain strings");
    }
    const std::string& key = entry.first.Scalar();
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      return fieldError(field, absl::StrCat("unknown field \"", key, "\" (known: ",
                                            absl::StrJoin(known, ", "), ")"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> scalar(const YAML::Node& node, absl::string_view field) {
  if (!node.IsScalar()) {
    return fieldError(field, "must be a plain value");
  }
  return node.Scalar();
}

absl::StatusOr<AttributeRewrites> parseRewrites(const YAML::Node& node, absl::string_view field) {
  if (!node.IsMap()) {
    return fieldError(field, "must be a mapping (byQueryParameter, byHttpHeader, byPathSegment)");
  }
  if (absl::Status s = checkKeys(node, field, {"byQueryParameter", "byHttpHeader", "byPathSegment"});
      !s.ok()) {
    return s;
  }
  AttributeRewrites rewrites;
  auto named = [&](const char* key, std::string& out) -> absl::Status {
    const YAML::Node source = node[key];
    if (!source) {
      return absl::OkStatus();
    }
    std::string where = absl::StrCat(field, ".", key);
    if (!source.IsMap()) {
      return fieldError(where, "must be a mapping with a name");
    }
    if (absl::Status s = checkKeys(source, where, {"name"}); !s.ok()) {
      return s;
    }
    if (!source["name"]) {
      return fieldError(absl::StrCat(where, ".name"), "required");
    }
    absl::StatusOr<std::string> name = scalar(source["name"], absl::StrCat(where, ".name"));
    if (!name.ok()) {
      return name.status();
    }
    if (name->empty()) {
      return fieldError(absl::StrCat(where, ".name"), "must not be empty");
    }
    out = *std::move(name);
    return absl::OkStatus();
  };
  if (absl::Status s = named("byQueryParameter", rewrites.query_parameter); !s.ok()) {
    return s;
  }
  if (absl::Status s = named("byHttpHeader", rewrites.http_header); !s.ok()) {
    return s;
  }
  if (const YAML::Node segment = node["byPathSegment"]) {
    std::string where = absl::StrCat(field, ".byPathSegment");
    if (!segment.IsMap()) {
      return fieldError(where, "must be a mapping with an index");
    }
    if (absl::Status s = checkKeys(segment, where, {"index"}); !s.ok()) {
      return s;
    }
    if (!segment["index"]) {
      return fieldError(absl::StrCat(where, ".index"), "required");
    }
    absl::StatusOr<std::string> index = scalar(segment["index"], absl::StrCat(where, ".index"));
    if (!index.ok()) {
      return index.status();
    }
    int value = -1;
    if (!absl::SimpleAtoi(*index, &value) || value < 0 || value > 1000) {
      return fieldError(absl::StrCat(where, ".index"),
                        absl::StrCat("\"", *index, "\" is not a segment index (0, 1, ...)"));
    }
    rewrites.path_segment = value;
  }
  if (!rewrites.any()) {
    return fieldError(field, "needs byQueryParameter, byHttpHeader or byPathSegment");
  }
  return rewrites;
}

absl::StatusOr<ResourceAttributesTemplate> parseResourceAttributes(const YAML::Node& node,
                                                                   absl::string_view field) {
  if (!node.IsMap()) {
    return fieldError(field, "must be a mapping");
  }
  if (absl::Status s = checkKeys(
          node, field,
          {"namespace", "apiGroup", "apiVersion", "resource", "subresource", "name"});
      !s.ok()) {
    return s;
  }
  ResourceAttributesTemplate out;
  struct Slot {
    const char* key;
    AttributeTemplate* value;
  };
  for (const Slot& slot : {Slot{"namespace", &out.namespace_name}, Slot{"apiGroup", &out.api_group},
                           Slot{"apiVersion", &out.api_version}, Slot{"resource", &out.resource},
                           Slot{"subresource", &out.subresource}, Slot{"name", &out.name}}) {
    const YAML::Node value = node[slot.key];
    if (!value) {
      continue;
    }
    std::string where = absl::StrCat(field, ".", slot.key);
    absl::StatusOr<std::string> text = scalar(value, where);
    if (!text.ok()) {
      return text.status();
    }
    absl::StatusOr<AttributeTemplate> parsed = AttributeTemplate::parse(*text);
    if (!parsed.ok()) {
      return fieldError(where, parsed.status().message());
    }
    *slot.value = *std::move(parsed);
  }
  if (out.resource.text().empty()) {
    return fieldError(absl::StrCat(field, ".resource"), "required");
  }
  return out;
}

absl::StatusOr<RouteConfig> parseRoute(const YAML::Node& node, absl::string_view field) {
  if (!node.IsMap()) {
    return fieldError(field, "must be a mapping (path, upstream, authorization, ...)");
  }
  if (absl::Status s = checkKeys(
          node, field,
          {"path", "upstream", "upstreamTLS", "authorization", "resourceAttributes", "rewrites"});
      !s.ok()) {
    return s;
  }
  RouteConfig route;
  std::string path_field = absl::StrCat(field, ".path");
  if (!node["path"]) {
    return fieldError(path_field, "required");
  }
  absl::StatusOr<std::string> path = scalar(node["path"], path_field);
  if (!path.ok()) {
    return path.status();
  }
  if (path->empty() || path->front() != '/') {
    return fieldError(path_field, absl::StrCat("\"", *path, "\" must start with /"));
  }
  if (hasAmbiguousSegments(*path) || path->find_first_of("?#*") != std::string::npos) {
    return fieldError(path_field,
                      absl::StrCat("\"", *path,
                                   "\" must be a plain path prefix (no ., .. or empty segments, "
                                   "no ?, # or *)"));
  }
  route.path = *std::move(path);
  if (route.path.size() > 1 && route.path.back() == '/') {
    route.path.pop_back();  // "/metrics/" and "/metrics" serve the same paths
  }
  if (const YAML::Node upstream = node["upstream"]) {
    std::string where = absl::StrCat(field, ".upstream");
    absl::StatusOr<std::string> text = scalar(upstream, where);
    if (!text.ok()) {
      return text.status();
    }
    absl::StatusOr<UpstreamAddress> address = parseUpstreamAddress(*text);
    if (!address.ok()) {
      return fieldError(where, address.status().message());
    }
    route.upstream = *std::move(address);
  }
  if (const YAML::Node tls = node["upstreamTLS"]) {
    std::string where = absl::StrCat(field, ".upstreamTLS");
    if (!route.upstream.has_value() || route.upstream->kind != UpstreamAddress::Kind::kHttps) {
      return fieldError(where, "needs an https:// upstream on the route");
    }
    if (!tls.IsMap()) {
      return fieldError(where, "must be a mapping (caFile, clientCertFile, clientKeyFile, serverName)");
    }
    if (absl::Status s =
            checkKeys(tls, where, {"caFile", "clientCertFile", "clientKeyFile", "serverName"});
        !s.ok()) {
      return s;
    }
    UpstreamTlsOptions& options = route.upstream->tls;
    struct Slot {
      const char* key;
      std::string* value;
    };
    for (const Slot& slot : {Slot{"caFile", &options.ca_file},
                             Slot{"clientCertFile", &options.client_cert_file},
                             Slot{"clientKeyFile", &options.client_key_file},
                             Slot{"serverName", &options.server_name}}) {
      if (const YAML::Node value = tls[slot.key]) {
        absl::StatusOr<std::string> text = scalar(value, absl::StrCat(where, ".", slot.key));
        if (!text.ok()) {
          return text.status();
        }
        *slot.value = *std::move(text);
      }
    }
    if (options.client_cert_file.empty() != options.client_key_file.empty()) {
      return fieldError(where, "clientCertFile and clientKeyFile go together");
    }
  }
  std::string mode_field = absl::StrCat(field, ".authorization");
  if (const YAML::Node mode = node["authorization"]) {
    absl::StatusOr<std::string> text = scalar(mode, mode_field);
    if (!text.ok()) {
      return text.status();
    }
    if (*text == "kubernetes") {
      route.authorization = RouteAuthorization::kKubernetes;
    } else if (*text == "resourceAttributes") {
      route.authorization = RouteAuthorization::kResourceAttributes;
    } else if (*text == "nonResource") {
      route.authorization = RouteAuthorization::kNonResource;
    } else if (*text == "public") {
      route.authorization = RouteAuthorization::kPublic;
    } else if (*text == "deny") {
      route.authorization = RouteAuthorization::kDeny;
    } else {
      return fieldError(mode_field,
                        absl::StrCat("\"", *text,
                                     "\" is not one of kubernetes, resourceAttributes, "
                                     "nonResource, public, deny"));
    }
  } else if (node["resourceAttributes"]) {
    route.authorization = RouteAuthorization::kResourceAttributes;
  }
  const YAML::Node attributes = node["resourceAttributes"];
  const YAML::Node rewrites = node["rewrites"];
  if (route.authorization != RouteAuthorization::kResourceAttributes) {
    if (attributes || rewrites) {
      return fieldError(absl::StrCat(field, attributes ? ".resourceAttributes" : ".rewrites"),
                        absl::StrCat("only for authorization resourceAttributes, not ",
                                     std::string(routeAuthorizationName(route.authorization))));
    }
    return route;
  }
  if (!attributes) {
    return fieldError(absl::StrCat(field, ".resourceAttributes"),
                      "required for authorization resourceAttributes");
  }
  absl::StatusOr<ResourceAttributesTemplate> parsed =
      parseResourceAttributes(attributes, absl::StrCat(field, ".resourceAttributes"));
  if (!parsed.ok()) {
    return parsed.status();
  }
  route.resource_attributes = *std::move(parsed);
  if (rewrites) {
    absl::StatusOr<AttributeRewrites> r = parseRewrites(rewrites, absl::StrCat(field, ".rewrites"));
    if (!r.ok()) {
      return r.status();
    }
    route.rewrites = *std::move(r);
  }
  if (route.resource_attributes.templated() && !route.rewrites.any()) {
    return fieldError(absl::StrCat(field, ".rewrites"),
                      "required: resourceAttributes use {{ .Value }}");
  }
  if (!route.resource_attributes.templated() && route.rewrites.any()) {
    return fieldError(absl::StrCat(field, ".rewrites"),
                      "no resourceAttributes field uses {{ .Value }}");
  }
  return route;
}

}  // namespace

std::string_view routeAuthorizationName(RouteAuthorization mode) {
  switch (mode) {
    case RouteAuthorization::kKubernetes:
      return "kubernetes";
    case RouteAuthorization::kResourceAttributes:
      return "resourceAttributes";
    case RouteAuthorization::kNonResource:
      return "nonResource";
    case RouteAuthorization::kPublic:
      return "public";
    case RouteAuthorization::kDeny:
      return "deny";
  }
  return "";
}

absl::StatusOr<AttributeTemplate> AttributeTemplate::parse(std::string_view text_view) {
  absl::string_view text(text_view.data(), text_view.size());
  AttributeTemplate out;
  out.text_ = std::string(text);
  absl::string_view rest = text;
  std::string piece;
  while (true) {
    size_t open = rest.find("{{");
    if (open == absl::string_view::npos) {
      if (rest.find("}}") != absl::string_view::npos) {
        return absl::InvalidArgumentError(absl::StrCat("\"", text, "\": unexpected }}"));
      }
      piece.append(rest.data(), rest.size());
      break;
    }
    piece.append(rest.data(), open);
    size_t close = rest.find("}}", open + 2);
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("\"", text, "\": unclosed {{"));
    }
    absl::string_view action = absl::StripAsciiWhitespace(rest.substr(open + 2, close - open - 2));
    if (action != ".Value") {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", text, "\": the only template is {{ .Value }}"));
    }
    out.pieces_.push_back(std::move(piece));
    piece.clear();
    rest = rest.substr(close + 2);
  }
  out.pieces_.push_back(std::move(piece));
  return out;
}

std::string AttributeTemplate::fill(std::string_view value) const {
  if (pieces_.empty()) {
    return text_;
  }
  std::string out = pieces_[0];
  for (size_t i = 1; i < pieces_.size(); ++i) {
    out.append(value.data(), value.size());
    out.append(pieces_[i]);
  }
  return out;
}

bool ResourceAttributesTemplate::templated() const {
  return namespace_name.templated() || api_group.templated() || api_version.templated() ||
         resource.templated() || subresource.templated() || name.templated();
}

absl::StatusOr<std::vector<RouteConfig>> parseRoutes(const YAML::Node& node) {
  if (!node.IsSequence()) {
    return fieldError("routes", "must be a list of routes");
  }
  std::vector<RouteConfig> routes;
  for (size_t i = 0; i < node.size(); ++i) {
    std::string field = absl::StrCat("routes[", i, "]");
    absl::StatusOr<RouteConfig> route = parseRoute(node[i], field);
    if (!route.ok()) {
      return route.status();
    }
    for (size_t j = 0; j < routes.size(); ++j) {
      if (routes[j].path == route->path) {
        return fieldError(absl::StrCat(field, ".path"),
                          absl::StrCat("\"", route->path, "\" is also routes[", j, "].path"));
      }
    }
    routes.push_back(*std::move(route));
  }
  return routes;
}

absl::Status resolveRoutes(std::vector<RouteConfig>& routes,
                           const std::optional<UpstreamAddress>& default_upstream,
                           std::vector<UpstreamAddress>& upstreams) {
  upstreams.clear();
  if (routes.empty()) {
    if (!default_upstream.has_value()) {
      return absl::InvalidArgumentError(
          "--upstream: required (http://host:port, https://host:port or unix:///path.sock)");
    }
    routes.push_back(RouteConfig{.path = "/"});
  }
  for (size_t i = 0; i < routes.size(); ++i) {
    RouteConfig& route = routes[i];
    const std::optional<UpstreamAddress>& address =
        route.upstream.has_value() ? route.upstream : default_upstream;
    if (!address.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "routes[", i, "].upstream: required when --upstream is not set (path \"", route.path,
          "\")"));
    }
    auto it = std::find(upstreams.begin(), upstreams.end(), *address);
    route.upstream_index = static_cast<size_t>(it - upstreams.begin());
    if (it == upstreams.end()) {
      upstreams.push_back(*address);
    }
  }
  return absl::OkStatus();
}

RouteTable::RouteTable(std::vector<RouteConfig> routes) : routes_(std::move(routes)) {
  default_ = routes_.size() == 1 && routes_[0].path == "/" &&
             routes_[0].authorization == RouteAuthorization::kKubernetes;
  std::stable_sort(routes_.begin(), routes_.end(), [](const RouteConfig& a, const RouteConfig& b) {
    return a.path.size() > b.path.size();
  });
}

const RouteConfig* RouteTable::match(std::string_view decoded_path) const {
  for (const RouteConfig& route : routes_) {
    if (routePathMatches(route.path, decoded_path)) {
      return &route;
    }
  }
  return nullptr;
}

bool routePathMatches(std::string_view prefix, std::string_view decoded_path) {
  if (prefix == "/") {
    return true;
  }
  if (!decoded_path.starts_with(prefix)) {
    return false;
  }
  return decoded_path.size() == prefix.size() || decoded_path[prefix.size()] == '/';
}

bool hasAmbiguousSegments(std::string_view decoded_path) {
  if (decoded_path.empty() || decoded_path.front() != '/') {
    return !decoded_path.empty() && decoded_path != "*";
  }
  std::string_view rest = decoded_path.substr(1);
  while (true) {
    size_t slash = rest.find('/');
    std::string_view segment = rest.substr(0, slash);
    if (segment == "." || segment == "..") {
      return true;
    }
    if (slash == std::string_view::npos) {
      return false;
    }
    if (segment.empty()) {
      return true;  // "//" before the last segment
    }
    rest = rest.substr(slash + 1);
  }
}

namespace {

// One character class at the start of `pattern` (after '['): whether `c` is in it, and where
// the class ends. Go's matchChunk rules: '^' negates, '\' escapes, a-b ranges, no empty class.
absl::StatusOr<bool> matchClass(std::string_view& pattern, char c) {
  bool negated = false;
  if (!pattern.empty() && pattern[0] == '^') {
    negated = true;
    pattern.remove_prefix(1);
  }
  bool matched = false;
  int ranges = 0;
  while (true) {
    if (!pattern.empty() && pattern[0] == ']' && ranges > 0) {
      pattern.remove_prefix(1);
      break;
    }
    auto escaped = [&pattern]() -> absl::StatusOr<char> {
      if (pattern.empty() || pattern[0] == '-' || pattern[0] == ']') {
        return absl::InvalidArgumentError("syntax error in pattern");
      }
      if (pattern[0] == '\\') {
        pattern.remove_prefix(1);
        if (pattern.empty()) {
          return absl::InvalidArgumentError("syntax error in pattern");
        }
      }
      char ch = pattern[0];
      pattern.remove_prefix(1);
      return ch;
    };
    absl::StatusOr<char> lo = escaped();
    if (!lo.ok()) {
      return lo.status();
    }
    char hi = *lo;
    if (!pattern.empty() && pattern[0] == '-') {
      pattern.remove_prefix(1);
      absl::StatusOr<char> h = escaped();
      if (!h.ok()) {
        return h.status();
      }
      hi = *h;
    }
    if (*lo <= c && c <= hi) {
      matched = true;
    }
    ++ranges;
  }
  return matched != negated;
}

// Matches `pattern` (no '*') against the start of `name`, consuming both; false on mismatch.
absl::StatusOr<bool> matchChunk(std::string_view chunk, std::string_view& name) {
  while (!chunk.empty()) {
    char p = chunk[0];
    if (p == '[') {
      if (name.empty()) {
        return false;  // the pattern was validated before
      }
      chunk.remove_prefix(1);
      absl::StatusOr<bool> in = matchClass(chunk, name[0]);
      if (!in.ok()) {
        return in.status();
      }
      if (!*in) {
        return false;
      }
      name.remove_prefix(1);
      continue;
    }
    if (p == '?') {
      if (name.empty() || name[0] == '/') {
        return false;
      }
      chunk.remove_prefix(1);
      name.remove_prefix(1);
      continue;
    }
    if (p == '\\') {
      chunk.remove_prefix(1);
      if (chunk.empty()) {
        return absl::InvalidArgumentError("syntax error in pattern");
      }
      p = chunk[0];
    }
    if (name.empty() || name[0] != p) {
      return false;
    }
    chunk.remove_prefix(1);
    name.remove_prefix(1);
  }
  return true;
}

// Go's scanChunk: leading stars, then the chunk up to a '*' that is neither escaped nor inside
// "[...]".
struct Chunk {
  bool star = false;
  std::string_view text;
};
Chunk scanChunk(std::string_view& pattern) {
  Chunk out;
  while (!pattern.empty() && pattern[0] == '*') {
    out.star = true;
    pattern.remove_prefix(1);
  }
  bool in_class = false;
  size_t i = 0;
  for (; i < pattern.size(); ++i) {
    char ch = pattern[i];
    if (ch == '\\') {
      if (i + 1 < pattern.size()) {
        ++i;
      }
    } else if (ch == '[') {
      in_class = true;
    } else if (ch == ']') {
      in_class = false;
    } else if (ch == '*' && !in_class) {
      break;
    }
  }
  out.text = pattern.substr(0, i);
  pattern.remove_prefix(i);
  return out;
}

// Checks the whole pattern for syntax errors up front (Go finds them while matching).
absl::Status validatePattern(std::string_view pattern) {
  while (!pattern.empty()) {
    std::string_view chunk = scanChunk(pattern).text;
    while (!chunk.empty()) {
      if (chunk[0] == '[') {
        chunk.remove_prefix(1);
        absl::StatusOr<bool> ignored = matchClass(chunk, 'a');
        if (!ignored.ok()) {
          return ignored.status();
        }
      } else if (chunk[0] == '\\') {
        if (chunk.size() < 2) {
          return absl::InvalidArgumentError("syntax error in pattern");
        }
        chunk.remove_prefix(2);
      } else {
        chunk.remove_prefix(1);
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<bool> goPathMatch(std::string_view pattern, std::string_view name) {
  if (absl::Status s = validatePattern(pattern); !s.ok()) {
    return s;
  }
  while (!pattern.empty()) {
    Chunk scanned = scanChunk(pattern);
    bool star = scanned.star;
    std::string_view chunk = scanned.text;
    if (star && chunk.empty()) {
      // A trailing '*' matches the rest unless it holds a '/'.
      return name.find('/') == std::string_view::npos;
    }
    std::string_view rest = name;
    absl::StatusOr<bool> ok = matchChunk(chunk, rest);
    if (!ok.ok()) {
      return ok.status();
    }
    if (*ok && (rest.empty() || !pattern.empty())) {
      name = rest;
      continue;
    }
    if (star) {
      // Try the chunk after skipping 1..n bytes of name (not past a '/').
      bool found = false;
      for (size_t i = 0; i < name.size() && name[i] != '/'; ++i) {
        std::string_view candidate = name.substr(i + 1);
        absl::StatusOr<bool> m = matchChunk(chunk, candidate);
        if (!m.ok()) {
          return m.status();
        }
        if (*m) {
          if (pattern.empty() && !candidate.empty()) {
            continue;
          }
          name = candidate;
          found = true;
          break;
        }
      }
      if (found) {
        continue;
      }
    }
    return false;
  }
  return name.empty();
}

}  // namespace aaproxy
