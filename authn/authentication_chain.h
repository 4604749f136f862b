// The whole authentication decision for one request, as k8s.io/apiserver's delegating
// authenticator builds it: union(request-header, x509, bearer token) wrapped in the
// AuthenticatedGroupAdder, then (FailOnError) the anonymous authenticator. The TokenReview step
// is asynchronous, so the chain stops at it and is finished with the review's outcome. The token
// authenticators are upstream's two: `Authorization: Bearer` and, for WebSocket upgrades, the
// `base64url.bearer.authorization.k8s.io.<token>` subprotocol (request/websocket/protocol.go).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "authn/authenticator.h"
#include "authn/token_review.h"

namespace aaproxy {

struct AuthenticationChainConfig {
  // Tried in order; upstream's order is request-header (front proxy) first, then x509.
  std::vector<std::shared_ptr<const Authenticator>> authenticators;
  // Whether `Authorization: Bearer` tokens are sent to TokenReview (upstream: when a
  // TokenReview client is configured, i.e. not --authentication-skip-lookup style setups).
  bool tokenReviewEnabled = true;
  // No credentials at all -> system:anonymous (upstream default). Off -> 401.
  bool anonymousEnabled = true;
};

// The bearer token a WebSocket client carries as a subprotocol.
struct WebSocketBearerToken {
  std::string token;
  // The Sec-WebSocket-Protocol value without the token protocol (comma-joined), which replaces
  // the header once the token is accepted.
  std::string remainingProtocols;
};

// upstream websocket.ProtocolAuthenticator's parsing: nullopt unless this is a WebSocket upgrade
// (`Connection` lists upgrade, `Upgrade: websocket`) carrying a token protocol. Every
// Sec-WebSocket-Protocol line is split on commas and trimmed. Errors (upstream's text):
// "multiple base64.bearer.authorization tokens specified", "invalid base64.bearer.authorization
// token encoding" (not unpadded base64url), "invalid base64.bearer.authorization token" (not
// UTF-8), "missing additional subprotocol" (the token protocol is the only one).
absl::StatusOr<std::optional<WebSocketBearerToken>> webSocketBearerToken(const HeaderMap& headers);

struct ChainDecision {
  enum class Kind {
    kAuthenticated,     // `user` (system:authenticated already added).
    kAnonymous,         // `user` is system:anonymous / system:unauthenticated.
    kUnauthorized,      // 401; `errors` may be empty (no credentials, anonymous disabled).
    kNeedsTokenReview,  // Review `token`, then call finishWithTokenReview.
  };
  enum class TokenSource { kAuthorizationHeader, kWebSocketProtocol };

  Kind kind = Kind::kUnauthorized;
  UserInfo user;
  // kNeedsTokenReview: the token to review and where it came from.
  std::string token;
  TokenSource tokenSource = TokenSource::kAuthorizationHeader;
  // Errors of the authenticators that failed so far, in chain order.
  std::vector<std::string> errors;
  // kAuthenticated by a WebSocket subprotocol token: the new Sec-WebSocket-Protocol value (the
  // token protocol removed, as upstream does on success). The proxy must replace the header.
  // (Also set, for the chain's own use, on a kNeedsTokenReview of a WebSocket token.)
  std::optional<std::string> webSocketProtocols;

  // Chain state for finishWithTokenReview: the WebSocket token step that follows a failed
  // Authorization-header token (parsed eagerly so that finishing needs no request).
  std::optional<absl::StatusOr<std::optional<WebSocketBearerToken>>> pendingWebSocketStep;

  // utilerrors.NewAggregate(errors).Error(): "" / the message / "[a, b]" (duplicates dropped).
  std::string errorMessage() const;
};

class AuthenticationChain {
 public:
  explicit AuthenticationChain(AuthenticationChainConfig config) : config_(std::move(config)) {}

  // Synchronous part: runs the certificate authenticators, then either asks for a TokenReview
  // or decides. Never returns kNeedsTokenReview when tokenReviewEnabled is false.
  ChainDecision authenticate(const AuthenticationRequest& request) const;

  // Completes a kNeedsTokenReview decision. Authenticated review -> kAuthenticated; otherwise
  // the review's error (or "invalid bearer token") joins the errors, then, after an
  // Authorization-header token, the WebSocket subprotocol token is tried (which may ask for a
  // second review: kNeedsTokenReview again); else the answer is 401.
  ChainDecision finishWithTokenReview(const ChainDecision& pending,
                                      const TokenReviewResult& review) const;

 private:
  ChainDecision decideWithoutCredentials(std::vector<std::string> errors) const;
  ChainDecision webSocketStep(absl::StatusOr<std::optional<WebSocketBearerToken>> step,
                              std::vector<std::string> errors) const;

  AuthenticationChainConfig config_;
};

// upstream bearertoken: the first Authorization header, trimmed, split on single spaces into at
// most 3 parts; scheme "bearer" case-insensitively; the token is the second part. nullopt (no
// opinion) when absent, another scheme, or an empty token ("Bearer  x" has an empty token).
std::optional<std::string> bearerToken(const HeaderMap& headers);

// upstream AuthenticatedGroupAdder: appends system:authenticated unless the user is
// system:anonymous or already has system:authenticated or system:unauthenticated.
void addAuthenticatedGroup(UserInfo& user);

UserInfo anonymousUser();

inline constexpr char kInvalidBearerTokenError[] = "invalid bearer token";

}  // namespace aaproxy
