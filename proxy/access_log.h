// One line per finished request at -v 2, and the request metrics, for both HTTP versions.
#pragma once

#include <string_view>

#include "absl/time/time.h"

namespace aaproxy {

struct AccessLogEntry {
  std::string_view method;
  std::string_view target;
  std::string_view verb;  // the Kubernetes verb (upper case) once known, else empty
  std::string_view user;
  int status = 0;
  absl::Duration latency;
  std::string_view audit_id;
  std::string_view client;
  std::string_view protocol;  // "HTTP/1.1", "HTTP/2.0"
};

// apiserver_request_total / _duration_seconds, and at -v 2:
// "GET /apis/..." verb=LIST user="alice" status=200 latency=1.2ms audit-id="..." client=10.0.0.7
// protocol=HTTP/1.1 (the target cut at 256 bytes, the user name escaped onto one line).
void logRequestCompleted(const AccessLogEntry& entry);

}  // namespace aaproxy
