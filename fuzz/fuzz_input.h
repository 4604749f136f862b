// Small helpers the fuzz targets share to cut their input into fields.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace aaproxy::fuzz {

inline std::string_view asView(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Splits at every `sep`; "a\nb\n" is {"a", "b", ""}. Views into `s`.
inline std::vector<std::string_view> splitAll(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (;;) {
    size_t at = s.find(sep, start);
    if (at == std::string_view::npos) {
      parts.push_back(s.substr(start));
      return parts;
    }
    parts.push_back(s.substr(start, at - start));
    start = at + 1;
  }
}

// The first line (up to '\n', not included) and the rest after it.
inline std::pair<std::string_view, std::string_view> splitFirstLine(std::string_view s) {
  size_t nl = s.find('\n');
  if (nl == std::string_view::npos) {
    return {s, {}};
  }
  return {s.substr(0, nl), s.substr(nl + 1)};
}

// The length of the well-formed UTF-8 sequence at s[i] as Go's utf8.DecodeRuneInString sees
// it (no surrogates, no overlongs), or 0 when the byte there does not start one.
inline size_t utf8SequenceAt(std::string_view s, size_t i) {
  auto cont = [&](size_t k) {
    return k < s.size() && (static_cast<unsigned char>(s[k]) & 0xc0) == 0x80;
  };
  const auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) {
    return 1;
  }
  size_t n = 0;
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
  } else {
    return 0;
  }
  for (size_t k = 1; k < n; ++k) {
    if (!cont(i + k)) {
      return 0;
    }
  }
  if (n >= 3) {
    const auto c1 = static_cast<unsigned char>(s[i + 1]);
    if ((c == 0xe0 && c1 < 0xa0) || (c == 0xed && c1 > 0x9f) || (c == 0xf0 && c1 < 0x90) ||
        (c == 0xf4 && c1 > 0x8f)) {
      return 0;
    }
  }
  return n;
}

inline bool isValidUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    size_t n = utf8SequenceAt(s, i);
    if (n == 0) {
      return false;
    }
    i += n;
  }
  return true;
}

// What Go's encoding/json makes of a string: each byte that does not start a well-formed
// sequence becomes U+FFFD.
inline std::string replaceInvalidUtf8(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    size_t n = utf8SequenceAt(s, i);
    if (n == 0) {
      out += "\xef\xbf\xbd";
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

}  // namespace aaproxy::fuzz
