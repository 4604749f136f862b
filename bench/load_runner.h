// The load generator's engine: a closed loop of HTTP/1.1 keep-alive requests over N connections
// (optionally TLS with a client certificate), one libevent loop per thread.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "bench/latency_histogram.h"
#include "bench/loadgen_options.h"

namespace aaproxy {

struct LoadResult {
  uint64_t responses = 0;  // complete responses within the duration, any status
  uint64_t responses_2xx = 0;
  uint64_t non_2xx = 0;
  uint64_t connect_errors = 0;  // TCP connect or TLS handshake failed
  uint64_t io_errors = 0;       // reset, EOF or unparseable data while a response was due
  uint64_t timeouts = 0;
  uint64_t connects = 0;     // completed connects (and handshakes)
  uint64_t tls_resumed = 0;  // of those, TLS handshakes that resumed a session
  std::string tls_protocol;  // of the first handshake, e.g. "TLSv1.3"
  std::string tls_cipher;
  LatencyHistogram latency;  // request written -> last byte of the response
  double elapsed_s = 0;

  uint64_t errors() const { return non_2xx + connect_errors + io_errors + timeouts; }
  void merge(const LoadResult& other);
};

// Runs the load for options.duration. Errors are setup problems (unresolvable host, unreadable
// certificate); failures during the run are counted in the result.
absl::StatusOr<LoadResult> runLoad(const LoadgenOptions& options);

// The one-line JSON report (fields documented in bench/README.md).
std::string loadResultJson(const LoadgenOptions& options, const LoadResult& result,
                           double loadgen_cpu_s);

}  // namespace aaproxy
