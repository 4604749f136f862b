// Mirrors buildImpersonationRequests and WithImpersonation in k8s.io/apiserver's
// pkg/endpoints/filters/impersonation (legacy mode; constrained impersonation is feature-gated off).
#include "authz/impersonation.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "authz/go_text.h"

namespace aaproxy {
namespace {

constexpr char kServiceAccountUsernamePrefix[] = "system:serviceaccount:";
constexpr char kAllServiceAccountsGroup[] = "system:serviceaccounts";
constexpr char kServiceAccountGroupPrefix[] = "system:serviceaccounts:";
constexpr char kAuthenticationGroup[] = "authentication.k8s.io";
constexpr char kAuthenticationVersion[] = "v1";

std::string asciiLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c + ('a' - 'A'));
    }
  }
  return out;
}

// One label of validation.IsDNS1123Label's regex: [a-z0-9]([-a-z0-9]*[a-z0-9])?
bool isDns1123LabelPattern(std::string_view s) {
  if (s.empty()) {
    return false;
  }
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(s.front()) || !alnum(s.back())) {
    return false;
  }
  return std::all_of(s.begin(), s.end(), [&](char c) { return alnum(c) || c == '-'; });
}

// apimachinery ValidateNamespaceName (NameIsDNSLabel, no prefix): IsDNS1123Label.
bool isValidNamespaceName(std::string_view s) {
  return s.size() <= 63 && isDns1123LabelPattern(s);
}

// apimachinery ValidateServiceAccountName (NameIsDNSSubdomain, no prefix): IsDNS1123Subdomain.
bool isValidServiceAccountName(std::string_view s) {
  if (s.empty() || s.size() > 253) {
    return false;
  }
  size_t start = 0;
  while (true) {
    size_t dot = s.find('.', start);
    std::string_view label =
        s.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (!isDns1123LabelPattern(label)) {
      return false;
    }
    if (dot == std::string_view::npos) {
      return true;
    }
    start = dot + 1;
  }
}

// serviceaccount.SplitUsername: "system:serviceaccount:<ns>:<name>" with exactly one ':' after
// the prefix and both halves valid names. Returns false for anything else.
bool splitServiceAccountUsername(std::string_view username, std::string& ns, std::string& name) {
  std::string_view prefix = kServiceAccountUsernamePrefix;
  if (username.substr(0, prefix.size()) != prefix) {
    return false;
  }
  std::string_view rest = username.substr(prefix.size());
  size_t colon = rest.find(':');
  if (colon == std::string_view::npos || rest.find(':', colon + 1) != std::string_view::npos) {
    return false;
  }
  std::string_view n = rest.substr(0, colon);
  std::string_view sa = rest.substr(colon + 1);
  if (!isValidNamespaceName(n) || !isValidServiceAccountName(sa)) {
    return false;
  }
  ns = std::string(n);
  name = std::string(sa);
  return true;
}

// unescapeExtraKey: url.PathUnescape, keeping the input when it does not decode.
std::string unescapeExtraKey(const std::string& lowered) {
  absl::StatusOr<std::string> key = goUnescape(lowered, /*queryMode=*/false);
  return key.ok() ? *std::move(key) : lowered;
}

ImpersonationCheck makeCheck(ImpersonationKind kind) {
  ImpersonationCheck check;
  check.kind = kind;
  check.attributes.isResourceRequest = true;
  check.attributes.verb = "impersonate";
  switch (kind) {
    case ImpersonationKind::kServiceAccount:
      check.attributes.resource = "serviceaccounts";
      break;
    case ImpersonationKind::kUser:
      check.attributes.resource = "users";
      break;
    case ImpersonationKind::kGroup:
      check.attributes.resource = "groups";
      break;
    case ImpersonationKind::kUserExtra:
      check.attributes.apiGroup = kAuthenticationGroup;
      check.attributes.apiVersion = kAuthenticationVersion;
      check.attributes.resource = "userextras";
      break;
    case ImpersonationKind::kUid:
      check.attributes.apiGroup = kAuthenticationGroup;
      check.attributes.apiVersion = kAuthenticationVersion;
      check.attributes.resource = "uids";
      break;
  }
  return check;
}

