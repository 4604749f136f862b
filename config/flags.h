// Command-line parsing for aa-proxy: k8s.io/apiserver flag names, one clear error naming the flag.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "config/proxy_options.h"

namespace aaproxy {

// What the command line asked for: run with options, or print help.
struct CommandLine {
  bool show_help = false;
  ProxyOptions options;
};

// Parses argv (without argv[0]). Errors read like `--secure-port: "abc" is not a port number`.
// File-valued flags are checked for readability here so a bad path fails before serving.
absl::StatusOr<CommandLine> parseCommandLine(const std::vector<std::string>& args);

// Reads the routes of `options.config_file` again (live reload): the same validation as at
// start, resolved against the backends `options` started with (a route may name only those:
// connection pools are made once). Errors name the file and field; a file that no longer has
// `routes` gives the default table ("/" to --upstream).
absl::StatusOr<std::shared_ptr<const RouteTable>> reloadRouteTable(const ProxyOptions& options);

// The text `aa-proxy --help` prints: every flag, its default and meaning.
std::string helpText();

}  // namespace aaproxy
