// An ordered HTTP header list with case-insensitive lookup; duplicates are kept as separate lines.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
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

// Header lines in order. Clearing keeps the lines' string buffers (slots), so a connection that
// parses one request after another into the same map stops allocating once its slots are warm.
class HeaderMap {
 public:
  HeaderMap() = default;
  HeaderMap(const HeaderMap& other) : headers_(other.begin(), other.end()), size_(other.size_) {}
  HeaderMap(HeaderMap&& other) noexcept
      : headers_(std::move(other.headers_)), size_(std::exchange(other.size_, 0)) {}
  HeaderMap& operator=(const HeaderMap& other) {
    if (this != &other) {
      clear();
      for (const Header& h : other.entries()) {
        add(h.name, h.value);
      }
    }
    return *this;
  }
  HeaderMap& operator=(HeaderMap&& other) noexcept {
    if (this != &other) {
      headers_ = std::move(other.headers_);
      size_ = std::exchange(other.size_, 0);
    }
    return *this;
  }

  void add(std::string name, std::string value) {
    Header& h = nextSlot();
    h.name = std::move(name);
    h.value = std::move(value);
  }

  // Appends an empty line for the caller to fill in place (a parser appending the name and the
  // value as they arrive) and returns it; valid until the next add/addLine.
  Header& addLine() {
    Header& h = nextSlot();
    h.name.clear();
    h.value.clear();
    return h;
  }
  // The last line; the map must not be empty.
  Header& lastLine() { return headers_[size_ - 1]; }

  // The first value of `name`, or nullopt when absent.
  std::optional<std::string_view> get(std::string_view name) const {
    for (const Header& h : entries()) {
      if (equalsIgnoreCase(h.name, name)) {
        return h.value;
      }
    }
    return std::nullopt;
  }

  // Every value of `name`, one entry per header line, in order.
  std::vector<std::string_view> getAll(std::string_view name) const {
    std::vector<std::string_view> values;
    for (const Header& h : entries()) {
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

  // Removes the lines `pred` matches, keeping the order of the others. Removed lines become
  // spare slots.
  template <typename Predicate>
  size_t removeIf(Predicate pred) {
    size_t kept = 0;
    for (size_t i = 0; i < size_; ++i) {
      if (!pred(std::as_const(headers_[i]))) {
        if (kept != i) {
          std::swap(headers_[kept], headers_[i]);
        }
        ++kept;
      }
    }
    const size_t removed = size_ - kept;
    size_ = kept;
    return removed;
  }

  std::span<const Header> entries() const { return {headers_.data(), size_}; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  void clear() { size_ = 0; }

 private:
  const Header* begin() const { return headers_.data(); }
  const Header* end() const { return headers_.data() + size_; }

  Header& nextSlot() {
    if (size_ == headers_.size()) {
      if (headers_.capacity() == 0) {
        headers_.reserve(kTypicalLines);  // one allocation instead of five doublings
      }
      headers_.emplace_back();
    }
    return headers_[size_++];
  }

  // Requests through the aggregator carry about a dozen header lines; 12 entries (768 bytes)
  // still come from malloc's per-thread cache.
  static constexpr size_t kTypicalLines = 12;
  std::vector<Header> headers_;  // [0, size_) are the lines; the rest are spare slots
  size_t size_ = 0;
};

}  // namespace aaproxy
