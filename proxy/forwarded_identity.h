// What the backend learns about the caller, the same over HTTP/1.1 and HTTP/2.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "config/proxy_options.h"
#include "k8s/header_map.h"
#include "k8s/user_info.h"

namespace aaproxy {

// Removes from `headers` every identity field a client could have sent (X-Remote-*, and the
// --auth-header-fields names when enabled), then appends to `lines` ("Name: value\r\n") the
// identity aa-proxy vouches for: X-Remote-* in client-go's format and, when enabled, the user
// and the joined groups under the configured names. A public route (`send_identity` false)
// gets no identity at all. Fails, appending nothing, for a value HTTP cannot carry.
absl::Status prepareForwardedIdentity(HeaderMap& headers, const UserInfo& user, bool send_identity,
                                      const AuthHeaderFields& fields, std::string& lines);

}  // namespace aaproxy
