// Runs e2e/fake_apiserver.py (the kube-apiserver test double) as a child process for C++ tests:
// generated certificates, the ConfigMap and policy files, and blocking access to its control API.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "config/kubeconfig.h"
#include "kube/testing/test_certs.h"

namespace aaproxy::testing {

struct RecordedRequest {
  int connection = 0;
  std::string method;
  std::string path;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string client_cert_cn;

  // First value of a header (case-insensitive), "" when absent.
  std::string header(std::string_view name) const;
};

class FakeApiServerProcess {
 public:
  struct Options {
    bool require_client_cert = false;
    // Path of fake_apiserver.py; default: e2e/fake_apiserver.py under the test's runfiles.
    std::string script;
  };

  // Starts the server and waits for its `listening on` line.
  static absl::StatusOr<std::unique_ptr<FakeApiServerProcess>> start(const Options& options);
  static absl::StatusOr<std::unique_ptr<FakeApiServerProcess>> start() { return start(Options()); }
  ~FakeApiServerProcess();  // SIGTERM, then reaps the child

  int port() const { return port_; }
  const std::string& dir() const { return dir_; }
  const TestCertificate& ca() const { return ca_; }
  const TestCertificate& clientCert() const { return client_; }  // CN=aa-proxy, O=proxies

  // A KubeClientConfig for https://127.0.0.1:<port> trusting the test CA.
  std::shared_ptr<KubeClientConfig> clientConfig() const;

  // Rewrites the ConfigMap data file (a JSON object) / removes it (ConfigMap absent).
  void writeConfigMapData(const std::string& json) const;
  void removeConfigMap() const;
  void writePolicy(const std::string& json) const;

  // The control API over a blocking connection of its own (not through the client under test).
  absl::StatusOr<std::vector<RecordedRequest>> recorded() const;
  absl::Status reset() const;

 private:
  FakeApiServerProcess() = default;
  absl::StatusOr<std::string> control(const std::string& method, const std::string& path) const;

  pid_t pid_ = -1;
  int port_ = 0;
  std::string dir_;
  TestCertificate ca_;
  TestCertificate client_;
};

}  // namespace aaproxy::testing
