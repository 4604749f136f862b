// --authorization-policy-file: a local, RBAC-like allow list for standalone mode (no
// kube-apiserver to ask). It can only allow; anything it does not match is "no opinion".
//
// Format (YAML). Either a top-level list of rules or a mapping with a `rules:` list:
//
//   rules:
//     # Resource rule: who, which verbs, which API groups and resources, optionally where.
//     - users: ["alice"]                 # user names; "*" = any user
//       groups: ["sample-readers"]       # group names; "*" = any group. users or groups required
//       verbs: ["get", "list", "watch"]  # kube verbs (get list watch create update patch delete
//                                        # deletecollection proxy ...); "*" = any. Required.
//       apiGroups: ["sample-api-server"] # "" is the core group; "*" = any. Required here.
//       resources: ["samples", "samples/status", "*/scale"]
//                                        # "res" matches only the resource itself, "res/sub" its
//                                        # subresource, "*/sub" that subresource of anything,
//                                        # "*" everything. Required here.
//       namespaces: ["default"]          # optional; absent/empty = every namespace and the
//                                        # cluster scope; "*" = same; otherwise the request's
//                                        # namespace must be listed (cluster scope never is).
//       names: ["sample1"]               # optional; absent/empty = any name (including none)
//     # Non-resource rule: paths instead of resources.
//     - groups: ["system:authenticated"]
//       verbs: ["get"]                   # lowercased HTTP methods for non-resource requests
//       nonResourceURLs: ["/openapi/*", "/apis/sample-api-server/v1alpha1"]
//                                        # exact path, a trailing "*" is a prefix, "*" = any
//
// A rule has either nonResourceURLs or apiGroups+resources, never both. Unknown fields, wrong
// types and missing required fields are errors naming the rule index and the field, e.g.
// `rules[2].verbs: required` or `rules[0]: unknown field "verb"`.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "authz/request_info.h"
#include "k8s/user_info.h"

namespace aaproxy {

struct StaticPolicyRule {
  std::vector<std::string> users;
  std::vector<std::string> groups;
  std::vector<std::string> verbs;
  std::vector<std::string> apiGroups;
  std::vector<std::string> resources;
  std::vector<std::string> namespaces;
  std::vector<std::string> names;
  std::vector<std::string> nonResourceURLs;

  bool matches(const UserInfo& user, const RequestInfo& info) const;
};

class StaticPolicy {
 public:
  static absl::StatusOr<StaticPolicy> parse(std::string_view yaml);
  static absl::StatusOr<StaticPolicy> loadFile(const std::string& path);

  // True when some rule allows the request (allow); false means no opinion.
  bool allows(const UserInfo& user, const RequestInfo& info) const;

  const std::vector<StaticPolicyRule>& rules() const { return rules_; }

 private:
  static absl::StatusOr<StaticPolicy> parseOrThrow(std::string_view yaml);

  std::vector<StaticPolicyRule> rules_;
};

}  // namespace aaproxy
