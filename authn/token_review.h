// TokenReview (authentication.k8s.io/v1) bodies and results, as k8s.io/apiserver's webhook
// token authenticator (plugin/pkg/authenticator/token/webhook) and its cache use them. The
// HTTP call itself (POST /apis/authentication.k8s.io/v1/tokenreviews, retries, timeout) belongs
// to the caller.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "k8s/user_info.h"

namespace aaproxy {

inline constexpr char kTokenReviewPath[] = "/apis/authentication.k8s.io/v1/tokenreviews";

// The request body client-go's typed client sends for the webhook:
// {"kind":"TokenReview","apiVersion":"authentication.k8s.io/v1","metadata":{},
//  "spec":{"token":"..","audiences":[..]},"status":{"user":{}}}
// (`audiences` omitted when empty; strings escaped as Go's encoding/json does). Current
// apimachinery tags ObjectMeta.creationTimestamp `omitempty,omitzero`, so the zero timestamp is
// omitted; older client-go sent "metadata":{"creationTimestamp":null}. The apiserver accepts
// both.
std::string tokenReviewRequestBody(std::string_view token,
                                   const std::vector<std::string>& audiences);

// `.status` of a TokenReview response.
struct TokenReviewStatus {
  bool authenticated = false;
  UserInfo user;
  std::vector<std::string> audiences;
  std::string error;
};

// Parses a TokenReview response body (2xx). Missing or null fields are zero values, as Go's
// json decoding; a field of the wrong JSON type is an error.
absl::StatusOr<TokenReviewStatus> parseTokenReviewResponse(std::string_view body);

struct TokenReviewResult {
  enum class Outcome {
    kAuthenticated,
    // Not authenticated and no error: the bearer authenticator reports "invalid bearer token".
    kUnauthenticated,
    // The review failed (transport, non-2xx, unparsable body) or status.error was set.
    kError,
  };
  Outcome outcome = Outcome::kUnauthenticated;
  UserInfo user;
  std::vector<std::string> audiences;  // The audiences the token is valid for (when checked).
  std::string error;

  // Upstream caches successes and plain failures, never errors (cacheErrs=false).
  bool cacheable() const { return outcome != Outcome::kError; }

  static TokenReviewResult failed(std::string error) {
    return {Outcome::kError, {}, {}, std::move(error)};
  }
};

// The webhook authenticator's decision. With `apiAudiences` configured, the audiences the
// review returned (or, when it returned none, `apiAudiences` themselves) must intersect
// `apiAudiences`, else kUnauthenticated. Then: not authenticated -> kError with status.error if
// set, else kUnauthenticated; authenticated -> the user as returned.
TokenReviewResult interpretTokenReview(const TokenReviewStatus& status,
                                       const std::vector<std::string>& apiAudiences);

// Cache keys that never contain the token: HMAC-SHA256, with a random per-process key, over the
// length-prefixed token, the audience count and each length-prefixed audience (upstream's
// cached_token_authenticator keyFunc). Hex-encoded. Thread-safe (immutable).
class TokenReviewCacheKeyer {
 public:
  TokenReviewCacheKeyer();  // Random 32-byte key.
  explicit TokenReviewCacheKeyer(std::string hmacKey) : hmacKey_(std::move(hmacKey)) {}

  std::string key(std::string_view token, const std::vector<std::string>& audiences) const;

 private:
  std::string hmacKey_;
};

}  // namespace aaproxy
