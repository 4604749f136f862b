// User impersonation (Impersonate-User/-Group/-Uid/-Extra-*), as k8s.io/apiserver's legacy
// WithImpersonation filter: the permission checks to make and the identity the request then runs as.
//
// Pure logic, no I/O. Upstream runs it after authentication and before authorization, so the
// request's own SAR is made for the impersonated user:
//
//   auto plan = planImpersonation(request.headers);
//   if (!plan.ok()) -> impersonationErrorResponse(plan.status(), style)          // 400
//   removeImpersonationHeaders(request.headers);                                   // always
//   if (plan->requested) {
//     for (const ImpersonationCheck& check : plan->checks) {                      // in order
//       verdict = authorizer.authorize(requestor, check.attributes) (+ SAR via the usual
//                 cache when kNeedsSubjectAccessReview, keyed on requestor + check.attributes);
//       kAllow: next check;
//       kForbidden or kInternalError: stop with
//         forbiddenResponse(requestor, check.attributes, verdict.reason, style)   // 403
//         (upstream answers 403, not 500, even when the SAR call itself failed).
//     }
//     user = plan->impersonated;
//   }
//   then authorize the request itself as `user`.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "authz/forbidden.h"
#include "authz/request_info.h"
#include "k8s/header_map.h"
#include "k8s/status.h"
#include "k8s/user_info.h"

namespace aaproxy {

inline constexpr char kImpersonateUserHeader[] = "Impersonate-User";
inline constexpr char kImpersonateGroupHeader[] = "Impersonate-Group";
inline constexpr char kImpersonateUidHeader[] = "Impersonate-Uid";
inline constexpr char kImpersonateExtraHeaderPrefix[] = "Impersonate-Extra-";

// What one impersonation request asks for (upstream's ObjectReference kinds).
enum class ImpersonationKind { kServiceAccount, kUser, kGroup, kUserExtra, kUid };

// One permission check the caller must make for the *authenticated* user (a SubjectAccessReview
// unless the synchronous chain decides). `attributes` is a resource request with verb
// "impersonate":
//   kUser:           group "",                      resource "users",           name = user
//   kServiceAccount: group "",                      resource "serviceaccounts", name = SA name,
//                                                   namespace = SA namespace
//   kGroup:          group "",                      resource "groups",          name = group
//   kUserExtra:      group "authentication.k8s.io", version "v1", resource "userextras",
//                    subresource = extra key, name = one value
//   kUid:            group "authentication.k8s.io", version "v1", resource "uids", name = uid
struct ImpersonationCheck {
  ImpersonationKind kind = ImpersonationKind::kUser;
  RequestInfo attributes;
};

struct ImpersonationPlan {
  // Upstream's len(impersonationRequests) > 0: a non-empty Impersonate-User (with anything else).
  // An empty Impersonate-User alone is not a request: the call runs as the authenticated user.
  bool requested = false;
  // Upstream's order: the user (or service account), each Impersonate-Group line, each extra
  // value (grouped by header name in first-appearance order; upstream iterates a Go map, so any
  // order across different keys is upstream's), then the uid. Every one must be allowed.
  std::vector<ImpersonationCheck> checks;
  // The identity the request runs as once every check passed (empty when !requested):
  //  - name: Impersonate-User ("system:serviceaccount:<ns>:<name>" kept as given);
  //  - groups: the Impersonate-Group values in order, or, when there are none and the user is a
  //    service account, ["system:serviceaccounts", "system:serviceaccounts:<ns>"]; then
  //    "system:authenticated" appended unless the user is system:anonymous or the groups already
  //    hold system:authenticated or system:unauthenticated; for system:anonymous,
  //    "system:unauthenticated" appended unless present;
  //  - uid: Impersonate-Uid; extra: key -> values of the Impersonate-Extra-<key> lines.
  UserInfo impersonated;
};

// Reads the Impersonate-* headers (names case-insensitive; Impersonate-User and Impersonate-Uid
// use their first line; every Impersonate-Group line is one group, empty ones included). Extra
// keys are the rest of the header name lowercased and then url.PathUnescape'd; a key that does
// not unescape is kept lowercased as is.
//
// Error: InvalidArgument when groups, extras or a uid are requested without a (non-empty) user.
// Its message is upstream's apierrors.NewBadRequest text, e.g.
//   requested [{Group  some-group    }] without impersonating a user
// (Go's %v of the []ObjectReference built so far); answer it with impersonationErrorResponse().
absl::StatusOr<ImpersonationPlan> planImpersonation(const HeaderMap& headers);

// True for Impersonate-User, Impersonate-Group, Impersonate-Uid and Impersonate-Extra-*
// (ASCII case-insensitive).
bool isImpersonationHeader(std::string_view name);

// The names (as received, one per matching line) of the headers to strip before forwarding.
std::vector<std::string> impersonationHeaderNames(const HeaderMap& headers);

// Removes every impersonation header line; returns how many were removed. Call it whether or not
// impersonation was requested, so the backend never sees an Impersonate-* header.
size_t removeImpersonationHeaders(HeaderMap& headers);

// The 400 for a planImpersonation() error, as upstream's responsewriters.RespondWithError with
// apierrors.NewBadRequest: Content-Type application/json and a Status
//   {"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
//    "message":"<status.message()>","reason":"BadRequest","code":400}
// (no details; compact with a trailing newline, or pretty per prettyPrintRequested()).
HttpErrorResponse impersonationErrorResponse(const absl::Status& status,
                                             JsonStyle style = JsonStyle::kCompact);

// The 403 message when a check is denied (or the authorizer failed): upstream calls
// responsewriters.Forbidden(actingAsAttributes, ..., reason) with the authorizer's reason, so
// this is forbiddenMessage(requestor, check.attributes, reason), e.g.
//   users "tester" is forbidden: User "dev" cannot impersonate resource "users" in API group ""
//   at the cluster scope: deny by default
// forbiddenResponse(requestor, check.attributes, reason, style) builds the whole response.
std::string impersonationForbiddenMessage(const UserInfo& requestor,
                                          const ImpersonationCheck& check,
                                          std::string_view reason);

}  // namespace aaproxy
