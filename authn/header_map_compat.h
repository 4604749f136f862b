// Stopgap so that k8s/header_map.h compiles with Debian's abseil, whose absl::string_view is not
// std::string_view: header_map.h passes std::string_view to absl::EqualsIgnoreCase. Include this
// before k8s/header_map.h. Remove once k8s/header_map.h converts explicitly.
#pragma once

#include <string_view>
#include <type_traits>

#include "absl/strings/match.h"

#ifndef AAPROXY_ABSL_STD_STRING_VIEW_COMPAT
#define AAPROXY_ABSL_STD_STRING_VIEW_COMPAT
namespace absl {
// Only viable when one argument is a std::string_view, so it never competes with abseil's own
// overload (no ambiguity for calls abseil already accepts).
template <typename A, typename B>
  requires(std::is_same_v<std::decay_t<A>, std::string_view> ||
           std::is_same_v<std::decay_t<B>, std::string_view>)
inline bool EqualsIgnoreCase(const A& a, const B& b) {
  std::string_view x(a);
  std::string_view y(b);
  return absl::EqualsIgnoreCase(absl::string_view(x.data(), x.size()),
                                absl::string_view(y.data(), y.size()));
}
}  // namespace absl
#endif
