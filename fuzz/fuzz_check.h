// Invariant checks for the fuzz targets: a broken invariant prints what broke and aborts, which
// libFuzzer records as a crash (with the input) and the corpus regression tests as a failure.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace aaproxy::fuzz {

[[noreturn]] inline void invariantBroken(const char* file, int line, const char* condition,
                                         std::string_view detail) {
  std::fprintf(stderr, "%s:%d: invariant broken: %s\n", file, line, condition);
  if (!detail.empty()) {
    std::string shown;
    for (unsigned char c : detail.substr(0, 2000)) {
      if (c >= 0x20 && c < 0x7f && c != '\\') {
        shown += static_cast<char>(c);
      } else {
        char esc[5];
        std::snprintf(esc, sizeof(esc), "\\x%02x", c);
        shown += esc;
      }
    }
    std::fprintf(stderr, "  %s\n", shown.c_str());
  }
  std::abort();
}

}  // namespace aaproxy::fuzz

// FUZZ_CHECK(cond) or FUZZ_CHECK(cond, detail): detail is anything convertible to string_view,
// printed with non-printable bytes escaped.
#define FUZZ_CHECK(cond, ...)                                            \
  do {                                                                   \
    if (!(cond)) {                                                       \
      ::aaproxy::fuzz::invariantBroken(__FILE__, __LINE__, #cond,        \
                                       ::std::string_view(__VA_ARGS__)); \
    }                                                                    \
  } while (0)
