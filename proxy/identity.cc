#include "proxy/identity.h"

#include <cstdio>

namespace aaproxy {

void setIdentityHeaders(HeaderMap& headers, const UserInfo& user) {
  headers.add("X-Remote-User", user.name);
  if (!user.uid.empty()) {
    headers.add("X-Remote-Uid", user.uid);
  }
  for (const std::string& group : user.groups) {
    headers.add("X-Remote-Group", group);
  }
  for (const auto& [key, values] : user.extra) {
    std::string escaped;
    for (unsigned char ch : key) {
      bool token = std::isalnum(ch) || std::string_view("!#$&'*+-.^_`|~").find(ch) != std::string_view::npos;
      if (token) {
        escaped += static_cast<char>(ch);
      } else {
        char buf[4];
        std::snprintf(buf, sizeof(buf), "%%%02X", ch);
        escaped += buf;
      }
    }
    for (const std::string& value : values) {
      headers.add("X-Remote-Extra-" + escaped, value);
    }
  }
}

}  // namespace aaproxy
