// RequestInfo (resolveRequestInfo and the timeout check) over arbitrary methods and request
// targets, with the Go text routines under it (goUnescape, parseGoRequestUri, goEscapedPath,
// GoQuery, goQuote).
//
// Input: the first line is the method, the rest the request target.
//
// Invariants:
//  - a target RequestInfo accepts parses as a Go request URI, and its path round-trips: the
//    escaped path unescapes to it, and the target rebuilt from the escaped path and the raw
//    query resolves to the same RequestInfo;
//  - the attributes are pieces of the path: resource, name and subresource are its parts (or
//    the name a metadata.name field selector gives a list or watch),
//    a resource request has the "api"/"apis" prefix and a kube verb; selector requirements only
//    come with selectors and use the SAR's operators;
//  - goUnescape inverts percent-encoding of any bytes and never grows its input; goQuote's
//    output is one line of printable ASCII;
//  - nothing reads past the input (the input is an exact-size buffer under ASan).
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "authz/go_text.h"
#include "authz/request_info.h"
#include "fuzz/fuzz_check.h"
#include "fuzz/fuzz_input.h"

namespace aaproxy::fuzz {
namespace {

bool sameInfo(const RequestInfo& a, const RequestInfo& b) {
  return a.isResourceRequest == b.isResourceRequest && a.path == b.path && a.verb == b.verb &&
         a.apiPrefix == b.apiPrefix && a.apiGroup == b.apiGroup && a.apiVersion == b.apiVersion &&
         a.namespaceName == b.namespaceName && a.resource == b.resource &&
         a.subresource == b.subresource && a.name == b.name && a.parts == b.parts &&
         a.fieldSelector == b.fieldSelector && a.labelSelector == b.labelSelector &&
         a.fieldSelectorRequirements == b.fieldSelectorRequirements &&
         a.labelSelectorRequirements == b.labelSelectorRequirements;
}

std::string percentEncodeAll(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out += '%';
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

void checkGoText(std::string_view s) {
  for (bool query_mode : {false, true}) {
    absl::StatusOr<std::string> unescaped = goUnescape(s, query_mode);
    if (unescaped.ok()) {
      FUZZ_CHECK(unescaped->size() <= s.size(), s);
      if (s.find('%') == std::string_view::npos && (!query_mode || s.find('+') == s.npos)) {
        FUZZ_CHECK(*unescaped == s, s);
      }
    }
    absl::StatusOr<std::string> round_trip = goUnescape(percentEncodeAll(s), query_mode);
    FUZZ_CHECK(round_trip.ok() && *round_trip == s, s);
  }
  std::string quoted = goQuote(s);
  FUZZ_CHECK(quoted.size() >= 2 && quoted.front() == '"' && quoted.back() == '"', quoted);
  for (unsigned char c : quoted) {
    FUZZ_CHECK(c >= 0x20 && c != 0x7f, quoted);  // non-ASCII only as valid UTF-8 runes
  }
  FUZZ_CHECK(isValidUtf8(quoted), quoted);
}

void checkAttributes(std::string_view method, std::string_view target, const RequestInfo& info) {
  absl::StatusOr<GoRequestUri> uri = parseGoRequestUri(target);
  FUZZ_CHECK(uri.ok(), target);
  FUZZ_CHECK(info.path == uri->path, target);
  absl::StatusOr<std::string> raw_path = goUnescape(uri->rawPath, false);
  FUZZ_CHECK(raw_path.ok() && *raw_path == uri->path, target);
  std::string escaped = goEscapedPath(*uri);
  absl::StatusOr<std::string> unescaped = goUnescape(escaped, false);
  FUZZ_CHECK(unescaped.ok() && *unescaped == uri->path, escaped);

  if (!target.empty() && target[0] == '/') {
    std::string rebuilt = escaped;
    if (target.find('?') != std::string_view::npos) {
      rebuilt += '?';
      rebuilt.append(uri->rawQuery);
    }
    absl::StatusOr<RequestInfo> again = resolveRequestInfo(method, rebuilt);
    FUZZ_CHECK(again.ok() && sameInfo(info, *again), rebuilt);
  }

  const bool contains_path_of_parts = [&] {
    for (const std::string& part : info.parts) {
      if (part.find('/') != std::string::npos || info.path.find(part) == std::string::npos) {
        return false;
      }
    }
    return true;
  }();
  FUZZ_CHECK(contains_path_of_parts, info.path);
  if (!info.isResourceRequest) {
    FUZZ_CHECK(info.parts.empty() && info.resource.empty() && info.name.empty(), info.path);
    FUZZ_CHECK(info.fieldSelectorRequirements.empty() && info.labelSelectorRequirements.empty());
    return;
  }
  FUZZ_CHECK(info.apiPrefix == "api" || info.apiPrefix == "apis", info.path);
  FUZZ_CHECK(info.apiPrefix == "apis" || info.apiGroup.empty(), info.path);
  static const std::set<std::string> kVerbs = {
      "",      "get", "list", "watch", "create", "update", "patch", "delete", "deletecollection",
      "proxy",
  };
  FUZZ_CHECK(kVerbs.count(info.verb) == 1, info.verb);
  if (!info.parts.empty()) {
    FUZZ_CHECK(info.resource == info.parts[0], info.path);
  } else {
    FUZZ_CHECK(info.resource.empty(), info.path);
  }
  if (info.parts.size() >= 2 && !info.parts[1].empty()) {
    FUZZ_CHECK(info.name == info.parts[1], info.path);
  } else if (!info.name.empty()) {
    // A list or watch narrowed to one object by fieldSelector=metadata.name=<name>.
    FUZZ_CHECK(info.verb == "list" || info.verb == "watch", info.verb);
    FUZZ_CHECK(
        info.name != "." && info.name != ".." && info.name.find_first_of("/%") == std::string::npos,
        info.name);
  }
  if (!info.subresource.empty()) {
    FUZZ_CHECK(info.parts.size() >= 3 && info.subresource == info.parts[2], info.path);
  }
  if (!info.namespaceName.empty()) {
    FUZZ_CHECK(info.path.find("/namespaces/" + info.namespaceName) != std::string::npos, info.path);
  }
  for (const auto* reqs : {&info.fieldSelectorRequirements, &info.labelSelectorRequirements}) {
    for (const SelectorRequirement& r : *reqs) {
      FUZZ_CHECK(r.op == "In" || r.op == "NotIn" || r.op == "Exists" || r.op == "DoesNotExist",
                 r.op);
      FUZZ_CHECK((r.op == "In" || r.op == "NotIn") == !r.values.empty(), r.key);
    }
  }
  FUZZ_CHECK(info.fieldSelectorRequirements.empty() || !info.fieldSelector.empty());
  FUZZ_CHECK(info.labelSelectorRequirements.empty() || !info.labelSelector.empty());
  if (!info.fieldSelector.empty() || !info.labelSelector.empty()) {
    FUZZ_CHECK(info.verb == "list" || info.verb == "watch" || info.verb == "deletecollection",
               info.verb);
  }
}

}  // namespace
}  // namespace aaproxy::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace aaproxy;
  using namespace aaproxy::fuzz;
  auto [method, target] = splitFirstLine(asView(data, size));
  checkGoText(target);
  absl::StatusOr<RequestInfo> info = resolveRequestInfo(method, target);
  if (info.ok()) {
    checkAttributes(method, target, *info);
    absl::Status timeout = checkRequestTimeoutParameter(*info, target);
    FUZZ_CHECK(timeout.ok() || timeout.code() == absl::StatusCode::kInvalidArgument);
  } else {
    FUZZ_CHECK(info.status().code() == absl::StatusCode::kInvalidArgument ||
                   info.status().code() == absl::StatusCode::kInternal,
               info.status().ToString());
  }
  GoQuery query = GoQuery::parse(target);
  (void)query.first("watch");
  (void)goParseDurationError(method);
  return 0;
}
