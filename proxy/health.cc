// Text format as k8s.io/apiserver's healthz handlers write it ("[+]ping ok", "[-]x failed: ...").
#include "proxy/health.h"

#include "absl/strings/str_cat.h"

namespace aaproxy {

std::vector<HealthCheckResult> runHealthChecks(const HealthState& state, bool readiness) {
  std::vector<HealthCheckResult> checks;
  checks.push_back({"ping", true, ""});
  if (!readiness) {
    return checks;
  }
  checks.push_back({"extension-apiserver-authentication", state.authenticationConfigLoaded(),
                    "authentication configuration not loaded yet"});
  checks.push_back({"backend", state.backendReachable(), "the backend is not reachable"});
  checks.push_back({"shutdown", !state.shuttingDown(), "process is shutting down"});
  std::string config_error = state.configFileError();
  checks.push_back({"config-files", config_error.empty(),
                    absl::StrCat("rejected, the last good configuration serves: ", config_error),
                    true});
  return checks;
}

std::optional<HealthResponse> serveHealthEndpoint(const HealthState& state, std::string_view path,
                                                  std::string_view query) {
  for (std::string_view endpoint : {"/healthz", "/livez", "/readyz"}) {
    bool exact = path == endpoint;
    bool sub = path.size() > endpoint.size() && path.substr(0, endpoint.size()) == endpoint &&
               path[endpoint.size()] == '/';
    if (!exact && !sub) {
      continue;
    }
    std::string only(sub ? path.substr(endpoint.size() + 1) : "");
    bool verbose = false;
    while (!query.empty()) {
      size_t amp = query.find('&');
      std::string_view param = query.substr(0, amp);
      verbose |= param == "verbose" || param.substr(0, 8) == "verbose=";
      query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    }
    return renderHealth(std::string(endpoint.substr(1)),
                        runHealthChecks(state, endpoint == "/readyz"), verbose, only);
  }
  return std::nullopt;
}

HealthResponse renderHealth(const std::string& endpoint, const std::vector<HealthCheckResult>& checks,
                            bool verbose, const std::string& only) {
  HealthResponse response;
  if (!only.empty()) {
    for (const HealthCheckResult& check : checks) {
      if (check.name == only) {
        if (check.ok) {
          response.body = "ok";
        } else {
          response.status = 500;
          response.body = absl::StrCat("internal server error: ", check.reason, "\n");
        }
        return response;
      }
    }
    response.status = 404;
    response.body = "404 page not found\n";
    return response;
  }
  bool all_ok = true;
  std::string list;
  for (const HealthCheckResult& check : checks) {
    if (check.ok) {
      absl::StrAppend(&list, "[+]", check.name, " ok\n");
    } else {
      all_ok = all_ok && check.informational;
      // Upstream withholds reasons from the aggregate endpoint; they are in the logs.
      absl::StrAppend(&list, "[-]", check.name, " failed: reason withheld\n");
    }
  }
  if (all_ok && !verbose) {
    response.body = "ok";
    return response;
  }
  response.status = all_ok ? 200 : 500;
  response.body = absl::StrCat(list, endpoint, all_ok ? " check passed\n" : " check failed\n");
  return response;
}

}  // namespace aaproxy
