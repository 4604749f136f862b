#include "proxy/forwarded_identity.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "authn/identity_headers.h"

namespace aaproxy {

absl::Status prepareForwardedIdentity(HeaderMap& headers, const UserInfo& user, bool send_identity,
                                      const AuthHeaderFields& fields, std::string& lines) {
  removeIdentityHeaders(headers);
  if (fields.enabled) {
    headers.remove(fields.user_field);
    headers.remove(fields.groups_field);
  }
  if (!send_identity) {
    return absl::OkStatus();
  }
  if (absl::Status s = appendIdentityHeaderLines(lines, user); !s.ok()) {
    return s;
  }
  if (fields.enabled) {
    // The values passed appendIdentityHeaderLines' checks, and the separator has no line break.
    // kube-rbac-proxy's default user field is X-Remote-User itself: do not send it twice.
    if (!equalsIgnoreCase(fields.user_field, kRemoteUserHeader)) {
      absl::StrAppend(&lines, fields.user_field, ": ", user.name, "\r\n");
    }
    absl::StrAppend(&lines, fields.groups_field, ": ",
                    absl::StrJoin(user.groups, fields.groups_separator), "\r\n");
  }
  return absl::OkStatus();
}

}  // namespace aaproxy
