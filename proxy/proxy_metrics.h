// The data plane's metrics, declared in one place. Names follow Kubernetes components
// (apiserver_request_total, apiserver_request_duration_seconds) plus aaproxy_* for the proxy's own.
#pragma once

#include <string>
#include <string_view>

#include "common/metrics.h"

namespace aaproxy {

struct ProxyMetrics {
  Counter& tls_handshakes;
  Counter& tls_resumptions;
  Counter& tls_handshake_errors;
  Counter& connections_accepted;
  Counter& upstream_connect_errors;
  Counter& upstream_response_errors;
  // aaproxy_upstream_tls_handshakes_total{resumed}: completed handshakes with an https:// backend.
  Counter& upstream_tls_full_handshakes;
  Counter& upstream_tls_resumptions;
  // aaproxy_requests_total{protocol}: finished requests per HTTP version.
  Counter& requests_http1;
  Counter& requests_http2;
  // aaproxy_http2_flow_control_stalls_total{scope}: HTTP/2 connections closed and streams reset
  // because the client's flow-control window stayed shut for --http2-stall-timeout.
  Counter& http2_stalled_connections;
  Counter& http2_stalled_streams;

  static ProxyMetrics& get();

  // apiserver_request_total{code,verb} and apiserver_request_duration_seconds{verb}; `verb` is the
  // Kubernetes verb (LIST, WATCH, GET, ...) in upper case as apiserver reports it.
  static void recordRequest(std::string_view verb, int code, double seconds);
};

}  // namespace aaproxy
