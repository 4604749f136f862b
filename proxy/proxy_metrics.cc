#include "proxy/proxy_metrics.h"

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"

namespace aaproxy {

ProxyMetrics& ProxyMetrics::get() {
  static ProxyMetrics* metrics = [] {
    MetricsRegistry& r = MetricsRegistry::global();
    return new ProxyMetrics{
        r.counter("aaproxy_tls_handshakes_total", "Completed TLS handshakes with clients."),
        r.counter("aaproxy_tls_resumptions_total", "TLS handshakes that resumed a session."),
        r.counter("aaproxy_tls_handshake_errors_total", "Failed TLS handshakes."),
        r.counter("aaproxy_connections_accepted_total", "Client connections accepted."),
        r.counter("aaproxy_upstream_errors_total", "Failures talking to the backend.", "kind=\"connect\""),
        r.counter("aaproxy_upstream_errors_total", "Failures talking to the backend.", "kind=\"response\""),
        r.counter("aaproxy_upstream_tls_handshakes_total",
                  "Completed TLS handshakes with an https:// backend, by session resumption.",
                  "resumed=\"false\""),
        r.counter("aaproxy_upstream_tls_handshakes_total",
                  "Completed TLS handshakes with an https:// backend, by session resumption.",
                  "resumed=\"true\""),
        r.counter("aaproxy_requests_total", "Finished requests by the HTTP version clients spoke.",
                  "protocol=\"HTTP/1.1\""),
        r.counter("aaproxy_requests_total", "Finished requests by the HTTP version clients spoke.",
                  "protocol=\"HTTP/2.0\""),
        r.counter("aaproxy_http2_flow_control_stalls_total",
                  "HTTP/2 connections closed and streams reset because no response data could be "
                  "sent to the client for --http2-stall-timeout.",
                  "scope=\"connection\""),
        r.counter("aaproxy_http2_flow_control_stalls_total",
                  "HTTP/2 connections closed and streams reset because no response data could be "
                  "sent to the client for --http2-stall-timeout.",
                  "scope=\"stream\""),
    };
  }();
  return *metrics;
}

namespace {

struct RequestKey {
  std::string verb;
  int code;
  bool operator==(const RequestKey&) const = default;
  template <typename H>
  friend H AbslHashValue(H h, const RequestKey& k) {
    return H::combine(std::move(h), k.verb, k.code);
  }
};

}  // namespace

void ProxyMetrics::recordRequest(std::string_view verb, int code, double seconds) {
  using Key = RequestKey;
  // Per-thread caches of the counters: the registry's lock is taken only on a first sighting.
  thread_local absl::flat_hash_map<Key, Counter*> counters;
  thread_local absl::flat_hash_map<std::string, Histogram*> histograms;
  Key key{std::string(verb), code};
  auto it = counters.find(key);
  if (it == counters.end()) {
    Counter& c = MetricsRegistry::global().counter(
        "apiserver_request_total", "Counter of requests broken out by verb and HTTP response code.",
        absl::StrCat("code=\"", code, "\",verb=\"", escapeLabelValue(key.verb), "\""));
    it = counters.emplace(key, &c).first;
  }
  it->second->inc();
  auto hit = histograms.find(key.verb);
  if (hit == histograms.end()) {
    Histogram& h = MetricsRegistry::global().histogram(
        "apiserver_request_duration_seconds", "Response latency distribution in seconds for each verb.",
        absl::StrCat("verb=\"", escapeLabelValue(key.verb), "\""), requestDurationBuckets());
    hit = histograms.emplace(key.verb, &h).first;
  }
  hit->second->observe(seconds);
}

}  // namespace aaproxy
