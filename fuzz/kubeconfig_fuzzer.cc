// kubeconfig loading (config/kubeconfig.*) over arbitrary YAML, written to a private temporary
// directory that also holds the files a kubeconfig may name (ca.crt, client.crt, client.key,
// token). Inputs naming other files (an absolute path or "..") are skipped, so that a run never
// reads the machine's files (or /dev/zero).
//
// Input: YAML; a first line "#context:NAME" asks for that context instead of current-context.
//
// Invariants (errors are values, no exception escapes):
//  - an accepted config has a host and a non-zero port, a path prefix that is empty or starts
//    with '/' without a trailing one, a client certificate exactly when it has a key, no CA
//    together with insecure-skip-tls-verify, and names the file and context it came from;
//  - a token file is resolved inside the kubeconfig's directory;
//  - errors name the kubeconfig; loading is deterministic.
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <string>
#include <string_view>

#include "config/kubeconfig.h"
#include "fuzz/fuzz_check.h"
#include "fuzz/fuzz_input.h"

namespace aaproxy::fuzz {
namespace {

const std::string& scratchDirectory() {
  static const std::string dir = [] {
    const char* tmp = std::getenv("TEST_TMPDIR");
    std::string pattern = std::string(tmp != nullptr ? tmp : "/tmp") + "/kubeconfig-fuzz-XXXXXX";
    FUZZ_CHECK(mkdtemp(pattern.data()) != nullptr, pattern);
    for (const char* name : {"ca.crt", "client.crt", "client.key"}) {
      std::ofstream(pattern + "/" + name) << "-----BEGIN PEM-----\nAA==\n-----END PEM-----\n";
    }
    std::ofstream(pattern + "/token") << "  file-token\n";
    return pattern;
  }();
  return dir;
}

// Whether every scalar could only name a file inside the scratch directory. False also for
// documents too big to walk (aliases can make a small text a huge tree).
bool staysInside(const YAML::Node& node, int& budget) {
  if (--budget < 0) {
    return false;
  }
  switch (node.Type()) {
    case YAML::NodeType::Scalar: {
      const std::string& s = node.Scalar();
      return (s.empty() || s[0] != '/') && s.find("..") == std::string::npos;
    }
    case YAML::NodeType::Sequence:
      for (const YAML::Node& item : node) {
        if (!staysInside(item, budget)) {
          return false;
        }
      }
      return true;
    case YAML::NodeType::Map:
      for (const auto& entry : node) {
        if (!staysInside(entry.first, budget) || !staysInside(entry.second, budget)) {
          return false;
        }
      }
      return true;
    default:
      return true;
  }
}

bool safeToLoad(const std::string& text) {
  try {
    YAML::Node root = YAML::Load(text);
    int budget = 5000;
    return staysInside(root, budget);
  } catch (const YAML::Exception&) {
    return true;  // loadKubeconfig fails on it the same way, before reading any other file
  }
}

void checkConfig(const KubeClientConfig& c, const std::string& path, const std::string& context) {
  FUZZ_CHECK(!c.host.empty(), c.server);
  FUZZ_CHECK(c.port != 0, c.server);
  FUZZ_CHECK(c.path_prefix.empty() || (c.path_prefix[0] == '/' && c.path_prefix.back() != '/'),
             c.path_prefix);
  FUZZ_CHECK(c.client_cert_pem.empty() == c.client_key_pem.empty());
  FUZZ_CHECK(!(c.insecure_skip_tls_verify && !c.ca_pem.empty()));
  FUZZ_CHECK(c.source.rfind("kubeconfig " + path + " (context ", 0) == 0, c.source);
  if (!context.empty()) {
    FUZZ_CHECK(c.source == "kubeconfig " + path + " (context " + context + ")", c.source);
  }
  if (!c.bearer_token_file.empty()) {
    FUZZ_CHECK(c.bearer_token_file.rfind(scratchDirectory() + "/", 0) == 0, c.bearer_token_file);
  }
}

}  // namespace
}  // namespace aaproxy::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace aaproxy;
  using namespace aaproxy::fuzz;
  std::string text(asView(data, size));
  std::string context;
  if (text.rfind("#context:", 0) == 0) {
    auto [first, rest] = splitFirstLine(text);
    context = std::string(first.substr(9));
  }
  if (!safeToLoad(text)) {
    return 0;
  }
  const std::string path = scratchDirectory() + "/kubeconfig";
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
  }
  try {
    absl::StatusOr<std::shared_ptr<const KubeClientConfig>> config = loadKubeconfig(path, context);
    absl::StatusOr<std::shared_ptr<const KubeClientConfig>> again = loadKubeconfig(path, context);
    FUZZ_CHECK(config.ok() == again.ok());
    if (!config.ok()) {
      FUZZ_CHECK(config.status().message().rfind("kubeconfig " + path + ": ", 0) == 0,
                 config.status().ToString());
      FUZZ_CHECK(config.status() == again.status(), config.status().ToString());
      return 0;
    }
    checkConfig(**config, path, context);
    FUZZ_CHECK((*config)->server == (*again)->server && (*config)->ca_pem == (*again)->ca_pem &&
               (*config)->bearer_token == (*again)->bearer_token);
  } catch (const std::exception& e) {
    FUZZ_CHECK(false, std::string("exception escaped loadKubeconfig: ") + e.what());
  }
  return 0;
}
