// Kubernetes metav1.Status error bodies, byte-compatible with what k8s.io/apiserver writes.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace aaproxy {

// metav1.StatusDetails; empty fields are omitted, as Go's `omitempty` does.
struct StatusDetails {
  std::string name;
  std::string group;
  std::string kind;
};

// A failure Status serialized as Go's json.Encoder does (HTML-escaped strings, fields in
// struct order, trailing newline). `details` present but empty serializes as "details":{}.
std::string failureStatusJson(int code, std::string_view reason, std::string_view message,
                              const std::optional<StatusDetails>& details = std::nullopt);

// The exact 401 body of k8s.io/apiserver's Unauthorized handler.
std::string unauthorizedStatusJson();

// Appends `s` as a JSON string literal with Go encoding/json's escaping rules: `<`, `>`, `&`,
// U+2028 and U+2029 escaped as \uXXXX, invalid UTF-8 replaced with U+FFFD.
void appendGoJsonString(std::string& out, std::string_view s);

// The HTTP reason phrase for a status code ("Service Unavailable"); "Unknown" when unknown.
std::string_view httpReasonPhrase(int code);

}  // namespace aaproxy
