// The kube-system/extension-apiserver-authentication ConfigMap parser
// (authn/extension_apiserver_authentication.*) over arbitrary bodies, as kube-apiserver's
// answer to the GET (or a watch event's object) would arrive.
//
// Invariants (errors are values, no exception escapes):
//  - an accepted body's fields follow the data map: a CA is the map's non-empty value; a list is
//    unset exactly when its key is missing, empty or the JSON `null`, otherwise the strings of
//    the key's JSON array;
//  - request-header names it yields either make a RequestHeaderAuthenticator (with trimmed,
//    non-empty names) or give the "empty header" error;
//  - mergeWithFlags: a flag that is set wins; a request-header CA given by flag brings the
//    flags' request-header lists along as a whole; merging with no flags changes nothing.
#include <simdjson.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/ascii.h"
#include "authn/extension_apiserver_authentication.h"
#include "authn/request_header_authenticator.h"
#include "fuzz/fuzz_check.h"
#include "fuzz/fuzz_input.h"

namespace aaproxy::fuzz {
namespace {

using StringList = std::optional<std::vector<std::string>>;

// The list a key holds, read again from the key's JSON: nullopt when it is not `null` or an
// array of strings (and nulls).
std::optional<StringList> expectedList(const std::map<std::string, std::string>& data,
                                       const char* key) {
  auto it = data.find(key);
  if (it == data.end() || it->second.empty()) {
    return StringList();
  }
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(it->second).get(doc) != simdjson::SUCCESS) {
    return std::nullopt;
  }
  if (doc.type() == simdjson::dom::element_type::NULL_VALUE) {
    return StringList();
  }
  if (doc.type() != simdjson::dom::element_type::ARRAY) {
    return std::nullopt;
  }
  std::vector<std::string> out;
  simdjson::dom::array array = doc.get_array().value_unsafe();
  for (simdjson::dom::element e : array) {
    if (e.type() == simdjson::dom::element_type::NULL_VALUE) {
      out.emplace_back();
    } else if (e.type() == simdjson::dom::element_type::STRING) {
      out.emplace_back(e.get_string().value_unsafe());
    } else {
      return std::nullopt;
    }
  }
  return StringList(std::move(out));
}

void checkRequestHeaderNames(const ExtensionApiserverAuthentication& auth) {
  RequestHeaderConfig config;
  config.usernameHeaders = auth.requestHeaderUsernameHeaders.value_or(std::vector<std::string>{});
  config.uidHeaders = auth.requestHeaderUidHeaders.value_or(std::vector<std::string>{});
  config.groupHeaders = auth.requestHeaderGroupHeaders.value_or(std::vector<std::string>{});
  config.extraHeaderPrefixes =
      auth.requestHeaderExtraHeaderPrefixes.value_or(std::vector<std::string>{});
  absl::StatusOr<std::unique_ptr<RequestHeaderAuthenticator>> created =
      RequestHeaderAuthenticator::create(config);
  if (!created.ok()) {
    FUZZ_CHECK(created.status().message().find("empty header") != std::string_view::npos,
               created.status().ToString());
    return;
  }
  for (const auto* names :
       {&(*created)->config().usernameHeaders, &(*created)->config().uidHeaders,
        &(*created)->config().groupHeaders, &(*created)->config().extraHeaderPrefixes}) {
    for (const std::string& n : *names) {
      FUZZ_CHECK(!n.empty() && absl::StripAsciiWhitespace(n) == n, n);
    }
  }
}

void checkMerge(const ExtensionApiserverAuthentication& config_map,
                const ExtensionApiserverAuthentication& flags) {
  ExtensionApiserverAuthentication merged = mergeWithFlags(config_map, flags);
  FUZZ_CHECK(merged.clientCaPem ==
             (flags.clientCaPem ? flags.clientCaPem : config_map.clientCaPem));
  const ExtensionApiserverAuthentication& source = flags.requestHeaderCaPem ? flags : config_map;
  FUZZ_CHECK(merged.requestHeaderCaPem == source.requestHeaderCaPem);
  auto pick = [&](const StringList& flag, const StringList& from_map) {
    if (flags.requestHeaderCaPem) {
      return flag;
    }
    return flag ? flag : from_map;
  };
  FUZZ_CHECK(merged.requestHeaderAllowedNames ==
             pick(flags.requestHeaderAllowedNames, config_map.requestHeaderAllowedNames));
  FUZZ_CHECK(merged.requestHeaderUsernameHeaders ==
             pick(flags.requestHeaderUsernameHeaders, config_map.requestHeaderUsernameHeaders));
  FUZZ_CHECK(merged.requestHeaderUidHeaders ==
             pick(flags.requestHeaderUidHeaders, config_map.requestHeaderUidHeaders));
  FUZZ_CHECK(merged.requestHeaderGroupHeaders ==
             pick(flags.requestHeaderGroupHeaders, config_map.requestHeaderGroupHeaders));
  FUZZ_CHECK(
      merged.requestHeaderExtraHeaderPrefixes ==
      pick(flags.requestHeaderExtraHeaderPrefixes, config_map.requestHeaderExtraHeaderPrefixes));
}

}  // namespace
}  // namespace aaproxy::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace aaproxy;
  using namespace aaproxy::fuzz;
  absl::StatusOr<std::map<std::string, std::string>> map = parseConfigMapData(asView(data, size));
  if (!map.ok()) {
    FUZZ_CHECK(map.status().code() == absl::StatusCode::kInvalidArgument);
    return 0;
  }
  absl::StatusOr<ExtensionApiserverAuthentication> parsed =
      parseExtensionApiserverAuthentication(*map);
  const struct {
    const char* key;
    const StringList* field;
  } lists[] = {
      {kRequestHeaderAllowedNamesKey, parsed.ok() ? &parsed->requestHeaderAllowedNames : nullptr},
      {kRequestHeaderUsernameHeadersKey,
       parsed.ok() ? &parsed->requestHeaderUsernameHeaders : nullptr},
      {kRequestHeaderUidHeadersKey, parsed.ok() ? &parsed->requestHeaderUidHeaders : nullptr},
      {kRequestHeaderGroupHeadersKey, parsed.ok() ? &parsed->requestHeaderGroupHeaders : nullptr},
      {kRequestHeaderExtraHeadersPrefixKey,
       parsed.ok() ? &parsed->requestHeaderExtraHeaderPrefixes : nullptr},
  };
  bool all_lists_valid = true;
  for (const auto& list : lists) {
    std::optional<StringList> expected = expectedList(*map, list.key);
    all_lists_valid &= expected.has_value();
    if (parsed.ok()) {
      FUZZ_CHECK(expected.has_value(), list.key);
      FUZZ_CHECK(*expected == *list.field, list.key);
    }
  }
  if (!parsed.ok()) {
    FUZZ_CHECK(!all_lists_valid, parsed.status().ToString());
    FUZZ_CHECK(parsed.status().code() == absl::StatusCode::kInvalidArgument);
    return 0;
  }
  auto value = [&](const char* key) -> std::optional<std::string> {
    auto it = map->find(key);
    return it == map->end() || it->second.empty() ? std::nullopt
                                                  : std::optional<std::string>(it->second);
  };
  FUZZ_CHECK(parsed->clientCaPem == value(kClientCaKey));
  FUZZ_CHECK(parsed->requestHeaderCaPem == value(kRequestHeaderClientCaKey));
  checkRequestHeaderNames(*parsed);

  ExtensionApiserverAuthentication no_flags;
  FUZZ_CHECK(mergeWithFlags(*parsed, no_flags) == *parsed);
  ExtensionApiserverAuthentication flags;
  flags.requestHeaderUsernameHeaders = std::vector<std::string>{"X-Flag-User"};
  checkMerge(*parsed, flags);
  flags.requestHeaderCaPem = "flag CA";
  checkMerge(*parsed, flags);
  checkMerge(flags, *parsed);
  return 0;
}
