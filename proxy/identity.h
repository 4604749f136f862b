// Placeholder until authn/identity_headers lands: the standard X-Remote-* encoding of a UserInfo.
#pragma once

#include "k8s/header_map.h"
#include "k8s/user_info.h"

namespace aaproxy {

void setIdentityHeaders(HeaderMap& headers, const UserInfo& user);

}  // namespace aaproxy