// Go's fmt %v of the v1.ObjectReference upstream builds for a check: the struct's fields
// {Kind Namespace Name UID APIVersion ResourceVersion FieldPath} separated by single spaces
// (ObjectReference's String method has a pointer receiver, so fmt does not use it for slice
// elements).
void appendGoObjectReference(std::string& out, const ImpersonationCheck& check) {
  const char* kind = "";
  const char* apiVersion = "";
  switch (check.kind) {
    case ImpersonationKind::kServiceAccount: kind = "ServiceAccount"; break;
    case ImpersonationKind::kUser: kind = "User"; break;
    case ImpersonationKind::kGroup: kind = "Group"; break;
    case ImpersonationKind::kUserExtra:
      kind = "UserExtra";
      apiVersion = "authentication.k8s.io/v1";
      break;
    case ImpersonationKind::kUid:
      kind = "UID";
      apiVersion = "authentication.k8s.io/v1";
      break;
  }
  const RequestInfo& a = check.attributes;
  absl::StrAppend(&out, "{", kind, " ", a.namespaceName, " ", a.name, " ", /*UID*/ "", " ",
                  apiVersion, " ", /*ResourceVersion*/ "", " ", a.subresource, "}");
}

bool contains(const std::vector<std::string>& v, std::string_view s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

}  // namespace

