// The static authorization policy (authz/static_policy.*) over arbitrary YAML.
//
// Invariants (errors are values, no exception escapes):
//  - an accepted rule satisfies the documented shape: users or groups, verbs, and either
//    nonResourceURLs ("*" or starting with "/", '*' only at the end) alone or apiGroups and
//    resources;
//  - each rule allows the request it describes (first user or group, verb, group, resource,
//    namespace, name or path), and the policy only allows: a caller no rule names (no "*"
//    either) is never allowed;
//  - errors start with "authorization policy: ".
#include <cstdint>
#include <exception>
#include <string>
#include <string_view>

#include "authz/request_info.h"
#include "authz/static_policy.h"
#include "fuzz/fuzz_check.h"
#include "fuzz/fuzz_input.h"
#include "k8s/user_info.h"

namespace aaproxy::fuzz {
namespace {

std::string orDefault(const std::string& v, const char* instead_of_star) {
  return v == "*" ? instead_of_star : v;
}

void checkRule(const StaticPolicy& policy, const StaticPolicyRule& rule) {
  FUZZ_CHECK(!rule.users.empty() || !rule.groups.empty());
  FUZZ_CHECK(!rule.verbs.empty());
  const bool resource_rule = !rule.apiGroups.empty() || !rule.resources.empty() ||
                             !rule.namespaces.empty() || !rule.names.empty();
  if (!rule.nonResourceURLs.empty()) {
    FUZZ_CHECK(!resource_rule);
    for (const std::string& u : rule.nonResourceURLs) {
      FUZZ_CHECK(u == "*" || (!u.empty() && u[0] == '/'), u);
      size_t star = u.find('*');
      FUZZ_CHECK(star == std::string::npos || u.find_first_not_of('*', star) == std::string::npos,
                 u);
    }
  } else {
    FUZZ_CHECK(!rule.apiGroups.empty() && !rule.resources.empty());
  }

  UserInfo user;
  if (!rule.users.empty()) {
    user.name = orDefault(rule.users[0], "someone");
  } else {
    user.name = "someone";
    user.groups.push_back(orDefault(rule.groups[0], "some-group"));
  }
  RequestInfo info;
  info.verb = orDefault(rule.verbs[0], "get");
  if (!rule.nonResourceURLs.empty()) {
    std::string path = rule.nonResourceURLs[0];
    while (!path.empty() && path.back() == '*') {
      path.pop_back();
    }
    info.path = path.empty() ? "/anything" : path;
  } else {
    const std::string& resource = rule.resources[0];
    if (!resource.empty() && resource.back() == '/') {
      return;  // "res/", "*/": an empty subresource, which no request has (as in RBAC)
    }
    info.isResourceRequest = true;
    info.apiGroup = orDefault(rule.apiGroups[0], "some.group");
    size_t slash = resource.find('/');
    if (resource == "*") {
      info.resource = "things";
    } else if (slash == std::string::npos) {
      info.resource = resource;
    } else {
      info.resource = resource.substr(0, slash) == "*" ? "things" : resource.substr(0, slash);
      info.subresource = resource.substr(slash + 1);
    }
    if (!rule.namespaces.empty()) {
      info.namespaceName = orDefault(rule.namespaces[0], "ns");
      if (info.namespaceName.empty()) {
        return;  // "" lists the cluster scope, which a namespace list never matches
      }
    }
    if (!rule.names.empty()) {
      info.name = orDefault(rule.names[0], "a-name");
    }
  }
  FUZZ_CHECK(rule.matches(user, info), user.name + " " + info.verb + " " + info.path);
  FUZZ_CHECK(policy.allows(user, info));
  // The other kind of request never matches this rule.
  RequestInfo other = info;
  other.isResourceRequest = !info.isResourceRequest;
  if (other.isResourceRequest) {
    other.resource = "things";
    other.apiGroup = "some.group";
  }
  FUZZ_CHECK(!rule.matches(user, other));
}

}  // namespace
}  // namespace aaproxy::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace aaproxy;
  using namespace aaproxy::fuzz;
  try {
    absl::StatusOr<StaticPolicy> policy = StaticPolicy::parse(asView(data, size));
    if (!policy.ok()) {
      FUZZ_CHECK(policy.status().message().rfind("authorization policy: ", 0) == 0,
                 policy.status().ToString());
      return 0;
    }
    bool star_subject = false;
    for (const StaticPolicyRule& rule : policy->rules()) {
      checkRule(*policy, rule);
      for (const std::string& u : rule.users) {
        star_subject |= u == "*" || u == "\x01nobody";
      }
      for (const std::string& g : rule.groups) {
        star_subject |= g == "*";
      }
    }
    if (!star_subject) {
      UserInfo nobody;
      nobody.name = "\x01nobody";
      RequestInfo get;
      get.verb = "get";
      get.path = "/";
      FUZZ_CHECK(!policy->allows(nobody, get));
      get.isResourceRequest = true;
      get.resource = "things";
      FUZZ_CHECK(!policy->allows(nobody, get));
    }
  } catch (const std::exception& e) {
    FUZZ_CHECK(false, std::string("exception escaped StaticPolicy::parse: ") + e.what());
  }
  return 0;
}
