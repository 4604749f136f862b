// Ports of the few Go standard-library text routines whose exact output reaches a client or a SAR.
#include "authz/go_text.h"

#include <algorithm>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace aaproxy {
namespace {

constexpr char kLowerHex[] = "0123456789abcdef";
constexpr char kUpperHex[] = "0123456789ABCDEF";

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

// utf8.DecodeRuneInString: returns {rune, width}; {0xFFFD, 1} for invalid input.
std::pair<uint32_t, size_t> decodeRune(std::string_view s, size_t i) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  auto cont = [&](size_t k) { return k < s.size() && (b(k) & 0xc0) == 0x80; };
  unsigned char c = b(i);
  if (c < 0x80) {
    return {c, 1};
  }
  if (c >= 0xc2 && c <= 0xdf && cont(i + 1)) {
    return {((c & 0x1fu) << 6) | (b(i + 1) & 0x3fu), 2};
  }
  if (c >= 0xe0 && c <= 0xef && cont(i + 1) && cont(i + 2)) {
    unsigned char c1 = b(i + 1);
    if (!((c == 0xe0 && c1 < 0xa0) || (c == 0xed && c1 > 0x9f))) {
      return {((c & 0x0fu) << 12) | ((c1 & 0x3fu) << 6) | (b(i + 2) & 0x3fu), 3};
    }
  }
  if (c >= 0xf0 && c <= 0xf4 && cont(i + 1) && cont(i + 2) && cont(i + 3)) {
    unsigned char c1 = b(i + 1);
    if (!((c == 0xf0 && c1 < 0x90) || (c == 0xf4 && c1 > 0x8f))) {
      return {((c & 0x07u) << 18) | ((c1 & 0x3fu) << 12) | ((b(i + 2) & 0x3fu) << 6) |
                  (b(i + 3) & 0x3fu),
              4};
    }
  }
  return {0xfffd, 1};
}

