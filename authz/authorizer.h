// The authorization chain, as k8s.io/apiserver's union of delegated authorizers: privileged
// groups, always-allow paths, then (here) the static policy, then a SubjectAccessReview.
// The first Allow or Deny wins; the SAR call itself is asynchronous and done by the caller.
//
//   auto verdict = authorizer.authorize(user, info);
//   switch (verdict.kind) {
//     case kAllow: forward; case kForbidden: forbiddenResponse(user, info, verdict.reason);
//     case kInternalError: internalErrorResponse(requestUri, verdict.error);
//     case kNeedsSubjectAccessReview:
//       appendSubjectAccessReviewCacheKey(key, user, info); look it up in a
//       CoalescingCache<SubjectAccessReviewStatus>; on a miss POST
//       subjectAccessReviewRequestBody(user, info), parse with
//       parseSubjectAccessReviewResponse, cache with subjectAccessReviewCacheTtl(), then
//       verdict = authorizer.finishWithSubjectAccessReview(statusOrError) and act as above.
//   }
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "authz/request_info.h"
#include "authz/static_policy.h"
#include "authz/subject_access_review.h"
#include "k8s/user_info.h"

namespace aaproxy {

// --authorization-mode: "static", "webhook" or "static,webhook".
enum class AuthorizationMode { kStatic, kWebhook, kStaticThenWebhook };
absl::StatusOr<AuthorizationMode> parseAuthorizationMode(std::string_view flag);

struct AuthorizerOptions {
  AuthorizationMode mode = AuthorizationMode::kWebhook;
  // --authorization-always-allow-groups (upstream default: system:masters). Exact match.
  std::vector<std::string> privilegedGroups = {"system:masters"};
  // --authorization-always-allow-paths: non-resource requests only; a trailing "*" is a prefix;
  // a leading "/" is ignored; "*" anywhere else is an error (as path.NewAuthorizer).
  std::vector<std::string> alwaysAllowPaths = {"/healthz", "/readyz", "/livez"};
  // Required for kStatic and kStaticThenWebhook.
  std::shared_ptr<const StaticPolicy> policy;
  // --authorization-webhook-cache-authorized-ttl / -unauthorized-ttl.
  std::chrono::nanoseconds authorizedTtl = std::chrono::seconds(10);
  std::chrono::nanoseconds unauthorizedTtl = std::chrono::seconds(10);
};

struct AuthorizationVerdict {
  enum class Kind {
    kAllow,
    kForbidden,                 // 403: forbiddenResponse(user, info, reason)
    kNeedsSubjectAccessReview,  // ask kube-apiserver, then finishWithSubjectAccessReview()
    kInternalError,             // 500: internalErrorResponse(requestUri, error)
  };
  Kind kind = Kind::kForbidden;
  std::string reason;
  std::string error;
};

class Authorizer {
 public:
  static absl::StatusOr<std::unique_ptr<Authorizer>> create(AuthorizerOptions options);

  // The synchronous part of the chain. Thread-safe (immutable after create()).
  AuthorizationVerdict authorize(const UserInfo& user, const RequestInfo& info) const;

  // Finishes a kNeedsSubjectAccessReview verdict with the SAR outcome: a parsed status, or the
  // error after retries (its message becomes the 500 body's error text).
  AuthorizationVerdict finishWithSubjectAccessReview(
      const absl::StatusOr<SubjectAccessReviewStatus>& sar) const;

  // How long to cache a SAR status: 0 (do not cache) when upstream would skip the cache for
  // oversized attributes; else the authorized TTL when status.allowed, the unauthorized one
  // otherwise (upstream keys the TTL on Allowed alone). Errors are never cached.
  std::chrono::nanoseconds subjectAccessReviewCacheTtl(const RequestInfo& info,
                                                       const SubjectAccessReviewStatus& status) const;

  const AuthorizerOptions& options() const { return options_; }

 private:
  explicit Authorizer(AuthorizerOptions options) : options_(std::move(options)) {}

  AuthorizerOptions options_;
  std::vector<std::string> exactPaths_;     // without the leading "/"
  std::vector<std::string> prefixPaths_;    // without the leading "/" and the trailing "*"
};

}  // namespace aaproxy
