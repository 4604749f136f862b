// SubjectAccessReview (authorization.k8s.io/v1) request bodies and response parsing, matching
// k8s.io/apiserver's webhook authorizer (plugin/pkg/authorizer/webhook/webhook.go).
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "authz/request_info.h"
#include "k8s/user_info.h"

namespace aaproxy {

inline constexpr char kSubjectAccessReviewPath[] =
    "/apis/authorization.k8s.io/v1/subjectaccessreviews";

// json.Marshal(SubjectAccessReviewSpec): the "spec" of the body, and upstream's cache key (ours
// is appendSubjectAccessReviewCacheKey below, equal exactly when this is).
// Field order resourceAttributes|nonResourceAttributes, user, groups, extra (keys sorted), uid;
// resourceAttributes: namespace, verb, group, version, resource, subresource, name,
// fieldSelector{requirements}, labelSelector{requirements}; empty fields omitted.
std::string subjectAccessReviewSpecJson(const UserInfo& user, const RequestInfo& info);

// The decision cache's key: every field of the spec above, each string and list
// length-prefixed. Two requests get the same key exactly when their specs are equal, as with
// upstream's key (json.Marshal of the spec), without JSON escaping on every request. (Invalid
// UTF-8, which JSON turns into U+FFFD, keeps its bytes here: such specs only get separate
// entries.) Appends to `out`, so a caller can reuse one buffer.
void appendSubjectAccessReviewCacheKey(std::string& out, const UserInfo& user,
                                       const RequestInfo& info);

// The POST body client-go sends: json.Encoder output of the whole object, so a trailing "\n":
// {"kind":"SubjectAccessReview","apiVersion":"authorization.k8s.io/v1","metadata":{},
//  "spec":{...},"status":{"allowed":false}}
// metadata is "{}": apimachinery omits the zero creationTimestamp since kubernetes#130989
// (older client-go sent {"creationTimestamp":null}).
std::string subjectAccessReviewRequestBody(const UserInfo& user, const RequestInfo& info);

// Upstream skips the cache when the requester-controlled attributes (namespace, verb, group,
// version, resource, subresource, name, path) add up to 10000 bytes or more.
bool shouldCacheSubjectAccessReview(const RequestInfo& info);

// SubjectAccessReviewStatus: what gets cached (upstream caches the status, both-true included).
struct SubjectAccessReviewStatus {
  bool allowed = false;
  bool denied = false;
  std::string reason;
  std::string evaluationError;

  bool operator==(const SubjectAccessReviewStatus&) const = default;
};

// Parses a 2xx SubjectAccessReview response body (simdjson). Missing or null fields keep their
// zero value, as encoding/json does; malformed JSON or a wrongly typed field is an error.
absl::StatusOr<SubjectAccessReviewStatus> parseSubjectAccessReviewResponse(std::string_view body);

enum class AuthorizationDecision { kAllow, kDeny, kNoOpinion };

// The webhook authorizer's (decision, reason, error) triple.
struct WebhookDecision {
  AuthorizationDecision decision = AuthorizationDecision::kNoOpinion;
  std::string reason;
  // Non-empty when upstream returns an error with the decision: allowed && denied gives
  // (Deny, reason, "webhook subject access review returned both allow and deny response").
  std::string error;
  // status.evaluationError, informational: upstream does not turn it into an error.
  std::string evaluationError;
};

WebhookDecision webhookDecisionFromStatus(const SubjectAccessReviewStatus& status);

}  // namespace aaproxy
