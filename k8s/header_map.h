// An ordered HTTP header list with case-insensitive lookup; duplicates are kept as separate lines.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace aaproxy {

// ASCII case-insensitive equality, as HTTP field names compare.
inline bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    char y = b[i];
    if (x >= 'A' && x <= 'Z') {
      x = static_cast<char>(x + ('a' - 'A'));
    }
    if (y >= 'A' && y <= 'Z') {
      y = static_cast<char>(y + ('a' - 'A'));
    }
    if (x != y) {
      return false;
    }
  }
  return true;
}

inline bool startsWithIgnoreCase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && equalsIgnoreCase(s.substr(0, prefix.size()), prefix);
}

struct Header {
  std::string name;
  std::string value;
};

class HeaderMap {
 public:
  void add(std::string name, std::string value) {
    if (headers_.capacity() == 0) {
      headers_.reserve(kTypicalLines);  // one allocation instead of five doublings
    }
    headers_.push_back({std::move(name), std::move(value)});
  }

  // The first value of `name`, or nullopt when absent.
  std::optional<std::string_view> get(std::string_view name) const {
    for (const Header& h : headers_) {
      if (equalsIgnoreCase(h.name, name)) {
        return h.value;
      }
    }
    return std::nullopt;
  }

  // Every value of `name`, one entry per header line, in order.
  std::vector<std::string_view> getAll(std::string_view name) const {
    std::vector<std::string_view> values;
    for (const Header& h : headers_) {
      if (equalsIgnoreCase(h.name, name)) {
        values.push_back(h.value);
      }
    }
    return values;
  }

  bool has(std::string_view name) const { return get(name).has_value(); }

  // Removes every line named `name`; returns how many were removed.
  size_t remove(std::string_view name) {
    return removeIf([name](const Header& h) { return equalsIgnoreCase(h.name, name); });
  }

  template <typename Predicate>
  size_t removeIf(Predicate pred) {
    size_t before = headers_.size();
    std::erase_if(headers_, pred);
    return before - headers_.size();
  }

  const std::vector<Header>& entries() const { return headers_; }
  size_t size() const { return headers_.size(); }
  bool empty() const { return headers_.empty(); }
  void clear() { headers_.clear(); }

 private:
  // Requests through the aggregator carry about a dozen header lines; 12 entries (768 bytes)
  // still come from malloc's per-thread cache.
  static constexpr size_t kTypicalLines = 12;
  std::vector<Header> headers_;
};

}  // namespace aaproxy
