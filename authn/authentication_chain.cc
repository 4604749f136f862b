// Authentication chain: union, group adder, bearer extraction, anonymous fallback.
#include "authn/authentication_chain.h"

#include <set>

#include "absl/strings/ascii.h"

namespace aaproxy {

std::string ChainDecision::errorMessage() const {
  if (errors.empty()) {
    return {};
  }
  if (errors.size() == 1) {
    return errors.front();
  }
  std::set<std::string> seen;
  std::string joined;
  for (const std::string& e : errors) {
    if (!seen.insert(e).second) {
      continue;
    }
    if (seen.size() > 1) {
      joined += ", ";
    }
    joined += e;
  }
  return seen.size() == 1 ? joined : "[" + joined + "]";
}

std::optional<std::string> bearerToken(const HeaderMap& headers) {
  std::optional<std::string_view> value = headers.get("Authorization");
  if (!value) {
    return std::nullopt;
  }
  absl::string_view trimmed = absl::StripAsciiWhitespace(absl::string_view(value->data(), value->size()));
  if (trimmed.empty()) {
    return std::nullopt;
  }
  size_t firstSpace = trimmed.find(' ');
  if (firstSpace == absl::string_view::npos) {
    return std::nullopt;  // Fewer than two parts.
  }
  std::string scheme = absl::AsciiStrToLower(trimmed.substr(0, firstSpace));
  if (scheme != "bearer") {
    return std::nullopt;
  }
  absl::string_view rest = trimmed.substr(firstSpace + 1);
  absl::string_view token = rest.substr(0, rest.find(' '));  // A third part is ignored.
  if (token.empty()) {
    return std::nullopt;
  }
  return std::string(token);
}

void addAuthenticatedGroup(UserInfo& user) {
  if (user.name == kAnonymousUser) {
    return;
  }
  for (const std::string& group : user.groups) {
    if (group == kAuthenticatedGroup || group == kUnauthenticatedGroup) {
      return;
    }
  }
  user.groups.push_back(kAuthenticatedGroup);
}

UserInfo anonymousUser() { return UserInfo{kAnonymousUser, "", {kUnauthenticatedGroup}, {}}; }

ChainDecision AuthenticationChain::authenticate(const AuthenticationRequest& request) const {
  std::vector<std::string> errors;
  for (const std::shared_ptr<const Authenticator>& authenticator : config_.authenticators) {
    AuthenticationResult r = authenticator->authenticate(request);
    switch (r.outcome) {
      case AuthenticationResult::Outcome::kFailed:
        errors.push_back(std::move(r.error));
        break;
      case AuthenticationResult::Outcome::kAuthenticated: {
        ChainDecision d;
        d.kind = ChainDecision::Kind::kAuthenticated;
        d.user = std::move(r.user);
        addAuthenticatedGroup(d.user);
        return d;
      }
      case AuthenticationResult::Outcome::kNoOpinion:
        break;
    }
  }
  if (config_.tokenReviewEnabled) {
    if (std::optional<std::string> token = bearerToken(request.headers)) {
      ChainDecision d;
      d.kind = ChainDecision::Kind::kNeedsTokenReview;
      d.token = *std::move(token);
      d.errors = std::move(errors);
      return d;
    }
  }
  return decideWithoutCredentials(std::move(errors));
}

ChainDecision AuthenticationChain::finishWithTokenReview(const ChainDecision& pending,
                                                         const TokenReviewResult& review) const {
  ChainDecision d;
  if (review.outcome == TokenReviewResult::Outcome::kAuthenticated) {
    d.kind = ChainDecision::Kind::kAuthenticated;
    d.user = review.user;
    addAuthenticatedGroup(d.user);
    return d;
  }
  std::vector<std::string> errors = pending.errors;
  errors.push_back(review.outcome == TokenReviewResult::Outcome::kError && !review.error.empty()
                       ? review.error
                       : kInvalidBearerTokenError);
  return decideWithoutCredentials(std::move(errors));
}

ChainDecision AuthenticationChain::decideWithoutCredentials(
    std::vector<std::string> errors) const {
  ChainDecision d;
  // FailOnError union with anonymous: any error is a 401, even with anonymous enabled.
  if (errors.empty() && config_.anonymousEnabled) {
    d.kind = ChainDecision::Kind::kAnonymous;
    d.user = anonymousUser();
    return d;
  }
  d.kind = ChainDecision::Kind::kUnauthorized;
  d.errors = std::move(errors);
  return d;
}

}  // namespace aaproxy
