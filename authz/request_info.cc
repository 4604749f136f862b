// RequestInfo resolution; the control flow follows upstream's NewRequestInfo line by line.
#include "authz/request_info.h"

#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "authz/go_text.h"
#include "authz/selector.h"

namespace aaproxy {
namespace {

// Views into `path`.
// Inline room for the usual /apis/<group>/<version>/namespaces/<ns>/<resource>/<name>/<sub>.
using PathParts = absl::InlinedVector<std::string_view, 10>;

PathParts splitPath(std::string_view path) {
  size_t b = path.find_first_not_of('/');
  if (b == std::string_view::npos) {
    return {};
  }
  size_t e = path.find_last_not_of('/');
  path = path.substr(b, e - b + 1);
  PathParts parts;
  size_t start = 0;
  for (;;) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) {
      parts.emplace_back(path.substr(start));
      return parts;
    }
    parts.emplace_back(path.substr(start, slash - start));
    start = slash + 1;
  }
}

// metav1's Convert_Slice_string_To_bool: only "0" and (case-folded) "false" are false.
bool listOptionsBool(std::string_view v) { return !(v == "0" || goEqualFold(v, "false")); }

// Decodes the query into ListOptions the way ParameterCodec.DecodeParameters does, reporting
// only whether it fails: a failure makes upstream drop every parsed option.
bool listOptionsDecodeFails(const GoQuery& query) {
  if (query.has("labelSelector") && !parseLabelSelector(query.first("labelSelector")).ok()) {
    return true;
  }
  if (query.has("fieldSelector") && !parseFieldSelector(query.first("fieldSelector")).ok()) {
    return true;
  }
  // int64 / *int64 fields: strconv.ParseInt on the first value, "" included.
  for (std::string_view key : {"timeoutSeconds", "limit"}) {
    if (query.has(key) && !goParsesInt64(query.first(key))) {
      return true;
    }
  }
  return false;
}

std::vector<SelectorRequirement> toSarFieldRequirements(std::string_view selector) {
  std::vector<SelectorRequirement> out;
  auto parsed = parseFieldSelector(selector);
  if (!parsed.ok()) {
    return out;
  }
  for (const auto& r : *parsed) {
    // fields only know = (and ==, folded into =) and !=.
    out.push_back(SelectorRequirement{r.key, r.op == "!=" ? "NotIn" : "In", r.values});
  }
  return out;
}

std::vector<SelectorRequirement> toSarLabelRequirements(std::string_view selector) {
  std::vector<SelectorRequirement> out;
  auto parsed = parseLabelSelector(selector);
  if (!parsed.ok()) {
    return out;
  }
  for (const auto& r : *parsed) {
    std::string op;
    if (r.op == "=" || r.op == "==" || r.op == "in") {
      op = "In";
    } else if (r.op == "!=" || r.op == "notin") {
      op = "NotIn";
    } else if (r.op == "exists") {
      op = "Exists";
    } else if (r.op == "!") {
      op = "DoesNotExist";
    } else {
      continue;  // gt/lt: dropping a requirement only broadens the check
    }
    out.push_back(SelectorRequirement{r.key, op, r.values});
  }
  return out;
}

// path.IsValidPathSegmentName reports no error.
bool isValidPathSegmentName(std::string_view name) {
  if (name == "." || name == "..") {
    return false;
  }
  return name.find('/') == std::string_view::npos && name.find('%') == std::string_view::npos;
}

}  // namespace

