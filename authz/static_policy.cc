// Parsing happens once at start-up (yaml-cpp exceptions are caught here); matching is pure.
#include "authz/static_policy.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "yaml-cpp/yaml.h"

namespace aaproxy {
namespace {

bool contains(const std::vector<std::string>& list, std::string_view v) {
  return std::find(list.begin(), list.end(), v) != list.end();
}

bool containsOrStar(const std::vector<std::string>& list, std::string_view v) {
  return contains(list, "*") || contains(list, v);
}

// rbac ResourceMatches.
bool resourceMatches(const std::vector<std::string>& rules, const RequestInfo& info) {
  std::string combined = info.resource;
  if (!info.subresource.empty()) {
    absl::StrAppend(&combined, "/", info.subresource);
  }
  for (const std::string& r : rules) {
    if (r == "*" || r == combined) {
      return true;
    }
    if (!info.subresource.empty() && r.size() == info.subresource.size() + 2 && r.rfind("*/", 0) == 0 &&
        r.compare(2, std::string::npos, info.subresource) == 0) {
      return true;
    }
  }
  return false;
}

// rbac NonResourceURLMatches.
bool urlMatches(const std::vector<std::string>& rules, std::string_view path) {
  for (const std::string& r : rules) {
    if (r == "*" || r == path) {
      return true;
    }
    if (!r.empty() && r.back() == '*') {
      std::string_view prefix(r);
      while (!prefix.empty() && prefix.back() == '*') {
        prefix.remove_suffix(1);
      }
      if (path.substr(0, prefix.size()) == prefix) {
        return true;
      }
    }
  }
  return false;
}

absl::Status fieldError(size_t index, std::string_view field, std::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("rules[", index, "].", std::string(field), ": ", std::string(what)));
}

absl::Status readStringList(const YAML::Node& node, size_t index, std::string_view field,
                            std::vector<std::string>* out) {
  if (node.IsNull()) {
    return absl::OkStatus();
  }
  if (!node.IsSequence()) {
    return fieldError(index, field, "must be a list of strings");
  }
  for (size_t i = 0; i < node.size(); ++i) {
    const YAML::Node& item = node[i];
    if (!item.IsScalar()) {
      return fieldError(index, absl::StrCat(std::string(field), "[", i, "]"), "must be a string");
    }
    out->push_back(item.Scalar());
  }
  return absl::OkStatus();
}

absl::StatusOr<StaticPolicyRule> parseRule(const YAML::Node& node, size_t index) {
  if (!node.IsMap()) {
    return absl::InvalidArgumentError(absl::StrCat("rules[", index, "]: must be a mapping"));
  }
  StaticPolicyRule rule;
  const std::pair<std::string_view, std::vector<std::string>*> fields[] = {
      {"users", &rule.users},         {"groups", &rule.groups},
      {"verbs", &rule.verbs},         {"apiGroups", &rule.apiGroups},
      {"resources", &rule.resources}, {"namespaces", &rule.namespaces},
      {"names", &rule.names},         {"nonResourceURLs", &rule.nonResourceURLs},
  };
  for (auto it = node.begin(); it != node.end(); ++it) {
    if (!it->first.IsScalar()) {
      return absl::InvalidArgumentError(absl::StrCat("rules[", index, "]: keys must be strings"));
    }
    const std::string key = it->first.Scalar();
    auto field = std::find_if(std::begin(fields), std::end(fields),
                              [&](const auto& f) { return f.first == key; });
    if (field == std::end(fields)) {
      std::string quoted = "\"" + key + "\"";
      return absl::InvalidArgumentError(
          absl::StrCat("rules[", index, "]: unknown field ", quoted));
    }
    if (auto st = readStringList(it->second, index, key, field->second); !st.ok()) {
      return st;
    }
  }
  if (rule.users.empty() && rule.groups.empty()) {
    return fieldError(index, "users", "users or groups is required");
  }
  if (rule.verbs.empty()) {
    return fieldError(index, "verbs", "required");
  }
  const bool isResourceRule = !rule.apiGroups.empty() || !rule.resources.empty() ||
                              !rule.namespaces.empty() || !rule.names.empty();
  if (!rule.nonResourceURLs.empty()) {
    if (isResourceRule) {
      return fieldError(index, "nonResourceURLs",
                        "cannot be combined with apiGroups, resources, namespaces or names");
    }
    for (size_t i = 0; i < rule.nonResourceURLs.size(); ++i) {
      const std::string& u = rule.nonResourceURLs[i];
      std::string f = absl::StrCat("nonResourceURLs[", i, "]");
      if (u != "*" && (u.empty() || u[0] != '/')) {
        return fieldError(index, f, "must start with \"/\"");
      }
      size_t star = u.find('*');
      if (star != std::string::npos && u.find_first_not_of('*', star) != std::string::npos) {
        return fieldError(index, f, "\"*\" is only allowed at the end");
      }
    }
    return rule;
  }
  if (rule.apiGroups.empty()) {
    return fieldError(index, "apiGroups", "required (use \"\" for the core group)");
  }
  if (rule.resources.empty()) {
    return fieldError(index, "resources", "required");
  }
  return rule;
}

}  // namespace

