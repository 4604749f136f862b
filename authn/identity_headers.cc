// Identity header stripping and writing.
#include "authn/identity_headers.h"

#include "absl/strings/str_cat.h"

namespace aaproxy {
namespace {

// net/http's isTokenTable (RFC 7230 tchar), which client-go copies as legalHeaderKeyBytes.
bool isTokenChar(unsigned char c) {
  if (c >= '0' && c <= '9') return true;
  if (c >= 'a' && c <= 'z') return true;
  if (c >= 'A' && c <= 'Z') return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

}  // namespace

namespace {

void appendEscapedExtraHeaderKey(std::string& out, std::string_view key) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (unsigned char c : key) {
    if (!isTokenChar(c) || c == '%') {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
}

}  // namespace

std::string escapeExtraHeaderKey(std::string_view key) {
  std::string out;
  out.reserve(key.size() + 8);
  appendEscapedExtraHeaderKey(out, key);
  return out;
}

size_t stripIdentityHeaders(HeaderMap& headers, const IdentityHeaderNames& configured) {
  return headers.removeIf([&configured](const Header& h) {
    std::string_view name = h.name;
    if (equalsIgnoreCase(name, "Authorization") || equalsIgnoreCase(name, kRemoteUserHeader) ||
        equalsIgnoreCase(name, kRemoteUidHeader) || equalsIgnoreCase(name, kRemoteGroupHeader) ||
        startsWithIgnoreCase(name, kRemoteExtraHeaderPrefix) ||
        startsWithIgnoreCase(name, "Impersonate-")) {
      return true;
    }
    for (const auto* names :
         {&configured.usernameHeaders, &configured.uidHeaders, &configured.groupHeaders}) {
      for (const std::string& n : *names) {
        if (equalsIgnoreCase(name, n)) {
          return true;
        }
      }
    }
    for (const std::string& prefix : configured.extraHeaderPrefixes) {
      if (startsWithIgnoreCase(name, prefix)) {
        return true;
      }
    }
    return false;
  });
}

void setIdentityHeaders(HeaderMap& headers, const UserInfo& user) {
  headers.removeIf([](const Header& h) {
    std::string_view name = h.name;
    return equalsIgnoreCase(name, kRemoteUserHeader) || equalsIgnoreCase(name, kRemoteUidHeader) ||
           equalsIgnoreCase(name, kRemoteGroupHeader) ||
           startsWithIgnoreCase(name, kRemoteExtraHeaderPrefix);
  });
  headers.add(kRemoteUserHeader, user.name);
  if (!user.uid.empty()) {
    headers.add(kRemoteUidHeader, user.uid);
  }
  for (const std::string& group : user.groups) {
    headers.add(kRemoteGroupHeader, group);
  }
  for (const auto& [key, values] : user.extra) {
    std::string name(kRemoteExtraHeaderPrefix);
    name.reserve(name.size() + key.size() + 8);
    appendEscapedExtraHeaderKey(name, key);
    for (const std::string& value : values) {
      headers.add(name, value);
    }
  }
}

size_t stripWebSocketBearerProtocols(HeaderMap& headers) {
  static constexpr std::string_view kPrefix = "base64url.bearer.authorization.k8s.io.";
  if (!headers.has("Sec-WebSocket-Protocol")) {
    return 0;  // the usual request: nothing to rewrite, nothing to copy
  }
  size_t removed = 0;
  HeaderMap rewritten;
  bool changed = false;
  for (const Header& h : headers.entries()) {
    if (!equalsIgnoreCase(h.name, "Sec-WebSocket-Protocol")) {
      rewritten.add(h.name, h.value);
      continue;
    }
    std::string kept;
    std::string_view rest = h.value;
    while (!rest.empty()) {
      size_t comma = rest.find(',');
      std::string_view item = rest.substr(0, comma);
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
      while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
      if (item.substr(0, kPrefix.size()) == kPrefix) {
        ++removed;
        changed = true;
        continue;
      }
      if (!item.empty()) {
        kept += kept.empty() ? "" : ", ";
        kept += item;
      }
    }
    if (!kept.empty()) {
      rewritten.add(h.name, kept);
    } else {
      changed = true;
    }
  }
  if (changed) {
    headers = std::move(rewritten);
  }
  return removed;
}

}  // namespace aaproxy