void appendRune(std::string& out, uint32_t r) {
  if (r < 0x80) {
    out += static_cast<char>(r);
  } else if (r < 0x800) {
    out += static_cast<char>(0xc0 | (r >> 6));
    out += static_cast<char>(0x80 | (r & 0x3f));
  } else if (r < 0x10000) {
    out += static_cast<char>(0xe0 | (r >> 12));
    out += static_cast<char>(0x80 | ((r >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (r & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (r >> 18));
    out += static_cast<char>(0x80 | ((r >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((r >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (r & 0x3f));
  }
}

// unicode.IsPrint for non-ASCII runes. Go's tables are generated from the Unicode database;
// this covers every category that is not printable and is assigned (Cc, Cf, Zs, Zl, Zp, Co,
// noncharacters). Unassigned code points (Cn) are treated as printable: an approximation.
bool isPrintNonAscii(uint32_t r) {
  if (r < 0xa0) {
    return false;  // C1 controls
  }
  switch (r) {
    case 0x00a0: case 0x00ad: case 0x061c: case 0x06dd: case 0x070f: case 0x08e2:
    case 0x1680: case 0x180e: case 0x202f: case 0x205f: case 0x3000: case 0xfeff:
    case 0x110bd: case 0x110cd: case 0xe0001:
      return false;
    default:
      break;
  }
  if (r >= 0x0600 && r <= 0x0605) {
    return false;
  }
  if (r >= 0x0890 && r <= 0x0891) {
    return false;
  }
  if (r >= 0x2000 && r <= 0x200f) {
    return false;  // spaces, ZW*, LRM/RLM
  }
  if (r >= 0x2028 && r <= 0x202e) {
    return false;  // LS, PS, bidi embeddings
  }
  if (r >= 0x2060 && r <= 0x206f) {
    return false;
  }
  if (r >= 0xd800 && r <= 0xdfff) {
    return false;
  }
  if (r >= 0xe000 && r <= 0xf8ff) {
    return false;  // private use
  }
  if (r >= 0xfdd0 && r <= 0xfdef) {
    return false;  // noncharacters
  }
  if (r >= 0xfff9 && r <= 0xfffb) {
    return false;
  }
  if ((r & 0xfffe) == 0xfffe) {
    return false;  // U+xFFFE, U+xFFFF
  }
  if (r >= 0x13430 && r <= 0x1343f) {
    return false;
  }
  if (r >= 0x1bca0 && r <= 0x1bca3) {
    return false;
  }
  if (r >= 0x1d173 && r <= 0x1d17a) {
    return false;
  }
  if (r >= 0xe0020 && r <= 0xe007f) {
    return false;
  }
  if (r >= 0xf0000) {
    return false;  // planes 15-16: private use
  }
  return true;
}

// shouldEscape(c, encodePath) from net/url.
bool shouldEscapePath(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
    return false;
  }
  switch (c) {
    case '-': case '_': case '.': case '~':
    case '$': case '&': case '+': case ',': case '/': case ':': case ';': case '=': case '@':
      return false;
    default:
      return true;
  }
}

// validEncoded(s, encodePath) from net/url.
bool validEncodedPath(std::string_view s) {
  for (unsigned char c : s) {
    switch (c) {
      case '!': case '$': case '&': case '\'': case '(': case ')': case '*': case '+': case ',':
      case ';': case '=': case ':': case '@': case '[': case ']': case '%':
        continue;
      default:
        if (shouldEscapePath(c)) {
          return false;
        }
    }
  }
  return true;
}

bool isCtl(unsigned char c) { return c < 0x20 || c == 0x7f; }

}  // namespace

absl::StatusOr<std::string> goUnescape(std::string_view s, bool queryMode) {
  std::string out;
  out.reserve(s.size());
  // Runs without '%' (or '+' in query mode) are copied whole: most paths have no escapes at all.
  // (Not find_first_of: libstdc++ runs a memchr over the set for every byte.)
  auto nextSpecial = [&](size_t from) {
    for (size_t k = from; k < s.size(); ++k) {
      if (s[k] == '%' || (queryMode && s[k] == '+')) {
        return k;
      }
    }
    return std::string_view::npos;
  };
  size_t i = 0;
  while (i < s.size()) {
    size_t special = nextSpecial(i);
    if (special == std::string_view::npos) {
      out.append(s.data() + i, s.size() - i);
      break;
    }
    out.append(s.data() + i, special - i);
    i = special;
    if (s[i] == '+') {
      out += ' ';
      ++i;
      continue;
    }
    if (i + 2 >= s.size() || hexValue(s[i + 1]) < 0 || hexValue(s[i + 2]) < 0) {
      std::string_view bad = s.substr(i, 3);
      return absl::InvalidArgumentError(absl::StrCat("invalid URL escape ", goQuote(bad)));
    }
    out += static_cast<char>(hexValue(s[i + 1]) * 16 + hexValue(s[i + 2]));
    i += 3;
  }
  return out;
}

absl::StatusOr<GoRequestUri> parseGoRequestUri(std::string_view target) {
  for (unsigned char c : target) {
    if (isCtl(c)) {
      return absl::InvalidArgumentError("net/url: invalid control character in URL");
    }
  }
  if (target.empty()) {
    return absl::InvalidArgumentError("empty url");
  }
  GoRequestUri uri;
  if (target == "*") {
    uri.path = "*";
    uri.rawPath = "*";
    return uri;
  }
  std::string_view rest = target;
  if (rest[0] != '/') {
    // absolute-form: scheme "://" authority path. Anything else is not a request URI.
    size_t colon = rest.find("://");
    bool schemeOk = colon != std::string_view::npos && colon > 0 &&
                    ((rest[0] >= 'a' && rest[0] <= 'z') || (rest[0] >= 'A' && rest[0] <= 'Z'));
    for (size_t k = 1; schemeOk && k < colon; ++k) {
      char ch = rest[k];
      schemeOk = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '+' || ch == '-' || ch == '.';
    }
    if (!schemeOk) {
      return absl::InvalidArgumentError("invalid URI for request");
    }
    rest = rest.substr(colon + 3);
    size_t slash = rest.find_first_of("/?");
    rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
  }
  // A lone trailing '?' sets ForceQuery; otherwise split at the first '?'.
  size_t q = rest.find('?');
  if (q != std::string_view::npos) {
    uri.rawQuery = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  auto path = goUnescape(rest, /*queryMode=*/false);
  if (!path.ok()) {
    return path.status();
  }
  uri.rawPath = rest;
  uri.path = *std::move(path);
  return uri;
}

std::string goEscapedPath(const GoRequestUri& uri) {
  if (validEncodedPath(uri.rawPath)) {
    auto decoded = goUnescape(uri.rawPath, false);
    if (decoded.ok() && *decoded == uri.path) {
      return std::string(uri.rawPath);
    }
  }
  if (uri.path == "*") {
    return "*";
  }
  std::string out;
  for (unsigned char c : uri.path) {
    if (shouldEscapePath(c)) {
      out += '%';
      out += kUpperHex[c >> 4];
      out += kUpperHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

GoQuery GoQuery::parse(std::string_view rawQuery) {
  GoQuery q;
  // Go >= 1.24.12 / 1.25.6 (urlmaxqueryparams, default 10000): more parameters than that make
  // ParseQuery fail before parsing anything, and URL.Query() then yields no values at all.
  if (static_cast<size_t>(std::count(rawQuery.begin(), rawQuery.end(), '&')) + 1 > 10000) {
    return q;
  }
  while (!rawQuery.empty()) {
    size_t amp = rawQuery.find('&');
    std::string_view pair = rawQuery.substr(0, amp);
    rawQuery = amp == std::string_view::npos ? std::string_view() : rawQuery.substr(amp + 1);
    if (pair.find(';') != std::string_view::npos || pair.empty()) {
      continue;
    }
    size_t eq = pair.find('=');
    std::string_view rawKey = pair.substr(0, eq);
    std::string_view rawValue =
        eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    auto key = goUnescape(rawKey, true);
    if (!key.ok()) {
      continue;
    }
    auto value = goUnescape(rawValue, true);
    if (!value.ok()) {
      continue;
    }
    q.pairs_.emplace_back(*std::move(key), *std::move(value));
  }
  return q;
}

std::string_view GoQuery::first(std::string_view key) const {
  for (const auto& [k, v] : pairs_) {
    if (k == key) {
      return v;
    }
  }
  return {};
}

bool GoQuery::has(std::string_view key) const {
  for (const auto& [k, v] : pairs_) {
    if (k == key) {
      return true;
    }
  }
  return false;
}

std::vector<std::string_view> GoQuery::all(std::string_view key) const {
  std::vector<std::string_view> out;
  for (const auto& [k, v] : pairs_) {
    if (k == key) {
      out.push_back(v);
    }
  }
  return out;
}

void appendGoQuoted(std::string& out, std::string_view s) {
  out += '"';
  for (size_t i = 0; i < s.size();) {
    auto [r, width] = decodeRune(s, i);
    if (width == 1 && r == 0xfffd) {
      unsigned char b = static_cast<unsigned char>(s[i]);
      out += "\\x";
      out += kLowerHex[b >> 4];
      out += kLowerHex[b & 15];
      ++i;
      continue;
    }
    i += width;
    if (r == '"' || r == '\\') {
      out += '\\';
      out += static_cast<char>(r);
      continue;
    }
    if (r < 0x80 ? (r >= 0x20 && r < 0x7f) : isPrintNonAscii(r)) {
      appendRune(out, r);
      continue;
    }
    switch (r) {
      case '\a': out += "\\a"; continue;
      case '\b': out += "\\b"; continue;
      case '\f': out += "\\f"; continue;
      case '\n': out += "\\n"; continue;
      case '\r': out += "\\r"; continue;
      case '\t': out += "\\t"; continue;
      case '\v': out += "\\v"; continue;
      default: break;
    }
    if (r < ' ' || r == 0x7f) {
      out += "\\x";
      out += kLowerHex[(r >> 4) & 15];
      out += kLowerHex[r & 15];
    } else if (r < 0x10000) {
      out += "\\u";
      for (int shift = 12; shift >= 0; shift -= 4) {
        out += kLowerHex[(r >> shift) & 15];
      }
    } else {
      out += "\\U";
      for (int shift = 28; shift >= 0; shift -= 4) {
        out += kLowerHex[(r >> shift) & 15];
      }
    }
  }
  out += '"';
}

std::string goQuote(std::string_view s) {
  std::string out;
  appendGoQuoted(out, s);
  return out;
}

namespace {
// The simple case-fold orbit representative: the runes that fold onto ASCII letters.
uint32_t foldKey(uint32_t r) {
  if (r >= 'A' && r <= 'Z') {
    return r + 32;
  }
  if (r == 0x017f) {
    return 's';  // LATIN SMALL LETTER LONG S
  }
  if (r == 0x212a) {
    return 'k';  // KELVIN SIGN
  }
  if (r == 0x212b) {
    return 0xe5;  // ANGSTROM SIGN ~ å
  }
  if (r >= 0xc0 && r <= 0xde && r != 0xd7) {
    return r + 32;
  }
  return r;
}
}  // namespace

bool goEqualFold(std::string_view a, std::string_view b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    auto [ra, wa] = decodeRune(a, i);
    auto [rb, wb] = decodeRune(b, j);
    if (ra != rb && foldKey(ra) != foldKey(rb)) {
      return false;
    }
    i += wa;
    j += wb;
  }
  return i == a.size() && j == b.size();
}

std::string goAsciiLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c + 32);
    }
  }
  return out;
}

bool goParsesInt64(std::string_view s) {
  if (s.empty()) {
    return false;
  }
  size_t i = 0;
  bool neg = false;
  if (s[0] == '+' || s[0] == '-') {
    neg = s[0] == '-';
    i = 1;
  }
  if (i == s.size()) {
    return false;
  }
  unsigned __int128 v = 0;
  for (; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9') {
      return false;
    }
    v = v * 10 + static_cast<unsigned>(s[i] - '0');
    if (v > (static_cast<unsigned __int128>(1) << 63)) {
      return false;
    }
  }
  return neg || v < (static_cast<unsigned __int128>(1) << 63);
}

std::pair<bool, bool> goParseBool(std::string_view s) {
  if (s == "1" || s == "t" || s == "T" || s == "TRUE" || s == "true" || s == "True") {
    return {true, true};
  }
  if (s == "0" || s == "f" || s == "F" || s == "FALSE" || s == "false" || s == "False") {
    return {true, false};
  }
  return {false, false};
}

std::string goErrorfNoArgs(std::string_view format) {
  std::string out;
  const size_t end = format.size();
  // parsenum from fmt: digits, giving up (newi = end) on absurd widths.
  auto parsenum = [&](size_t start, size_t stop, bool& isnum) -> size_t {
    isnum = false;
    if (start >= stop) {
      return stop;
    }
    long num = 0;
    size_t k = start;
    for (; k < stop && format[k] >= '0' && format[k] <= '9'; ++k) {
      if (num > 1000000) {
        isnum = false;
        return stop;
      }
      num = num * 10 + (format[k] - '0');
      isnum = true;
    }
    return k;
  };
  // argNumber with zero arguments: any "[n]" is a bad index.
  auto argNumber = [&](size_t i, bool& goodArgNum, bool& found) -> size_t {
    found = false;
    if (i >= end || format[i] != '[') {
      return i;
    }
    std::string_view f = format.substr(i);
    size_t wid = 1;
    bool ok = false;
    if (f.size() >= 3) {
      for (size_t k = 1; k < f.size(); ++k) {
        if (f[k] == ']') {
          bool isnum = false;
          size_t newi = 0;
          // parsenum over f[1:k]
          long num = 0;
          newi = 1;
          for (; newi < k && f[newi] >= '0' && f[newi] <= '9'; ++newi) {
            if (num > 1000000) {
              newi = k + 1;  // forces !ok
              break;
            }
            num = num * 10 + (f[newi] - '0');
            isnum = true;
          }
          ok = isnum && newi == k;
          wid = k + 1;
          break;
        }
      }
    }
    goodArgNum = false;
    found = ok;
    return i + wid;
  };
  for (size_t i = 0; i < end;) {
    bool goodArgNum = true;
    size_t lasti = i;
    while (i < end && format[i] != '%') {
      ++i;
    }
    out.append(format.substr(lasti, i - lasti));
    if (i >= end) {
      break;
    }
    ++i;  // skip '%'
    while (i < end && (format[i] == '#' || format[i] == '0' || format[i] == '+' ||
                       format[i] == '-' || format[i] == ' ')) {
      ++i;
    }
    bool afterIndex = false;
    i = argNumber(i, goodArgNum, afterIndex);
    if (i < end && format[i] == '*') {
      ++i;
      out += "%!(BADWIDTH)";
      afterIndex = false;
    } else {
      bool isnum = false;
      i = parsenum(i, end, isnum);
      if (afterIndex && isnum) {
        goodArgNum = false;
      }
    }
    if (i + 1 < end && format[i] == '.') {
      ++i;
      if (afterIndex) {
        goodArgNum = false;
      }
      i = argNumber(i, goodArgNum, afterIndex);
      if (i < end && format[i] == '*') {
        ++i;
        out += "%!(BADPREC)";
        afterIndex = false;
      } else {
        bool isnum = false;
        i = parsenum(i, end, isnum);
      }
    }
    if (!afterIndex) {
      i = argNumber(i, goodArgNum, afterIndex);
    }
    if (i >= end) {
      out += "%!(NOVERB)";
      break;
    }
    auto [verb, size] = decodeRune(format, i);
    i += size;
    if (verb == '%') {
      out += '%';
    } else {
      out += "%!";
      appendRune(out, verb);
      out += goodArgNum ? "(MISSING)" : "(BADINDEX)";
    }
  }
  return out;
}

}  // namespace aaproxy
