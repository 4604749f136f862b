// The error responses authorization produces, byte-compatible with k8s.io/apiserver:
// responsewriters.Forbidden (403 Status JSON) and responsewriters.InternalError (500 text).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "authz/request_info.h"
#include "k8s/status.h"
#include "k8s/user_info.h"

namespace aaproxy {

struct HttpErrorResponse {
  int code = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // Content-Type first
  std::string body;
};

// negotiation.isPrettyPrint: `pretty` in the raw query with a non-empty first value decides
// (strconv.ParseBool; unparsable means false); otherwise a User-Agent starting with "curl",
// "Wget" or "Mozilla/5.0" gets pretty JSON.
bool prettyPrintRequested(std::string_view rawQuery, std::string_view userAgent);

// The Status message of upstream's 403:
//   <resource>[.<group>] ["<name>"] is forbidden: User "<u>" cannot <verb> resource
//   "<resource>[/<sub>]" in API group "<group>" (in the namespace "<ns>"|at the cluster scope)
//   forbidden: User "<u>" cannot <verb> path "<path>"                (non-resource)
// followed by ": <reason>" when the reason is non-empty. The sentence after "is forbidden: " has
// &, <, > replaced by &amp; &lt; &gt; (the reason is not), and the whole of it then goes through
// fmt.Errorf as a format string, as upstream does, so a '%' becomes e.g. "%!s(MISSING)".
std::string forbiddenMessage(const UserInfo& user, const RequestInfo& info, std::string_view reason);

// 403, Content-Type application/json, X-Content-Type-Options nosniff, a Status with reason
// Forbidden and details {name, group, kind: resource} (present but empty for non-resource).
HttpErrorResponse forbiddenResponse(const UserInfo& user, const RequestInfo& info,
                                    std::string_view reason,
                                    JsonStyle style = JsonStyle::kCompact);

// 500 from responsewriters.InternalError via http.Error: Content-Type "text/plain;
// charset=utf-8", X-Content-Type-Options nosniff, body
//   Internal Server Error: "<request uri, %q>": <error>\n
// with &, <, > HTML-escaped over the whole line. `requestUri` is the request target exactly as
// received; `error` is the Go error text (for a SAR failure, the transport error; for
// allowed&&denied, webhookDecisionFromStatus().error; for a RequestInfo failure,
// "failed to create RequestInfo: " + message).
HttpErrorResponse internalErrorResponse(std::string_view requestUri, std::string_view error);

}  // namespace aaproxy
