// Mirrors union.New(privilegedGroups, path.NewAuthorizer, ..., webhook) from
// k8s.io/apiserver's DelegatingAuthorizationOptions, with the static policy inserted.
#include "authz/authorizer.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "authz/go_text.h"

namespace aaproxy {

absl::StatusOr<AuthorizationMode> parseAuthorizationMode(std::string_view flag) {
  if (flag == "static") {
    return AuthorizationMode::kStatic;
  }
  if (flag == "webhook") {
    return AuthorizationMode::kWebhook;
  }
  if (flag == "static,webhook") {
    return AuthorizationMode::kStaticThenWebhook;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "invalid --authorization-mode ", goQuote(flag), ": want static, webhook or static,webhook"));
}

absl::StatusOr<std::unique_ptr<Authorizer>> Authorizer::create(AuthorizerOptions options) {
  if (options.mode != AuthorizationMode::kWebhook && options.policy == nullptr) {
    return absl::InvalidArgumentError(
        "--authorization-mode with static needs --authorization-policy-file");
  }
  std::unique_ptr<Authorizer> a(new Authorizer(std::move(options)));
  for (const std::string& raw : a->options_.alwaysAllowPaths) {
    std::string_view p = raw;
    if (!p.empty() && p[0] == '/') {
      p.remove_prefix(1);
    }
    if (p.empty()) {
      a->exactPaths_.emplace_back();
      continue;
    }
    if (p.substr(0, p.size() - 1).find('*') != std::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("only trailing * allowed in ", goQuote(p)));
    }
    if (p.back() == '*') {
      a->prefixPaths_.emplace_back(p.substr(0, p.size() - 1));
    } else {
      a->exactPaths_.emplace_back(p);
    }
  }
  return a;
}

AuthorizationVerdict Authorizer::authorize(const UserInfo& user, const RequestInfo& info) const {
  using Kind = AuthorizationVerdict::Kind;
  for (const std::string& g : user.groups) {
    if (std::find(options_.privilegedGroups.begin(), options_.privilegedGroups.end(), g) !=
        options_.privilegedGroups.end()) {
      return {Kind::kAllow, "", ""};
    }
  }
  if (!info.isResourceRequest) {
    std::string_view pth = info.path;
    if (!pth.empty() && pth[0] == '/') {
      pth.remove_prefix(1);
    }
    if (std::find(exactPaths_.begin(), exactPaths_.end(), pth) != exactPaths_.end()) {
      return {Kind::kAllow, "", ""};
    }
    for (const std::string& prefix : prefixPaths_) {
      if (pth.substr(0, prefix.size()) == prefix) {
        return {Kind::kAllow, "", ""};
      }
    }
  }
  if (options_.mode != AuthorizationMode::kWebhook && options_.policy->allows(user, info)) {
    return {Kind::kAllow, "", ""};
  }
  if (options_.mode == AuthorizationMode::kStatic) {
    return {Kind::kForbidden, "", ""};  // every authorizer had no opinion
  }
  return {Kind::kNeedsSubjectAccessReview, "", ""};
}

AuthorizationVerdict Authorizer::finishWithSubjectAccessReview(
    const absl::StatusOr<SubjectAccessReviewStatus>& sar) const {
  using Kind = AuthorizationVerdict::Kind;
  if (!sar.ok()) {
    // The delegated webhook answers (NoOpinion, "", err); the union keeps the error and
    // withAuthorization turns "not allowed with an error" into a 500.
    return {Kind::kInternalError, "", std::string(sar.status().message())};
  }
  WebhookDecision d = webhookDecisionFromStatus(*sar);
  if (d.decision == AuthorizationDecision::kAllow) {
    return {Kind::kAllow, d.reason, ""};  // allowed wins even with an error upstream
  }
  if (!d.error.empty()) {
    return {Kind::kInternalError, d.reason, d.error};
  }
  // Deny, or no opinion from everyone: 403 with the joined reasons (only the SAR gives one).
  return {Kind::kForbidden, d.reason, ""};
}

std::chrono::nanoseconds Authorizer::subjectAccessReviewCacheTtl(
    const RequestInfo& info, const SubjectAccessReviewStatus& status) const {
  if (!shouldCacheSubjectAccessReview(info)) {
    return std::chrono::nanoseconds::zero();
  }
  return status.allowed ? options_.authorizedTtl : options_.unauthorizedTtl;
}

}  // namespace aaproxy
