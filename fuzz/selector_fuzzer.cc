// Field and label selector parsing (authz/selector.*) over arbitrary text.
//
// Invariants:
//  - field selectors: requirements are "=" or "!=" with one value; written back as
//    apimachinery's String() would (values re-escaped) they parse to the same requirements;
//  - label selectors: keys are valid label keys, values valid label values, operators from
//    apimachinery's set with the value counts NewRequirement allows, set values sorted and
//    unique; written back in apimachinery's String() form they parse to the same requirements;
//  - errors are values; nothing reads past the input.
#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_join.h"
#include "authz/selector.h"
#include "fuzz/fuzz_check.h"
#include "fuzz/fuzz_input.h"

namespace aaproxy::fuzz {
namespace {

std::string describe(const std::vector<ParsedRequirement>& reqs) {
  std::string out;
  for (const ParsedRequirement& r : reqs) {
    out += "{" + r.key + " " + r.op + " [" + absl::StrJoin(r.values, "|") + "]} ";
  }
  return out;
}

std::string escapeFieldValue(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == ',' || c == '=') {
      out += '\\';
    }
    out += c;
  }
  return out;
}

void checkFieldSelector(std::string_view selector) {
  absl::StatusOr<std::vector<ParsedRequirement>> reqs = parseFieldSelector(selector);
  if (!reqs.ok()) {
    return;
  }
  std::vector<std::string> terms;
  for (const ParsedRequirement& r : *reqs) {
    FUZZ_CHECK(r.op == "=" || r.op == "!=", r.op);
    FUZZ_CHECK(r.values.size() == 1, r.key);
    FUZZ_CHECK(!r.key.empty() || !r.values[0].empty(), selector);
    terms.push_back(r.key + r.op + escapeFieldValue(r.values[0]));
  }
  std::string rebuilt = absl::StrJoin(terms, ",");
  absl::StatusOr<std::vector<ParsedRequirement>> again = parseFieldSelector(rebuilt);
  FUZZ_CHECK(again.ok(), rebuilt);
  // The order follows the raw term text, which the rewriting may change ("==" becomes "=").
  auto byContent = [](const ParsedRequirement& a, const ParsedRequirement& b) {
    return std::tie(a.key, a.op, a.values) < std::tie(b.key, b.op, b.values);
  };
  std::vector<ParsedRequirement> want = *reqs;
  std::vector<ParsedRequirement> got = *again;
  std::sort(want.begin(), want.end(), byContent);
  std::sort(got.begin(), got.end(), byContent);
  FUZZ_CHECK(want == got, rebuilt + "\n" + describe(want) + "\n" + describe(got));
}

bool isLabelValue(std::string_view v) {
  if (v.empty()) {
    return true;
  }
  auto alnum = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  };
  if (v.size() > 63 || !alnum(v.front()) || !alnum(v.back())) {
    return false;
  }
  return std::all_of(v.begin(), v.end(),
                     [&](char c) { return alnum(c) || c == '-' || c == '_' || c == '.'; });
}

std::string labelString(const ParsedRequirement& r) {
  if (r.op == "exists") {
    return r.key;
  }
  if (r.op == "!") {
    return "!" + r.key;
  }
  if (r.op == "in" || r.op == "notin") {
    return r.key + " " + r.op + " (" + absl::StrJoin(r.values, ",") + ")";
  }
  const std::string op = r.op == "gt" ? ">" : r.op == "lt" ? "<" : r.op;
  return r.key + op + r.values[0];
}

void checkLabelSelector(std::string_view selector) {
  absl::StatusOr<std::vector<ParsedRequirement>> reqs = parseLabelSelector(selector);
  if (!reqs.ok()) {
    return;
  }
  std::vector<std::string> terms;
  for (const ParsedRequirement& r : *reqs) {
    const std::string& op = r.op;
    FUZZ_CHECK(op == "=" || op == "==" || op == "!=" || op == "in" || op == "notin" ||
                   op == "exists" || op == "!" || op == "gt" || op == "lt",
               op);
    FUZZ_CHECK(!r.key.empty() && r.key.find_first_of(" \t\r\n,()=!<>") == std::string::npos, r.key);
    size_t slash = r.key.find('/');
    std::string_view name = slash == std::string::npos ? std::string_view(r.key)
                                                       : std::string_view(r.key).substr(slash + 1);
    FUZZ_CHECK(!name.empty() && name.size() <= 63 && isLabelValue(name), r.key);
    if (op == "exists" || op == "!") {
      FUZZ_CHECK(r.values.empty(), r.key);
    } else if (op == "in" || op == "notin") {
      FUZZ_CHECK(!r.values.empty(), r.key);
      FUZZ_CHECK(std::is_sorted(r.values.begin(), r.values.end()) &&
                     std::adjacent_find(r.values.begin(), r.values.end()) == r.values.end(),
                 r.key);
    } else {
      FUZZ_CHECK(r.values.size() == 1, r.key);
    }
    for (const std::string& v : r.values) {
      FUZZ_CHECK(isLabelValue(v), v);
      if (op == "gt" || op == "lt") {
        FUZZ_CHECK(!v.empty() &&
                       std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; }),
                   v);
      }
    }
    terms.push_back(labelString(r));
  }
  std::string rebuilt = absl::StrJoin(terms, ",");
  absl::StatusOr<std::vector<ParsedRequirement>> again = parseLabelSelector(rebuilt);
  FUZZ_CHECK(again.ok() && *again == *reqs,
             rebuilt + "\n" + describe(*reqs) + "\n" + (again.ok() ? describe(*again) : ""));
}

}  // namespace
}  // namespace aaproxy::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace aaproxy::fuzz;
  std::string_view selector = asView(data, size);
  checkFieldSelector(selector);
  checkLabelSelector(selector);
  return 0;
}
