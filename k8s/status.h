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

// How k8s.io/apiserver's JSON serializer writes an object (runtime/serializer/json):
//  - kCompact: json.NewEncoder(w).Encode(obj): compact, with a trailing "\n".
//  - kPretty: json.MarshalIndent(obj, "", "  "): two-space indent, no trailing newline.
// The apiserver picks kPretty when the query has `pretty` parsing (strconv.ParseBool) as true,
// or, with no non-empty `pretty` value, when the User-Agent starts with "curl", "Wget" or
// "Mozilla/5.0" (endpoints/handlers/negotiation isPrettyPrint; see prettyPrintRequested() in
// authz/forbidden.h). Both styles are sent as Content-Type: application/json.
enum class JsonStyle { kCompact, kPretty };

// A failure Status serialized as Go's encoding/json does (HTML-escaped strings, fields in
// struct order). `details` present but empty serializes as "details":{}.
std::string failureStatusJson(int code, std::string_view reason, std::string_view message,
                              const std::optional<StatusDetails>& details = std::nullopt,
                              JsonStyle style = JsonStyle::kCompact);

// The exact 401 body of k8s.io/apiserver's Unauthorized handler.
std::string unauthorizedStatusJson(JsonStyle style = JsonStyle::kCompact);

// json.Indent(dst, compact, "", "  ") for compact JSON as this file produces it: what
// json.MarshalIndent gives for the same value. No trailing newline is added.
std::string goJsonIndent(std::string_view compact);

// Appends `s` as a JSON string literal with Go encoding/json's escaping rules: `<`, `>`, `&`,
// U+2028 and U+2029 escaped as \uXXXX, invalid UTF-8 replaced with U+FFFD.
void appendGoJsonString(std::string& out, std::string_view s);

// The HTTP reason phrase for a status code ("Service Unavailable"); "Unknown" when unknown.
std::string_view httpReasonPhrase(int code);

}  // namespace aaproxy
