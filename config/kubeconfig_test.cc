#include "config/kubeconfig.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>

#include "absl/strings/str_replace.h"

namespace aaproxy {
namespace {

// "-----BEGIN CERTIFICATE-----\nCA\n" and friends, base64-encoded, keep the cases readable.
constexpr char kCaPem[] = "ca-pem\n";
constexpr char kCaPemB64[] = "Y2EtcGVtCg==";
constexpr char kCertPemB64[] = "Y2VydC1wZW0K";  // "cert-pem\n"
constexpr char kKeyPemB64[] = "a2V5LXBlbQo=";   // "key-pem\n"

class TempDir {
 public:
  TempDir() {
    std::string tmpl =
        std::string(std::getenv("TEST_TMPDIR") ? std::getenv("TEST_TMPDIR") : "/tmp") +
        "/kubeconfigXXXXXX";
    path_ = mkdtemp(tmpl.data());
  }
  const std::string& path() const { return path_; }
  void write(const std::string& name, const std::string& contents) const {
    std::string full = path_ + "/" + name;
    size_t slash = full.rfind('/');
    mkdir(full.substr(0, slash).c_str(), 0755);
    std::ofstream(full) << contents;
  }

 private:
  std::string path_;
};

struct KubeconfigCase {
  std::string name;
  std::string yaml;  // "{dir}" is replaced with the temp directory
  std::map<std::string, std::string> files;
  std::string context;
  // Expectations: either error (exact, after "kubeconfig <path>: ") or fields.
  std::string error;
  std::string host;
  uint16_t port = 0;
  std::string path_prefix;
  std::string ca;
  std::string cert;
  std::string key;
  std::string token;
  std::string token_file;  // relative to {dir}
  bool insecure = false;
  std::string sni;
};

std::string yamlFor(const std::string& cluster, const std::string& user,
                    const std::string& extra_top = "") {
  return "apiVersion: v1\nkind: Config\ncurrent-context: main\n" + extra_top +
         "contexts:\n- name: main\n  context: {cluster: c1, user: u1}\n"
         "- name: other\n  context: {cluster: c2, user: u2}\n"
         "clusters:\n- name: c1\n  cluster:\n" +
         cluster +
         "- name: c2\n  cluster:\n    server: https://other.example:8443\n"
         "    insecure-skip-tls-verify: true\n"
         "users:\n- name: u1\n  user:\n" +
         user + "- name: u2\n  user:\n    token: other-token\n";
}

class KubeconfigTableTest : public ::testing::TestWithParam<KubeconfigCase> {};

TEST_P(KubeconfigTableTest, Loads) {
  const KubeconfigCase& tc = GetParam();
  TempDir dir;
  for (const auto& [name, contents] : tc.files) {
    dir.write(name, contents);
  }
  const std::string path = dir.path() + "/kubeconfig";
  dir.write("kubeconfig", absl::StrReplaceAll(tc.yaml, {{"{dir}", dir.path()}}));
  absl::StatusOr<std::shared_ptr<const KubeClientConfig>> got = loadKubeconfig(path, tc.context);
  if (!tc.error.empty()) {
    ASSERT_FALSE(got.ok());
    EXPECT_EQ(got.status().message(),
              "kubeconfig " + path + ": " + absl::StrReplaceAll(tc.error, {{"{dir}", dir.path()}}));
    return;
  }
  ASSERT_TRUE(got.ok()) << got.status();
  const KubeClientConfig& c = **got;
  EXPECT_EQ(c.host, tc.host);
  EXPECT_EQ(c.port, tc.port);
  EXPECT_EQ(c.path_prefix, tc.path_prefix);
  EXPECT_EQ(c.ca_pem, tc.ca);
  EXPECT_EQ(c.client_cert_pem, tc.cert);
  EXPECT_EQ(c.client_key_pem, tc.key);
  EXPECT_EQ(c.bearer_token, tc.token);
  EXPECT_EQ(c.bearer_token_file, tc.token_file.empty() ? "" : dir.path() + "/" + tc.token_file);
  EXPECT_EQ(c.insecure_skip_tls_verify, tc.insecure);
  EXPECT_EQ(c.tls_server_name, tc.sni);
}

const std::string kServer = "    server: https://10.0.0.1:6443\n";
const std::string kCaData = std::string("    certificate-authority-data: ") + kCaPemB64 + "\n";

INSTANTIATE_TEST_SUITE_P(
    Table, KubeconfigTableTest,
    ::testing::Values(
        KubeconfigCase{.name = "inline_data",
                       .yaml = yamlFor(kServer + kCaData,
                                       std::string("    client-certificate-data: ") + kCertPemB64 +
                                           "\n    client-key-data: " + kKeyPemB64 + "\n"),
                       .host = "10.0.0.1",
                       .port = 6443,
                       .ca = kCaPem,
                       .cert = "cert-pem\n",
                       .key = "key-pem\n"},
        KubeconfigCase{.name = "relative_files_resolved_against_kubeconfig_dir",
                       .yaml = yamlFor(kServer + "    certificate-authority: pki/ca.crt\n",
                                       "    client-certificate: pki/client.crt\n"
                                       "    client-key: {dir}/pki/client.key\n"
                                       "    tokenFile: secrets/token\n"),
                       .files = {{"pki/ca.crt", "CA"},
                                 {"pki/client.crt", "CRT"},
                                 {"pki/client.key", "KEY"},
                                 {"secrets/token", "  tok-from-file\n"}},
                       .host = "10.0.0.1",
                       .port = 6443,
                       .ca = "CA",
                       .cert = "CRT",
                       .key = "KEY",
                       .token = "tok-from-file",
                       .token_file = "secrets/token"},
        KubeconfigCase{.name = "inline_token_wins_but_file_kept_for_rereads",
                       .yaml = yamlFor(kServer + kCaData, "    token: inline\n    tokenFile: tf\n"),
                       .files = {{"tf", "file"}},
                       .host = "10.0.0.1",
                       .port = 6443,
                       .ca = kCaPem,
                       .token = "inline",
                       .token_file = "tf"},
        KubeconfigCase{.name = "explicit_context_insecure_default_port",
                       .yaml = yamlFor(kServer, "    token: t\n"),
                       .context = "other",
                       .host = "other.example",
                       .port = 8443,
                       .token = "other-token",
                       .insecure = true},
        KubeconfigCase{.name = "ipv6_default_port_prefix_sni",
                       .yaml = yamlFor("    server: https://[fd00::1]/k8s/\n"
                                       "    tls-server-name: kubernetes\n" +
                                           kCaData,
                                       "    token: t\n"),
                       .host = "fd00::1",
                       .port = 443,
                       .path_prefix = "/k8s",
                       .ca = kCaPem,
                       .token = "t",
                       .sni = "kubernetes"},
        KubeconfigCase{.name = "bad_base64",
                       .yaml = yamlFor(kServer + kCaData,
                                       "    client-certificate-data: " + std::string(kCertPemB64) +
                                           "\n    client-key-data: a2V5!\n"),
                       .error = "users[0].user.client-key-data: invalid base64"},
        KubeconfigCase{.name = "base64_without_padding_is_invalid_as_in_go",
                       .yaml = yamlFor(kServer + "    certificate-authority-data: Y2EtcGVtCg\n",
                                       "    token: t\n"),
                       .error = "clusters[0].cluster.certificate-authority-data: invalid base64"},
        KubeconfigCase{
            .name = "missing_ca_file",
            .yaml = yamlFor(kServer + "    certificate-authority: nope.crt\n", ""),
            .error = "clusters[0].cluster.certificate-authority: cannot read {dir}/nope.crt"},
        KubeconfigCase{
            .name = "both_data_and_file",
            .yaml = yamlFor(kServer + kCaData + "    certificate-authority: ca.crt\n", ""),
            .files = {{"ca.crt", "x"}},
            .error = "clusters[0].cluster: both certificate-authority-data and "
                     "certificate-authority are specified"},
        KubeconfigCase{
            .name = "insecure_with_ca",
            .yaml = yamlFor(kServer + kCaData + "    insecure-skip-tls-verify: true\n", ""),
            .error = "clusters[0].cluster: specifying a root certificates file with the "
                     "insecure flag is not allowed"},
        KubeconfigCase{.name = "cert_without_key",
                       .yaml = yamlFor(kServer, std::string("    client-certificate-data: ") +
                                                    kCertPemB64 + "\n"),
                       .error = "users[0].user: client-key-data or client-key must be specified to "
                                "use client-certificate"},
        KubeconfigCase{.name = "unknown_context",
                       .yaml = yamlFor(kServer, ""),
                       .context = "nope",
                       .error = "context \"nope\" not found"},
        KubeconfigCase{.name = "no_server",
                       .yaml = yamlFor("    insecure-skip-tls-verify: true\n", ""),
                       .error = "clusters[0].cluster.server: no server found"},
        KubeconfigCase{.name = "http_server_rejected",
                       .yaml = yamlFor("    server: http://10.0.0.1:8080\n", ""),
                       .error = "clusters[0].cluster.server: server http://10.0.0.1:8080: only "
                                "https is supported"},
        KubeconfigCase{.name = "exec_plugin_unsupported",
                       .yaml = yamlFor(kServer, "    exec: {command: foo}\n"),
                       .error = "users[0].user.exec: not supported"},
        KubeconfigCase{
            .name = "invalid_yaml",
            .yaml = "clusters: [\n",
            .error = "invalid YAML: yaml-cpp: error at line 2, column 1: end of sequence "
                     "flow not found"}),
    [](const ::testing::TestParamInfo<KubeconfigCase>& info) { return info.param.name; });

TEST(KubeconfigTest, MissingFile) {
  absl::StatusOr<std::shared_ptr<const KubeClientConfig>> got = loadKubeconfig("/nonexistent/kc");
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().message(), "kubeconfig /nonexistent/kc: cannot read /nonexistent/kc");
}

TEST(InClusterTest, ReadsServiceAccountAndBracketsIpv6) {
  TempDir dir;
  dir.write("sa/token", "sa-token\n");
  dir.write("sa/ca.crt", "CLUSTER-CA");
  absl::StatusOr<std::shared_ptr<const KubeClientConfig>> got =
      loadInClusterConfig({"fd00::10", "443", dir.path() + "/sa"});
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)->server, "https://[fd00::10]:443");
  EXPECT_EQ((*got)->host, "fd00::10");
  EXPECT_EQ((*got)->port, 443);
  EXPECT_EQ((*got)->bearer_token, "sa-token");
  EXPECT_EQ((*got)->bearer_token_file, dir.path() + "/sa/token");
  EXPECT_EQ((*got)->ca_pem, "CLUSTER-CA");
  EXPECT_EQ((*got)->source, "in-cluster");
}

