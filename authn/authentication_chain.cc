// Authentication chain: union, group adder, bearer extraction, anonymous fallback.
#include "authn/authentication_chain.h"

#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"

namespace aaproxy {
namespace {

constexpr char kWebSocketBearerPrefix[] = "base64url.bearer.authorization.k8s.io.";

bool isSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

// Go's regexp `(^|.*,\s*)upgrade($|\s*,)` on the lowercased Connection value.
bool connectionListsUpgrade(std::string_view value) {
  std::string lower = absl::AsciiStrToLower(absl::string_view(value.data(), value.size()));
  size_t pos = 0;
  while ((pos = lower.find("upgrade", pos)) != std::string::npos) {
    bool startOk = pos == 0;
    if (!startOk) {
      size_t i = pos;
      while (i > 0 && isSpace(lower[i - 1])) {
        --i;
      }
      startOk = i > 0 && lower[i - 1] == ',';
    }
    size_t end = pos + 7;
    bool endOk = end == lower.size();
    if (!endOk) {
      size_t i = end;
      while (i < lower.size() && isSpace(lower[i])) {
        ++i;
      }
      endOk = i < lower.size() && lower[i] == ',';
    }
    if (startOk && endOk) {
      return true;
    }
    pos = end;
  }
  return false;
}

// Go's base64.RawURLEncoding.DecodeString (no padding; '\r' and '\n' are skipped).
std::optional<std::string> decodeRawUrlBase64(std::string_view in) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  size_t n = 0;
  for (char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z') {
      v = c - 'A';
    } else if (c >= 'a' && c <= 'z') {
      v = c - 'a' + 26;
    } else if (c >= '0' && c <= '9') {
      v = c - '0' + 52;
    } else if (c == '-') {
      v = 62;
    } else if (c == '_') {
      v = 63;
    } else if (c == '\r' || c == '\n') {
      continue;
    } else {
      return std::nullopt;
    }
    ++n;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  if (n % 4 == 1) {
    return std::nullopt;
  }
  return out;
}

// Go's utf8.Valid.
bool validUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    int len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > s.size()) {
      return false;
    }
    for (int k = 1; k < len; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) {
        return false;
      }
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))) {
      return false;
    }
    i += len;
  }
  return true;
}

}  // namespace

absl::StatusOr<std::optional<WebSocketBearerToken>> webSocketBearerToken(const HeaderMap& headers) {
  std::optional<std::string_view> connection = headers.get("Connection");
  std::optional<std::string_view> upgrade = headers.get("Upgrade");
  if (!connection || !upgrade || !connectionListsUpgrade(*connection) ||
      absl::AsciiStrToLower(absl::string_view(upgrade->data(), upgrade->size())) != "websocket") {
    return std::optional<WebSocketBearerToken>();
  }
  std::string token;
  bool sawToken = false;
  std::vector<std::string> filtered;
  for (std::string_view line : headers.getAll("Sec-WebSocket-Protocol")) {
    size_t start = 0;
    while (true) {
      size_t comma = line.find(',', start);
      std::string_view raw =
          line.substr(start, comma == std::string_view::npos ? line.npos : comma - start);
      absl::string_view protocol =
          absl::StripAsciiWhitespace(absl::string_view(raw.data(), raw.size()));
      if (!absl::StartsWith(protocol, kWebSocketBearerPrefix)) {
        filtered.emplace_back(protocol);
      } else {
        if (sawToken) {
          return absl::UnauthenticatedError(
              "multiple base64.bearer.authorization tokens specified");
        }
        sawToken = true;
        absl::string_view encoded = protocol.substr(sizeof(kWebSocketBearerPrefix) - 1);
        std::optional<std::string> decoded =
            decodeRawUrlBase64(std::string_view(encoded.data(), encoded.size()));
        if (!decoded) {
          return absl::UnauthenticatedError("invalid base64.bearer.authorization token encoding");
        }
        if (!validUtf8(*decoded)) {
          return absl::UnauthenticatedError("invalid base64.bearer.authorization token");
        }
        token = *std::move(decoded);
      }
      if (comma == std::string_view::npos) {
        break;
      }
      start = comma + 1;
    }
  }
  if (!token.empty() && filtered.empty()) {
    return absl::UnauthenticatedError("missing additional subprotocol");
  }
  if (token.empty()) {
    return std::optional<WebSocketBearerToken>();
  }
  return std::optional<WebSocketBearerToken>(
      WebSocketBearerToken{std::move(token), absl::StrJoin(filtered, ",")});
}

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
  absl::string_view trimmed =
      absl::StripAsciiWhitespace(absl::string_view(value->data(), value->size()));
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
  if (!config_.tokenReviewEnabled) {
    return decideWithoutCredentials(std::move(errors));
  }
  if (std::optional<std::string> token = bearerToken(request.headers)) {
    ChainDecision d;
    d.kind = ChainDecision::Kind::kNeedsTokenReview;
    d.token = *std::move(token);
    d.tokenSource = ChainDecision::TokenSource::kAuthorizationHeader;
    d.errors = std::move(errors);
    d.pendingWebSocketStep = webSocketBearerToken(request.headers);
    return d;
  }
  return webSocketStep(webSocketBearerToken(request.headers), std::move(errors));
}

ChainDecision AuthenticationChain::webSocketStep(
    absl::StatusOr<std::optional<WebSocketBearerToken>> step,
    std::vector<std::string> errors) const {
  if (!step.ok()) {
    errors.emplace_back(step.status().message());
    return decideWithoutCredentials(std::move(errors));
  }
  if (!step->has_value()) {
    return decideWithoutCredentials(std::move(errors));
  }
  ChainDecision d;
  d.kind = ChainDecision::Kind::kNeedsTokenReview;
  d.token = std::move((*step)->token);
  d.tokenSource = ChainDecision::TokenSource::kWebSocketProtocol;
  d.webSocketProtocols = std::move((*step)->remainingProtocols);
  d.errors = std::move(errors);
  return d;
}

ChainDecision AuthenticationChain::finishWithTokenReview(const ChainDecision& pending,
                                                         const TokenReviewResult& review) const {
  const bool fromWebSocket = pending.tokenSource == ChainDecision::TokenSource::kWebSocketProtocol;
  ChainDecision d;
  if (review.outcome == TokenReviewResult::Outcome::kAuthenticated) {
    d.kind = ChainDecision::Kind::kAuthenticated;
    d.user = review.user;
    addAuthenticatedGroup(d.user);
    if (fromWebSocket) {
      d.webSocketProtocols = pending.webSocketProtocols;
    }
    return d;
  }
  std::vector<std::string> errors = pending.errors;
  errors.push_back(review.outcome == TokenReviewResult::Outcome::kError && !review.error.empty()
                       ? review.error
                       : kInvalidBearerTokenError);
  if (!fromWebSocket && pending.pendingWebSocketStep) {
    return webSocketStep(*pending.pendingWebSocketStep, std::move(errors));
  }
  return decideWithoutCredentials(std::move(errors));
}

ChainDecision AuthenticationChain::decideWithoutCredentials(std::vector<std::string> errors) const {
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
