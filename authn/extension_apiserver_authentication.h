// The kube-system/extension-apiserver-authentication ConfigMap: its JSON, its keys, and how
// explicit flags override it (k8s.io/apiserver's RequestHeaderAuthRequestController and
// DelegatingAuthenticationOptions).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace aaproxy {

inline constexpr char kAuthenticationConfigMapNamespace[] = "kube-system";
inline constexpr char kAuthenticationConfigMapName[] = "extension-apiserver-authentication";

inline constexpr char kClientCaKey[] = "client-ca-file";
inline constexpr char kRequestHeaderClientCaKey[] = "requestheader-client-ca-file";
inline constexpr char kRequestHeaderAllowedNamesKey[] = "requestheader-allowed-names";
inline constexpr char kRequestHeaderUsernameHeadersKey[] = "requestheader-username-headers";
inline constexpr char kRequestHeaderUidHeadersKey[] = "requestheader-uid-headers";
inline constexpr char kRequestHeaderGroupHeadersKey[] = "requestheader-group-headers";
inline constexpr char kRequestHeaderExtraHeadersPrefixKey[] = "requestheader-extra-headers-prefix";

// What the ConfigMap (or the flags) say. nullopt = unset (missing key, empty string, `null`);
// an empty vector is a set, empty list (`[]`).
struct ExtensionApiserverAuthentication {
  std::optional<std::string> clientCaPem;
  std::optional<std::string> requestHeaderCaPem;
  std::optional<std::vector<std::string>> requestHeaderAllowedNames;
  std::optional<std::vector<std::string>> requestHeaderUsernameHeaders;
  std::optional<std::vector<std::string>> requestHeaderUidHeaders;
  std::optional<std::vector<std::string>> requestHeaderGroupHeaders;
  std::optional<std::vector<std::string>> requestHeaderExtraHeaderPrefixes;

  bool operator==(const ExtensionApiserverAuthentication&) const = default;
};

// `.data` of a ConfigMap object as returned by GET /api/v1/namespaces/kube-system/configmaps/..
// (Go's json.Unmarshal into corev1.ConfigMap: missing or null data -> empty map, a non-string
// value -> error; for duplicate keys the last wins).
absl::StatusOr<std::map<std::string, std::string>> parseConfigMapData(std::string_view json);

// The data map -> struct. List keys hold a JSON array of strings as a string (upstream's
// deserializeStrings): "" -> unset, `null` -> unset, `[]` -> empty list, invalid JSON or not an
// array of strings -> error naming the key (`requestheader-allowed-names: invalid JSON: ..`).
// A `null` array element becomes "" (Go leaves the string zero). CA PEMs are not parsed here.
absl::StatusOr<ExtensionApiserverAuthentication> parseExtensionApiserverAuthentication(
    const std::map<std::string, std::string>& data);

// Applies explicit flags over the ConfigMap values: a flag value, when set, wins. As upstream,
// when the request-header CA is given by flag the ConfigMap's request-header values are not
// used at all (DelegatingAuthenticationOptions uses the flag set as a whole then); the client
// CA is independent.
ExtensionApiserverAuthentication mergeWithFlags(const ExtensionApiserverAuthentication& configMap,
                                                const ExtensionApiserverAuthentication& flags);

}  // namespace aaproxy
