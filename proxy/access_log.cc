#include "proxy/access_log.h"

#include "absl/strings/escaping.h"
#include "common/logging.h"
#include "proxy/proxy_metrics.h"

namespace aaproxy {

void logRequestCompleted(const AccessLogEntry& e) {
  std::string_view verb = e.verb.empty() ? e.method : e.verb;
  if (verb.empty()) {
    verb = "UNKNOWN";
  }
  ProxyMetrics::recordRequest(verb, e.status, absl::ToDoubleSeconds(e.latency));
  (e.protocol == "HTTP/2.0" ? ProxyMetrics::get().requests_http2
                            : ProxyMetrics::get().requests_http1)
      .inc();
  constexpr size_t kMaxLoggedTarget = 256;
  AA_VLOG(2) << "\"" << e.method << " " << e.target.substr(0, kMaxLoggedTarget)
             << (e.target.size() > kMaxLoggedTarget ? "..." : "") << "\" verb=" << verb
             << " user=\"" << absl::CEscape(absl::string_view(e.user.data(), e.user.size()))
             << "\" status=" << e.status << " latency=" << absl::FormatDuration(e.latency)
             << " audit-id=\"" << e.audit_id << "\" client=" << e.client
             << " protocol=" << e.protocol;
}

}  // namespace aaproxy