absl::StatusOr<RequestInfo> resolveRequestInfo(std::string_view method,
                                               std::string_view request_target) {
  auto uri = parseGoRequestUri(request_target);
  if (!uri.ok()) {
    return uri.status();
  }

  RequestInfo info;
  info.path = std::move(uri->path);
  info.verb = goAsciiLower(method);

  PathParts parts = splitPath(info.path);
  if (parts.size() < 3) {
    return info;
  }
  if (parts[0] != "api" && parts[0] != "apis") {
    return info;
  }
  info.apiPrefix = parts[0];
  size_t at = 1;
  if (info.apiPrefix != "api") {
    if (parts.size() - at < 3) {
      return info;  // upstream leaves APIPrefix set here
    }
    info.apiGroup = parts[at++];
  }
  info.isResourceRequest = true;
  info.apiVersion = parts[at++];

  bool verbViaPathPrefix = false;
  if (parts[at] == "proxy" || parts[at] == "watch") {
    if (parts.size() - at < 2) {
      uri->path = info.path;  // moved into info above
      std::string url = goEscapedPath(*uri);
      if (!uri->rawQuery.empty()) {
        url += '?';
        url.append(uri->rawQuery);
      }
      return absl::InternalError(
          absl::StrCat("unable to determine kind and namespace from url, ", url));
    }
    info.verb = parts[at++];
    verbViaPathPrefix = true;
  } else if (method == "POST") {
    info.verb = "create";
  } else if (method == "GET" || method == "HEAD") {
    info.verb = "get";
  } else if (method == "PUT") {
    info.verb = "update";
  } else if (method == "PATCH") {
    info.verb = "patch";
  } else if (method == "DELETE") {
    info.verb = "delete";
  } else {
    info.verb = "";
  }

  if (parts[at] == "namespaces") {
    if (parts.size() - at > 1) {
      info.namespaceName = parts[at + 1];
      if (parts.size() - at > 2 && parts[at + 2] != "status" && parts[at + 2] != "finalize") {
        at += 2;
      }
    }
  }
  info.parts.assign(parts.begin() + static_cast<ptrdiff_t>(at), parts.end());

  const auto& p = info.parts;
  if (p.size() >= 3 && info.verb != "proxy") {
    info.subresource = p[2];
  }
  if (p.size() >= 2) {
    info.name = p[1];
  }
  if (!p.empty()) {
    info.resource = p[0];
  }

  GoQuery query = GoQuery::parse(uri->rawQuery);
  if (info.name.empty() && info.verb == "get") {
    bool watch;
    std::string exactName;
    bool haveName = false;
    if (listOptionsDecodeFails(query)) {
      // Upstream logs, resets the options and only honours `watch`, lowercased.
      watch = false;
      if (query.has("watch")) {
        std::string v = goAsciiLower(query.first("watch"));
        watch = !(v == "false" || v == "0");
      }
    } else {
      watch = query.has("watch") && listOptionsBool(query.first("watch"));
      if (query.has("fieldSelector")) {
        auto fs = parseFieldSelector(query.first("fieldSelector"));
        haveName = fs.ok() && fieldSelectorRequiresExactMatch(*fs, "metadata.name", &exactName);
      }
    }
    info.verb = watch ? "watch" : "list";
    if (haveName && isValidPathSegmentName(exactName)) {
      info.name = exactName;
    }
  }
  if (info.name.empty() && info.verb == "delete") {
    info.verb = "deletecollection";
  }

  // AuthorizeWithSelectors (on by default since 1.32, GA later).
  if (!verbViaPathPrefix &&
      (info.verb == "list" || info.verb == "watch" || info.verb == "deletecollection")) {
    if (query.has("fieldSelector")) {
      info.fieldSelector = std::string(query.first("fieldSelector"));
    }
    if (query.has("labelSelector")) {
      info.labelSelector = std::string(query.first("labelSelector"));
    }
  }
  if (!info.fieldSelector.empty()) {
    info.fieldSelectorRequirements = toSarFieldRequirements(info.fieldSelector);
  }
  if (!info.labelSelector.empty()) {
    info.labelSelectorRequirements = toSarLabelRequirements(info.labelSelector);
  }
  return info;
}

namespace {

// time.quote: non-ASCII and control bytes as \xNN, '"' and '\\' backslash-escaped.
std::string timeQuote(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c >= 0x80 || c < ' ') {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      if (c == '"' || c == '\\') {
        out += '\\';
      }
      out += static_cast<char>(c);
    }
  }
  out += '"';
  return out;
}

}  // namespace