bool StaticPolicyRule::matches(const UserInfo& user, const RequestInfo& info) const {
  bool subject = containsOrStar(users, user.name);
  if (!subject && !groups.empty()) {
    subject = contains(groups, "*");
    for (const std::string& g : user.groups) {
      subject = subject || contains(groups, g);
    }
  }
  if (!subject || !containsOrStar(verbs, info.verb)) {
    return false;
  }
  if (!info.isResourceRequest) {
    return !nonResourceURLs.empty() && urlMatches(nonResourceURLs, info.path);
  }
  if (!nonResourceURLs.empty()) {
    return false;
  }
  if (!containsOrStar(apiGroups, info.apiGroup)) {
    return false;
  }
  if (!resourceMatches(resources, info)) {
    return false;
  }
  if (!namespaces.empty() && !containsOrStar(namespaces, info.namespaceName)) {
    return false;
  }
  if (!namespaces.empty() && !contains(namespaces, "*") && info.namespaceName.empty()) {
    return false;
  }
  if (!names.empty() && !containsOrStar(names, info.name)) {
    return false;
  }
  return true;
}

absl::StatusOr<StaticPolicy> StaticPolicy::parse(std::string_view yaml) {
  try {
    return parseOrThrow(yaml);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("authorization policy: ", e.what()));
  }
}

absl::StatusOr<StaticPolicy> StaticPolicy::parseOrThrow(std::string_view yaml) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("authorization policy: ", e.what()));
  }
  YAML::Node rules = root;
  if (root.IsMap()) {
    for (auto it = root.begin(); it != root.end(); ++it) {
      if (!it->first.IsScalar() || it->first.Scalar() != "rules") {
        std::string key = it->first.IsScalar() ? it->first.Scalar() : "?";
        return absl::InvalidArgumentError(
            absl::StrCat("authorization policy: unknown field \"", key, "\" (expected \"rules\")"));
      }
    }
    rules = root["rules"];
  }
  StaticPolicy policy;
  if (rules.IsNull() || !rules.IsDefined()) {
    return policy;
  }
  if (!rules.IsSequence()) {
    return absl::InvalidArgumentError("authorization policy: rules must be a list");
  }
  for (size_t i = 0; i < rules.size(); ++i) {
    auto rule = parseRule(rules[i], i);
    if (!rule.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("authorization policy: ", rule.status().message()));
    }
    policy.rules_.push_back(*std::move(rule));
  }
  return policy;
}

absl::StatusOr<StaticPolicy> StaticPolicy::loadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("cannot read authorization policy file ", path));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  auto policy = parse(ss.str());
  if (!policy.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", policy.status().message()));
  }
  return policy;
}

bool StaticPolicy::allows(const UserInfo& user, const RequestInfo& info) const {
  return std::any_of(rules_.begin(), rules_.end(),
                     [&](const StaticPolicyRule& r) { return r.matches(user, info); });
}

}  // namespace aaproxy
