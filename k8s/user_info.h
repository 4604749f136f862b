// The authenticated identity of a caller, as k8s.io/apiserver's user.Info carries it.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace aaproxy {

struct UserInfo {
  std::string name;
  std::string uid;
  std::vector<std::string> groups;
  // Ordered by key so that SAR bodies and cache keys are deterministic.
  std::map<std::string, std::vector<std::string>> extra;

  bool operator==(const UserInfo&) const = default;
};

inline constexpr char kAnonymousUser[] = "system:anonymous";
inline constexpr char kUnauthenticatedGroup[] = "system:unauthenticated";
inline constexpr char kAuthenticatedGroup[] = "system:authenticated";

}  // namespace aaproxy