std::string goParseDurationError(std::string_view orig) {
  std::string invalid = "time: invalid duration " + timeQuote(orig);
  std::string_view s = orig;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    s.remove_prefix(1);
  }
  if (s == "0") {
    return "";
  }
  if (s.empty()) {
    return invalid;
  }
  constexpr unsigned __int128 kLimit = static_cast<unsigned __int128>(1) << 63;
  unsigned __int128 d = 0;
  while (!s.empty()) {
    if (!(s[0] == '.' || (s[0] >= '0' && s[0] <= '9'))) {
      return invalid;
    }
    unsigned __int128 v = 0;
    size_t i = 0;
    for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) {
      if (v > kLimit / 10) {
        return invalid;  // leadingInt overflow
      }
      v = v * 10 + static_cast<unsigned>(s[i] - '0');
      if (v > kLimit) {
        return invalid;
      }
    }
    bool pre = i > 0;
    s.remove_prefix(i);
    bool post = false;
    uint64_t f = 0;  // leadingFraction: digits after '.', accumulation stops on overflow
    double scale = 1;
    bool overflow = false;
    if (!s.empty() && s[0] == '.') {
      s.remove_prefix(1);
      size_t k = 0;
      for (; k < s.size() && s[k] >= '0' && s[k] <= '9'; ++k) {
        if (overflow) {
          continue;
        }
        if (f > ((static_cast<uint64_t>(1) << 63) - 1) / 10) {
          overflow = true;
          continue;
        }
        uint64_t y = f * 10 + static_cast<uint64_t>(s[k] - '0');
        if (y > (static_cast<uint64_t>(1) << 63)) {
          overflow = true;
          continue;
        }
        f = y;
        scale *= 10;
      }
      post = k > 0;
      s.remove_prefix(k);
    }
    if (!pre && !post) {
      return invalid;
    }
    size_t u = 0;
    while (u < s.size() && !(s[u] == '.' || (s[u] >= '0' && s[u] <= '9'))) {
      ++u;
    }
    if (u == 0) {
      return "time: missing unit in duration " + timeQuote(orig);
    }
    std::string_view unit = s.substr(0, u);
    s.remove_prefix(u);
    uint64_t mult = 0;
    if (unit == "ns") {
      mult = 1;
    } else if (unit == "us" || unit == "\xc2\xb5s" || unit == "\xce\xbcs") {
      mult = 1000;
    } else if (unit == "ms") {
      mult = 1000000;
    } else if (unit == "s") {
      mult = 1000000000ULL;
    } else if (unit == "m") {
      mult = 60ULL * 1000000000ULL;
    } else if (unit == "h") {
      mult = 3600ULL * 1000000000ULL;
    } else {
      return "time: unknown unit " + timeQuote(unit) + " in duration " + timeQuote(orig);
    }
    if (v > kLimit / mult) {
      return invalid;
    }
    v *= mult;
    if (f > 0) {
      v += static_cast<uint64_t>(static_cast<double>(f) * (static_cast<double>(mult) / scale));
      if (v > kLimit) {
        return invalid;
      }
    }
    d += v;
    if (d > kLimit) {
      return invalid;
    }
  }
  bool neg = !orig.empty() && orig[0] == '-';
  if (!neg && d > kLimit - 1) {
    return invalid;
  }
  return "";
}

absl::Status checkRequestTimeoutParameter(const RequestInfo& info,
                                          std::string_view request_target) {
  if (info.verb == "watch") {
    return absl::OkStatus();
  }
  if (!info.isResourceRequest && info.path.rfind("/debug/pprof/", 0) == 0) {
    return absl::OkStatus();
  }
  // Most requests have no query, or one without a `timeout` key (which, unescaped, can only be
  // spelled literally): no need to parse the target again.
  size_t q = request_target.find('?');
  if (q == std::string_view::npos) {
    return absl::OkStatus();
  }
  std::string_view raw_query = request_target.substr(q + 1);
  if (raw_query.find('%') == std::string_view::npos &&
      raw_query.find("timeout") == std::string_view::npos) {
    return absl::OkStatus();
  }
  auto uri = parseGoRequestUri(request_target);
  if (!uri.ok()) {
    return absl::OkStatus();
  }
  GoQuery query = GoQuery::parse(uri->rawQuery);
  std::string_view value = query.first("timeout");
  if (value.empty()) {
    return absl::OkStatus();
  }
  std::string err = goParseDurationError(value);
  if (err.empty()) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError("invalid timeout specified in the request URL - " + err);
}

}  // namespace aaproxy
