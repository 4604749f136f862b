// Parsing of the extension-apiserver-authentication ConfigMap with simdjson.
#include "authn/extension_apiserver_authentication.h"

#include <simdjson.h>

#include "absl/strings/str_cat.h"

namespace aaproxy {
namespace {

absl::StatusOr<std::optional<std::vector<std::string>>> deserializeStrings(
    const std::map<std::string, std::string>& data, const char* key) {
  auto it = data.find(key);
  if (it == data.end() || it->second.empty()) {
    return std::optional<std::vector<std::string>>();
  }
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (auto error = parser.parse(it->second.data(), it->second.size()).get(doc); error) {
    return absl::InvalidArgumentError(
        absl::StrCat(key, ": invalid JSON: ", simdjson::error_message(error)));
  }
  if (doc.is_null()) {
    return std::optional<std::vector<std::string>>();
  }
  simdjson::dom::array array;
  if (doc.get(array) != simdjson::SUCCESS) {
    return absl::InvalidArgumentError(absl::StrCat(key, ": expected a JSON array of strings"));
  }
  std::vector<std::string> out;
  for (simdjson::dom::element element : array) {
    if (element.is_null()) {
      out.emplace_back();
      continue;
    }
    std::string_view s;
    if (element.get(s) != simdjson::SUCCESS) {
      return absl::InvalidArgumentError(absl::StrCat(key, ": expected a JSON array of strings"));
    }
    out.emplace_back(s);
  }
  return std::optional<std::vector<std::string>>(std::move(out));
}

std::optional<std::string> nonEmpty(const std::map<std::string, std::string>& data,
                                    const char* key) {
  auto it = data.find(key);
  if (it == data.end() || it->second.empty()) {
    return std::nullopt;
  }
  return it->second;
}

}  // namespace

absl::StatusOr<std::map<std::string, std::string>> parseConfigMapData(std::string_view json) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (auto error = parser.parse(json.data(), json.size()).get(doc); error) {
    return absl::InvalidArgumentError(
        absl::StrCat("ConfigMap: invalid JSON: ", simdjson::error_message(error)));
  }
  simdjson::dom::object object;
  if (doc.get(object) != simdjson::SUCCESS) {
    return absl::InvalidArgumentError("ConfigMap: expected a JSON object");
  }
  std::map<std::string, std::string> out;
  for (auto field : object) {
    if (field.key != "data") {
      continue;
    }
    out.clear();  // A duplicate "data" replaces the earlier one, as in Go.
    if (field.value.is_null()) {
      continue;
    }
    simdjson::dom::object data;
    if (field.value.get(data) != simdjson::SUCCESS) {
      return absl::InvalidArgumentError("ConfigMap: data is not an object");
    }
    for (auto entry : data) {
      std::string_view value;
      if (entry.value.is_null()) {
        value = {};
      } else if (entry.value.get(value) != simdjson::SUCCESS) {
        return absl::InvalidArgumentError(
            absl::StrCat("ConfigMap: data[\"", std::string(entry.key), "\"] is not a string"));
      }
      out[std::string(entry.key)] = std::string(value);
    }
  }
  return out;
}

absl::StatusOr<ExtensionApiserverAuthentication> parseExtensionApiserverAuthentication(
    const std::map<std::string, std::string>& data) {
  ExtensionApiserverAuthentication out;
  out.clientCaPem = nonEmpty(data, kClientCaKey);
  out.requestHeaderCaPem = nonEmpty(data, kRequestHeaderClientCaKey);
  struct ListKey {
    const char* key;
    std::optional<std::vector<std::string>>* field;
  };
  for (ListKey k :
       {ListKey{kRequestHeaderAllowedNamesKey, &out.requestHeaderAllowedNames},
        ListKey{kRequestHeaderUsernameHeadersKey, &out.requestHeaderUsernameHeaders},
        ListKey{kRequestHeaderUidHeadersKey, &out.requestHeaderUidHeaders},
        ListKey{kRequestHeaderGroupHeadersKey, &out.requestHeaderGroupHeaders},
        ListKey{kRequestHeaderExtraHeadersPrefixKey, &out.requestHeaderExtraHeaderPrefixes}}) {
    absl::StatusOr<std::optional<std::vector<std::string>>> value = deserializeStrings(data, k.key);
    if (!value.ok()) {
      return value.status();
    }
    *k.field = *std::move(value);
  }
  return out;
}

ExtensionApiserverAuthentication mergeWithFlags(const ExtensionApiserverAuthentication& configMap,
                                                const ExtensionApiserverAuthentication& flags) {
  ExtensionApiserverAuthentication out;
  out.clientCaPem = flags.clientCaPem ? flags.clientCaPem : configMap.clientCaPem;
  if (flags.requestHeaderCaPem) {
    out.requestHeaderCaPem = flags.requestHeaderCaPem;
    out.requestHeaderAllowedNames = flags.requestHeaderAllowedNames;
    out.requestHeaderUsernameHeaders = flags.requestHeaderUsernameHeaders;
    out.requestHeaderUidHeaders = flags.requestHeaderUidHeaders;
    out.requestHeaderGroupHeaders = flags.requestHeaderGroupHeaders;
    out.requestHeaderExtraHeaderPrefixes = flags.requestHeaderExtraHeaderPrefixes;
    return out;
  }
  auto pick = [](const auto& flag, const auto& fromConfigMap) {
    return flag ? flag : fromConfigMap;
  };
  out.requestHeaderCaPem = configMap.requestHeaderCaPem;
  out.requestHeaderAllowedNames =
      pick(flags.requestHeaderAllowedNames, configMap.requestHeaderAllowedNames);
  out.requestHeaderUsernameHeaders =
      pick(flags.requestHeaderUsernameHeaders, configMap.requestHeaderUsernameHeaders);
  out.requestHeaderUidHeaders =
      pick(flags.requestHeaderUidHeaders, configMap.requestHeaderUidHeaders);
  out.requestHeaderGroupHeaders =
      pick(flags.requestHeaderGroupHeaders, configMap.requestHeaderGroupHeaders);
  out.requestHeaderExtraHeaderPrefixes =
      pick(flags.requestHeaderExtraHeaderPrefixes, configMap.requestHeaderExtraHeaderPrefixes);
  return out;
}

}  // namespace aaproxy
