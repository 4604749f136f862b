// Where and how to reach kube-apiserver: a kubeconfig file (as client-go reads it) or the
// in-cluster service account. Loaded once at startup into an immutable KubeClientConfig.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace aaproxy {

// Everything the kube-apiserver client needs; PEM material is held inline, never re-read, except
// the bearer token file which the client re-reads as client-go does.
struct KubeClientConfig {
  std::string server;  // as configured, e.g. "https://10.0.0.1:443"
  std::string host;    // host name or IP literal, without IPv6 brackets
  uint16_t port = 443;
  std::string path_prefix;      // "" or "/prefix" (no trailing slash), prepended to request paths
  std::string tls_server_name;  // SNI and verification name override; empty: `host`
  std::string ca_pem;           // empty: the system trust store
  bool insecure_skip_tls_verify = false;
  std::string client_cert_pem;  // with client_key_pem, presented to kube-apiserver
  std::string client_key_pem;
  std::string bearer_token;       // initial token (from `token`, or read from token_file at load)
  std::string bearer_token_file;  // non-empty: re-read periodically by the client
  std::string source;             // "kubeconfig /path (context ctx)" or "in-cluster", for messages
};

// Reads a kubeconfig YAML. `context` empty: the file's current-context. Relative file references
// are resolved against the kubeconfig's directory.
absl::StatusOr<std::shared_ptr<const KubeClientConfig>> loadKubeconfig(
    const std::string& path, const std::string& context = "");

// The in-cluster inputs; `fromProcess()` reads the real environment.
struct InClusterEnvironment {
  std::string service_host;  // KUBERNETES_SERVICE_HOST
  std::string service_port;  // KUBERNETES_SERVICE_PORT
  std::string service_account_dir = "/var/run/secrets/kubernetes.io/serviceaccount";

  static InClusterEnvironment fromProcess();
};

absl::StatusOr<std::shared_ptr<const KubeClientConfig>> loadInClusterConfig(
    const InClusterEnvironment& env = InClusterEnvironment::fromProcess());

// `kubeconfig_path` non-empty: loadKubeconfig; otherwise in-cluster.
absl::StatusOr<std::shared_ptr<const KubeClientConfig>> loadKubeClientConfig(
    const std::string& kubeconfig_path, const std::string& context = "",
    const InClusterEnvironment& env = InClusterEnvironment::fromProcess());

}  // namespace aaproxy