TEST(InClusterTest, Errors) {
  TempDir dir;
  EXPECT_EQ(loadInClusterConfig({"", "443", dir.path()}).status().message(),
            "unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and "
            "KUBERNETES_SERVICE_PORT must be defined");
  EXPECT_EQ(loadInClusterConfig({"10.96.0.1", "443", dir.path()}).status().message(),
            "in-cluster: cannot read " + dir.path() + "/token");
  dir.write("token", "t");
  EXPECT_EQ(loadInClusterConfig({"10.96.0.1", "443", dir.path()}).status().message(),
            "in-cluster: cannot read " + dir.path() + "/ca.crt");
  dir.write("ca.crt", "c");
  EXPECT_EQ(loadInClusterConfig({"10.96.0.1", "99999", dir.path()}).status().message(),
            "in-cluster: server https://10.96.0.1:99999: invalid port");
}

TEST(LoadKubeClientConfigTest, FallsBackToInCluster) {
  TempDir dir;
  dir.write("token", "t");
  dir.write("ca.crt", "c");
  absl::StatusOr<std::shared_ptr<const KubeClientConfig>> got =
      loadKubeClientConfig("", "", {"10.96.0.1", "443", dir.path()});
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)->host, "10.96.0.1");
}

}  // namespace
}  // namespace aaproxy
