// The --config file (config/flags.*): arbitrary YAML written to a temporary file and parsed
// with parseCommandLine({"--config", file, ...}). File-valued settings are only checked for
// readability at this stage (access(2)), so any path the input names is harmless.
//
// Input: YAML; a first line "#args: A B C" adds those command-line arguments after --config.
//
// Invariants (errors are values, no exception escapes):
//  - accepted options are valid: backends (TCP or TLS with host and port, or a Unix socket
//    path; TLS settings only for TLS, a client certificate exactly when a key) that every route
//    of the route table names,
//    1..256 workers, TLS 1.2 or 1.3 as minimum, a certificate exactly when a key, the static
//    authorizer exactly when a policy file, authorization modes from {static, webhook},
//    ports in range, non-negative durations, header and request-line limits in range;
//  - errors name a flag ("--name: ...") or the config file;
//  - parsing is deterministic.
#include <openssl/ssl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "config/flags.h"
#include "config/route_table.h"
#include "fuzz/fuzz_check.h"
#include "fuzz/fuzz_input.h"

namespace aaproxy::fuzz {
namespace {

const std::string& configPath() {
  static const std::string path = [] {
    const char* tmp = std::getenv("TEST_TMPDIR");
    std::string pattern = std::string(tmp != nullptr ? tmp : "/tmp") + "/flags-fuzz-XXXXXX";
    FUZZ_CHECK(mkdtemp(pattern.data()) != nullptr, pattern);
    return pattern + "/config.yaml";
  }();
  return path;
}

void checkOptions(const ProxyOptions& o) {
  // Every backend (--upstream and the routes' own) is complete, and every route names one.
  FUZZ_CHECK(!o.upstreams.empty());
  for (const UpstreamAddress& up : o.upstreams) {
    if (up.kind == UpstreamAddress::Kind::kUnix) {
      FUZZ_CHECK(!up.path.empty() && up.path[0] == '/', up.display);
    } else {
      FUZZ_CHECK(!up.host.empty() && up.port != 0, up.display);
    }
    if (up.kind != UpstreamAddress::Kind::kHttps) {
      FUZZ_CHECK(up.tls == UpstreamTlsOptions(), up.display);
    }
    FUZZ_CHECK(up.tls.client_cert_file.empty() == up.tls.client_key_file.empty());
  }
  FUZZ_CHECK(o.routes != nullptr && !o.routes->routes().empty());
  for (const RouteConfig& route : o.routes->routes()) {
    FUZZ_CHECK(route.upstream_index < o.upstreams.size(), route.path);
    FUZZ_CHECK(!route.path.empty() && route.path[0] == '/', route.path);
  }
  FUZZ_CHECK(o.workers >= 1 && o.workers <= 256);
  FUZZ_CHECK(o.tls_min_version == TLS1_2_VERSION || o.tls_min_version == TLS1_3_VERSION);
  FUZZ_CHECK(o.tls_cert_file.empty() == o.tls_private_key_file.empty());
  bool static_mode = false;
  FUZZ_CHECK(!o.authorization_modes.empty());
  for (const std::string& m : o.authorization_modes) {
    FUZZ_CHECK(m == "static" || m == "webhook", m);
    static_mode |= m == "static";
  }
  FUZZ_CHECK(static_mode == !o.authorization_policy_file.empty());
  FUZZ_CHECK(o.secure_port >= 0 && o.secure_port <= 65535);
  FUZZ_CHECK(o.healthz_port >= 0 && o.healthz_port <= 65535);
  FUZZ_CHECK(o.max_header_bytes >= 1024 && o.max_header_bytes <= (64u << 20));
  FUZZ_CHECK(o.max_request_line_bytes >= 256 && o.max_request_line_bytes <= (16u << 20));
  FUZZ_CHECK(o.http2_max_streams_per_connection >= 0);
  FUZZ_CHECK(o.logging_format == "text" || o.logging_format == "json", o.logging_format);
  FUZZ_CHECK(!o.bind_address.empty());
  for (absl::Duration d :
       {o.token_webhook_cache_ttl, o.configmap_resync_period, o.authorized_ttl, o.unauthorized_ttl,
        o.read_header_timeout, o.idle_timeout, o.upstream_connect_timeout, o.shutdown_grace_period,
        o.tls_reload_interval}) {
    FUZZ_CHECK(d >= absl::ZeroDuration());
  }
  for (const auto* list : {&o.token_audiences, &o.always_allow_groups, &o.always_allow_paths}) {
    for (const std::string& item : *list) {
      FUZZ_CHECK(!item.empty(), item);
    }
  }
}

}  // namespace
}  // namespace aaproxy::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace aaproxy;
  using namespace aaproxy::fuzz;
  std::string_view text = asView(data, size);
  std::vector<std::string> args = {"--config", configPath()};
  if (text.rfind("#args:", 0) == 0) {
    auto [first, rest] = splitFirstLine(text);
    for (std::string_view arg : splitAll(first.substr(6), ' ')) {
      if (!arg.empty()) {
        args.emplace_back(arg);
      }
    }
  }
  {
    std::ofstream out(configPath(), std::ios::binary | std::ios::trunc);
    out << text;
  }
  try {
    absl::StatusOr<CommandLine> parsed = parseCommandLine(args);
    absl::StatusOr<CommandLine> again = parseCommandLine(args);
    FUZZ_CHECK(parsed.ok() == again.ok());
    if (!parsed.ok()) {
      FUZZ_CHECK(parsed.status() == again.status(), parsed.status().ToString());
      std::string message(parsed.status().message());
      FUZZ_CHECK(message.rfind("--", 0) == 0 || message.rfind("unexpected argument", 0) == 0 ||
                     message.rfind("unknown flag", 0) == 0,
                 message);
      return 0;
    }
    if (!parsed->show_help) {
      checkOptions(parsed->options);
      FUZZ_CHECK(parsed->options.upstream == again->options.upstream);
      FUZZ_CHECK(parsed->options.upstreams == again->options.upstreams);
    }
  } catch (const std::exception& e) {
    FUZZ_CHECK(false, std::string("exception escaped parseCommandLine: ") + e.what());
  }
  return 0;
}
