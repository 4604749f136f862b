// Front-proxy (request header) authentication.
#include "authn/request_header_authenticator.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "authn/x509_verifier.h"

namespace aaproxy {
namespace {

absl::StatusOr<std::vector<std::string>> trimHeaders(const std::vector<std::string>& names) {
  std::vector<std::string> out;
  for (const std::string& name : names) {
    std::string trimmed(absl::StripAsciiWhitespace(name));
    if (trimmed.empty()) {
      // Go's %q of the untrimmed name.
      return absl::InvalidArgumentError(absl::StrCat("empty header \"", name, "\""));
    }
    out.push_back(std::move(trimmed));
  }
  return out;
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

}  // namespace

std::optional<std::string> pathUnescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) {
      return std::nullopt;
    }
    int hi = hexValue(s[i + 1]);
    int lo = hexValue(s[i + 2]);
    if (hi < 0 || lo < 0) {
      return std::nullopt;
    }
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

absl::StatusOr<std::unique_ptr<RequestHeaderAuthenticator>> RequestHeaderAuthenticator::create(
    RequestHeaderConfig config, Clock clock) {
  for (std::vector<std::string>* names : {&config.usernameHeaders, &config.uidHeaders,
                                          &config.groupHeaders, &config.extraHeaderPrefixes}) {
    absl::StatusOr<std::vector<std::string>> trimmed = trimHeaders(*names);
    if (!trimmed.ok()) {
      return trimmed.status();
    }
    *names = *std::move(trimmed);
  }
  return std::unique_ptr<RequestHeaderAuthenticator>(
      new RequestHeaderAuthenticator(std::move(config), std::move(clock)));
}

std::optional<UserInfo> RequestHeaderAuthenticator::userFromHeaders(
    const HeaderMap& headers) const {
  // Go's Header.Get: the first line of each configured header; the first non-empty one wins.
  auto firstNonEmpty = [&headers](const std::vector<std::string>& names) -> std::string {
    for (const std::string& name : names) {
      std::optional<std::string_view> value = headers.get(name);
      if (value && !value->empty()) {
        return std::string(*value);
      }
    }
    return {};
  };

  UserInfo user;
  user.name = firstNonEmpty(config_.usernameHeaders);
  if (user.name.empty()) {
    return std::nullopt;
  }
  user.uid = firstNonEmpty(config_.uidHeaders);
  for (const std::string& name : config_.groupHeaders) {
    for (std::string_view value : headers.getAll(name)) {
      if (!value.empty()) {
        user.groups.emplace_back(value);
      }
    }
  }
  // Prefixes outer, header lines inner: values keep the prefix order, as upstream's newExtra.
  // Empty values are kept (upstream appends every value of a matching header).
  for (const std::string& prefix : config_.extraHeaderPrefixes) {
    for (const Header& h : headers.entries()) {
      if (!startsWithIgnoreCase(h.name, prefix)) {
        continue;
      }
      std::string rawKey = absl::AsciiStrToLower(
          absl::string_view(h.name.data() + prefix.size(), h.name.size() - prefix.size()));
      std::optional<std::string> key = pathUnescape(rawKey);
      user.extra[key ? *key : rawKey].push_back(h.value);
    }
  }
  return user;
}

AuthenticationResult RequestHeaderAuthenticator::authenticate(
    const AuthenticationRequest& request) const {
  if (request.peer.leaf == nullptr || config_.clientCa == nullptr) {
    return AuthenticationResult::noOpinion();
  }
  // The Verifier returns Go's error unwrapped (unlike the x509 authenticator).
  if (absl::Status s = verifyClientCertificate(*config_.clientCa, request.peer, clock_());
      !s.ok()) {
    return AuthenticationResult::failed(std::string(s.message()));
  }
  if (absl::Status s = checkAllowedCommonName(request.peer.leaf, config_.allowedNames); !s.ok()) {
    return AuthenticationResult::failed(std::string(s.message()));
  }
  std::optional<UserInfo> user = userFromHeaders(request.headers);
  if (!user) {
    return AuthenticationResult::noOpinion();
  }
  return AuthenticationResult::authenticated(*std::move(user));
}

}  // namespace aaproxy
