// Identity header stripping and writing.
#include "authn/identity_headers.h"

#include <cstdint>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace aaproxy {
namespace {

// net/http's isTokenTable (RFC 7230 tchar), which client-go copies as legalHeaderKeyBytes.
constexpr bool isTokenChar(unsigned char c) {
  if (c >= '0' && c <= '9') {
    return true;
  }
  if (c >= 'a' && c <= 'z') {
    return true;
  }
  if (c >= 'A' && c <= 'Z') {
    return true;
  }
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-':
    case '.': case '^': case '_': case '`': case '|': case '~':
      return true;
    default:
      return false;
  }
}

struct ByteTable {
  bool value[256];
};

// Bytes copied as they are into an X-Remote-Extra- name: token characters but '%'.
constexpr ByteTable kPlainKeyByte = [] {
  ByteTable t{};
  for (int c = 0; c < 256; ++c) {
    t.value[c] = isTokenChar(static_cast<unsigned char>(c)) && c != '%';
  }
  return t;
}();

void appendEscapedExtraHeaderKey(std::string& out, std::string_view key) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  size_t i = 0;
  while (i < key.size()) {
    size_t run = i;
    while (run < key.size() && kPlainKeyByte.value[static_cast<unsigned char>(key[run])]) {
      ++run;
    }
    out.append(key.data() + i, run - i);
    if (run == key.size()) {
      break;
    }
    const auto c = static_cast<unsigned char>(key[run]);
    const char escaped[3] = {'%', kHex[c >> 4], kHex[c & 0xf]};
    out.append(escaped, 3);
    i = run + 1;
  }
}

// httpguts.ValidHeaderFieldValue: no control byte but horizontal tab. Runs for every byte of
// every identity value of every request, so eight bytes are checked at a time; a block holding
// a byte below 0x20 or 0x7f (a tab, usually nothing) is looked at byte by byte.
bool validHeaderFieldValue(std::string_view value) {
  constexpr uint64_t kOnes = 0x0101010101010101ULL;
  constexpr uint64_t kHigh = 0x8080808080808080ULL;
  size_t i = 0;
  for (; i + 8 <= value.size(); i += 8) {
    uint64_t x;
    std::memcpy(&x, value.data() + i, 8);
    const uint64_t below_space = (x - kOnes * 0x20) & ~x & kHigh;  // some byte < 0x20
    const uint64_t y = x ^ (kOnes * 0x7f);
    const uint64_t del = (y - kOnes) & ~y & kHigh;  // some byte == 0x7f
    if ((below_space | del) != 0) {
      break;
    }
  }
  for (; i < value.size(); ++i) {
    const auto c = static_cast<unsigned char>(value[i]);
    if ((c < ' ' && c != '\t') || c == 0x7f) {
      return false;
    }
  }
  return true;
}

absl::Status invalidValue(std::string_view header) {
  std::string message = "invalid header field value for \"";
  message.append(header);
  message += '"';
  return absl::InvalidArgumentError(message);
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

size_t removeIdentityHeaders(HeaderMap& headers) {
  return headers.removeIf([](const Header& h) {
    std::string_view name = h.name;
    return equalsIgnoreCase(name, kRemoteUserHeader) || equalsIgnoreCase(name, kRemoteUidHeader) ||
           equalsIgnoreCase(name, kRemoteGroupHeader) ||
           startsWithIgnoreCase(name, kRemoteExtraHeaderPrefix);
  });
}

namespace {

absl::Status validateIdentity(const UserInfo& user) {
  if (!validHeaderFieldValue(user.name)) {
    return invalidValue(kRemoteUserHeader);
  }
  if (!validHeaderFieldValue(user.uid)) {
    return invalidValue(kRemoteUidHeader);
  }
  for (const std::string& group : user.groups) {
    if (!validHeaderFieldValue(group)) {
      return invalidValue(kRemoteGroupHeader);
    }
  }
  for (const auto& [key, values] : user.extra) {
    for (const std::string& value : values) {
      if (!validHeaderFieldValue(value)) {
        std::string name(kRemoteExtraHeaderPrefix);
        appendEscapedExtraHeaderKey(name, key);
        return invalidValue(name);
      }
    }
  }
  return absl::OkStatus();
}

void appendLine(std::string& out, std::string_view name, std::string_view value) {
  out.append(name);
  out.append(": ", 2);
  out.append(value);
  out.append("\r\n", 2);
}

}  // namespace

absl::Status appendIdentityHeaderLines(std::string& out, const UserInfo& user) {
  // Checked before any line is written, so that a refused identity leaves nothing behind.
  if (absl::Status valid = validateIdentity(user); !valid.ok()) {
    return valid;
  }
  appendLine(out, kRemoteUserHeader, user.name);
  if (!user.uid.empty()) {
    appendLine(out, kRemoteUidHeader, user.uid);
  }
  for (const std::string& group : user.groups) {
    appendLine(out, kRemoteGroupHeader, group);
  }
  std::string name;
  for (const auto& [key, values] : user.extra) {
    name.assign(kRemoteExtraHeaderPrefix);
    appendEscapedExtraHeaderKey(name, key);
    for (const std::string& value : values) {
      appendLine(out, name, value);
    }
  }
  return absl::OkStatus();
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
      while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) {
        item.remove_prefix(1);
      }
      while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) {
        item.remove_suffix(1);
      }
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
