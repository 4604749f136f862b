// Command-line options of the benchmark load generator, parsed and validated once.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace aaproxy {

struct LoadgenUrl {
  bool tls = false;
  std::string host;  // without brackets for IPv6 literals
  uint16_t port = 0;
  std::string path_and_query;  // always starts with '/'
  std::string host_header;     // host[:port] as it goes into the Host header
};

struct LoadgenOptions {
  LoadgenUrl url;
  std::string cert_file;
  std::string key_file;
  std::string cacert_file;
  bool insecure = false;
  int connections = 64;
  int threads = 1;
  absl::Duration duration = absl::Seconds(10);
  absl::Duration timeout = absl::Seconds(10);
  std::vector<std::string> headers;  // "Name: value", validated
  bool help = false;
};

absl::StatusOr<LoadgenUrl> parseLoadgenUrl(const std::string& url);

// Accepts `--flag value` and `--flag=value`. Errors name the offending flag.
absl::StatusOr<LoadgenOptions> parseLoadgenOptions(const std::vector<std::string>& args);

extern const char kLoadgenUsage[];

}  // namespace aaproxy
