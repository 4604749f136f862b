// Identity headers between the proxy and its backend: removing whatever a client sent, and
// writing the authenticated identity the way kube-aggregator does (client-go's
// transport.SetAuthProxyHeaders).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "k8s/header_map.h"
#include "k8s/user_info.h"

namespace aaproxy {

inline constexpr char kRemoteUserHeader[] = "X-Remote-User";
inline constexpr char kRemoteUidHeader[] = "X-Remote-Uid";
inline constexpr char kRemoteGroupHeader[] = "X-Remote-Group";
inline constexpr char kRemoteExtraHeaderPrefix[] = "X-Remote-Extra-";

// The request-header names configured for this proxy (from the ConfigMap or flags).
struct IdentityHeaderNames {
  std::vector<std::string> usernameHeaders;
  std::vector<std::string> uidHeaders;
  std::vector<std::string> groupHeaders;
  std::vector<std::string> extraHeaderPrefixes;
};

// Removes, case-insensitively and every duplicate line: Authorization, X-Remote-User,
// X-Remote-Uid, X-Remote-Group, X-Remote-Extra-*, Impersonate-* (User, Uid, Group, Extra-*),
// and the configured names and prefixes. Returns the number of lines removed.
size_t stripIdentityHeaders(HeaderMap& headers, const IdentityHeaderNames& configured);

// The identity for the backend, as "Name: value\r\n" lines appended to `out`, in client-go's
// SetAuthProxyHeaders format: X-Remote-User, X-Remote-Uid (only when non-empty), one
// X-Remote-Group line per group, one X-Remote-Extra-<escaped key> line per value (keys in map
// order). The caller removes what the client sent with removeIdentityHeaders.
// A value HTTP cannot carry (a control byte other than tab; e.g. a certificate's CN with a
// line break) is refused as Go's transport refuses it: InvalidArgument "invalid header field
// value for \"X-Remote-User\"", and nothing is appended.
absl::Status appendIdentityHeaderLines(std::string& out, const UserInfo& user);

// Removes X-Remote-User, X-Remote-Uid, X-Remote-Group and X-Remote-Extra-* lines
// (case-insensitively); returns how many.
size_t removeIdentityHeaders(HeaderMap& headers);

// client-go's headerKeyEscape: every byte that is not an RFC 7230 token character, and '%'
// itself, becomes %XX (uppercase hex). The inverse is url.PathUnescape after lowercasing.
std::string escapeExtraHeaderKey(std::string_view key);

// Removes bearer-token subprotocols (`base64url.bearer.authorization.k8s.io.<token>`) from every
// Sec-WebSocket-Protocol line, dropping lines left empty: the token authenticated this hop and
// must never reach the backend, whatever the authentication outcome. Returns how many were removed.
size_t stripWebSocketBearerProtocols(HeaderMap& headers);

}  // namespace aaproxy
