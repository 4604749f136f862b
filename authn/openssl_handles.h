// authn's OpenSSL handles are the project-wide ones.
#pragma once

#include "common/openssl_handles.h"