absl::StatusOr<ImpersonationPlan> planImpersonation(const HeaderMap& headers) {
  ImpersonationPlan plan;
  std::vector<ImpersonationCheck>& checks = plan.checks;

  const std::string_view requestedUser = headers.get(kImpersonateUserHeader).value_or("");
  const bool hasUser = !requestedUser.empty();
  if (hasUser) {
    std::string ns;
    std::string name;
    if (splitServiceAccountUsername(requestedUser, ns, name)) {
      ImpersonationCheck check = makeCheck(ImpersonationKind::kServiceAccount);
      check.attributes.namespaceName = std::move(ns);
      check.attributes.name = std::move(name);
      checks.push_back(std::move(check));
    } else {
      ImpersonationCheck check = makeCheck(ImpersonationKind::kUser);
      check.attributes.name = std::string(requestedUser);
      checks.push_back(std::move(check));
    }
  }

  const std::vector<std::string_view> groupValues = headers.getAll(kImpersonateGroupHeader);
  const bool hasGroups = !groupValues.empty();
  for (std::string_view group : groupValues) {
    ImpersonationCheck check = makeCheck(ImpersonationKind::kGroup);
    check.attributes.name = std::string(group);
    checks.push_back(std::move(check));
  }

  // Go's http.Header merges lines whose names differ only in case under one canonical key;
  // group the same way, keeping the first appearance order.
  std::vector<std::pair<std::string, std::vector<std::string_view>>> extraHeaders;
  for (const Header& h : headers.entries()) {
    if (!startsWithIgnoreCase(h.name, kImpersonateExtraHeaderPrefix)) {
      continue;
    }
    std::string lowered = asciiLower(h.name);
    auto it = std::find_if(extraHeaders.begin(), extraHeaders.end(),
                           [&](const auto& e) { return e.first == lowered; });
    if (it == extraHeaders.end()) {
      extraHeaders.emplace_back(std::move(lowered), std::vector<std::string_view>());
      it = std::prev(extraHeaders.end());
    }
    it->second.push_back(h.value);
  }
  const bool hasUserExtra = !extraHeaders.empty();
  constexpr size_t kExtraPrefixLength = sizeof(kImpersonateExtraHeaderPrefix) - 1;
  for (const auto& [loweredName, values] : extraHeaders) {
    const std::string key = unescapeExtraKey(loweredName.substr(kExtraPrefixLength));
    for (std::string_view value : values) {
      ImpersonationCheck check = makeCheck(ImpersonationKind::kUserExtra);
      check.attributes.subresource = key;
      check.attributes.name = std::string(value);
      checks.push_back(std::move(check));
    }
  }

  const std::string_view requestedUid = headers.get(kImpersonateUidHeader).value_or("");
  const bool hasUid = !requestedUid.empty();
  if (hasUid) {
    ImpersonationCheck check = makeCheck(ImpersonationKind::kUid);
    check.attributes.name = std::string(requestedUid);
    checks.push_back(std::move(check));
  }

  if ((hasGroups || hasUserExtra || hasUid) && !hasUser) {
    std::string message = "requested [";
    for (size_t i = 0; i < checks.size(); ++i) {
      if (i > 0) {
        message += ' ';
      }
      appendGoObjectReference(message, checks[i]);
    }
    message += "] without impersonating a user";
    return absl::InvalidArgumentError(message);
  }
  if (checks.empty()) {
    return plan;
  }
  plan.requested = true;

  // WithImpersonation: build the new identity while walking the checks.
  UserInfo& user = plan.impersonated;
  const bool groupsSpecified = hasGroups;
  for (const ImpersonationCheck& check : checks) {
    const RequestInfo& a = check.attributes;
    switch (check.kind) {
      case ImpersonationKind::kServiceAccount:
        user.name = absl::StrCat(kServiceAccountUsernamePrefix, a.namespaceName, ":", a.name);
        if (!groupsSpecified) {
          user.groups = {kAllServiceAccountsGroup,
                         absl::StrCat(kServiceAccountGroupPrefix, a.namespaceName)};
        }
        break;
      case ImpersonationKind::kUser:
        user.name = a.name;
        break;
      case ImpersonationKind::kGroup:
        user.groups.push_back(a.name);
        break;
      case ImpersonationKind::kUserExtra:
        user.extra[a.subresource].push_back(a.name);
        break;
      case ImpersonationKind::kUid:
        user.uid = a.name;
        break;
    }
  }
  if (user.name != kAnonymousUser) {
    if (!contains(user.groups, kAuthenticatedGroup) &&
        !contains(user.groups, kUnauthenticatedGroup)) {
      user.groups.push_back(kAuthenticatedGroup);
    }
  } else if (!contains(user.groups, kUnauthenticatedGroup)) {
    user.groups.push_back(kUnauthenticatedGroup);
  }
  return plan;
}

bool isImpersonationHeader(std::string_view name) {
  return equalsIgnoreCase(name, kImpersonateUserHeader) ||
         equalsIgnoreCase(name, kImpersonateGroupHeader) ||
         equalsIgnoreCase(name, kImpersonateUidHeader) ||
         startsWithIgnoreCase(name, kImpersonateExtraHeaderPrefix);
}

std::vector<std::string> impersonationHeaderNames(const HeaderMap& headers) {
  std::vector<std::string> names;
  for (const Header& h : headers.entries()) {
    if (isImpersonationHeader(h.name)) {
      names.push_back(h.name);
    }
  }
  return names;
}

size_t removeImpersonationHeaders(HeaderMap& headers) {
  return headers.removeIf([](const Header& h) { return isImpersonationHeader(h.name); });
}

HttpErrorResponse impersonationErrorResponse(const absl::Status& status, JsonStyle style) {
  HttpErrorResponse r;
  r.code = 400;
  r.headers = {{"Content-Type", "application/json"}};
  const absl::string_view message = status.message();
  r.body = failureStatusJson(400, "BadRequest", std::string_view(message.data(), message.size()),
                             std::nullopt, style);
  return r;
}

std::string impersonationForbiddenMessage(const UserInfo& requestor,
                                          const ImpersonationCheck& check,
                                          std::string_view reason) {
  return forbiddenMessage(requestor, check.attributes, reason);
}

}  // namespace aaproxy
