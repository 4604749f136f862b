// An ordered HTTP header list with case-insensitive lookup; duplicates are kept as separate lines.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/match.h"

namespace aaproxy {

struct Header {
  std::string name;
  std::string value;
};

class HeaderMap {
 public:
  void add(std::string name, std::string value) {
    headers_.push_back({std::move(name), std::move(value)});
  }

  // The first value of `name`, or nullopt when absent.
  std::optional<std::string_view> get(std::string_view name) const {
    for (const Header& h : headers_) {
      if (absl::EqualsIgnoreCase(h.name, name)) {
        return h.value;
      }
    }
    return std::nullopt;
  }

  // Every value of `name`, one entry per header line, in order.
  std::vector<std::string_view> getAll(std::string_view name) const {
    std::vector<std::string_view> values;
    for (const Header& h : headers_) {
      if (absl::EqualsIgnoreCase(h.name, name)) {
        values.push_back(h.value);
      }
    }
    return values;
  }

  bool has(std::string_view name) const { return get(name).has_value(); }

  // Removes every line named `name`; returns how many were removed.
  size_t remove(std::string_view name) {
    return removeIf([name](const Header& h) { return absl::EqualsIgnoreCase(h.name, name); });
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
  std::vector<Header> headers_;
};

}  // namespace aaproxy
