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

// The text `aa-proxy --help` prints: every flag, its default and meaning.
std::string helpText();

}  // namespace aaproxy
