// Field and label selector parsing as k8s.io/apimachinery's fields.ParseSelector and
// labels.Parse do it, reduced to what authorization needs: validity and the requirements.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace aaproxy {

// One parsed requirement. `op` is apimachinery's selection.Operator spelling:
// "=", "==", "!=", "in", "notin", "exists", "!", "gt", "lt".
struct ParsedRequirement {
  std::string key;
  std::string op;
  std::vector<std::string> values;  // sorted and de-duplicated for label set operators

  bool operator==(const ParsedRequirement&) const = default;
};

// fields.ParseSelector: comma-separated `field=value`, `field==value`, `field!=value` terms
// (backslash escapes \, \= \\ in values), sorted by term text; terms with empty field and value
// are dropped. Requirements are returned in that order.
absl::StatusOr<std::vector<ParsedRequirement>> parseFieldSelector(std::string_view selector);

// The value of the first `field=`/`field==` term for `field` (fields.Selector.RequiresExactMatch).
bool fieldSelectorRequiresExactMatch(const std::vector<ParsedRequirement>& requirements,
                                     std::string_view field, std::string* value);

// labels.Parse: the full lexer/parser with key (qualified name) and value (label value)
// validation. Requirements sorted by key (stable; upstream's sort.Sort is stable for <= 12).
absl::StatusOr<std::vector<ParsedRequirement>> parseLabelSelector(std::string_view selector);

}  // namespace aaproxy
