// Child-process management and the blocking control client for FakeApiServerProcess.
#include "kube/testing/fake_apiserver_process.h"

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <simdjson.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

extern char** environ;

namespace aaproxy::testing {

std::string RecordedRequest::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (absl::EqualsIgnoreCase(k, absl::string_view(name.data(), name.size()))) {
      return v;
    }
  }
  return "";
}

absl::StatusOr<std::unique_ptr<FakeApiServerProcess>> FakeApiServerProcess::start(
    const Options& options) {
  std::unique_ptr<FakeApiServerProcess> server(new FakeApiServerProcess());
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::string tmpl = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/fakeapiXXXXXX");
  if (mkdtemp(tmpl.data()) == nullptr) {
    return absl::InternalError("mkdtemp");
  }
  server->dir_ = tmpl;
  server->ca_ = makeCa("test-cluster-ca");
  TestCertificate serving = makeLeaf(server->ca_, {.common_name = "kube-apiserver",
                                                   .dns_names = {"localhost"},
                                                   .ip_addresses = {"127.0.0.1"},
                                                   .server_auth = true});
  server->client_ = makeLeaf(
      server->ca_, {.common_name = "aa-proxy", .organizations = {"proxies"}, .client_auth = true});
  const std::string& d = server->dir_;
  writeFileAtomically(d + "/ca.crt", server->ca_.cert_pem);
  writeFileAtomically(d + "/server.crt", serving.cert_pem);
  writeFileAtomically(d + "/server.key", serving.key_pem);

  std::string script = options.script.empty() ? "e2e/fake_apiserver.py" : options.script;
  std::vector<std::string> args = {"python3",
                                   script,
                                   "--cert",
                                   d + "/server.crt",
                                   "--key",
                                   d + "/server.key",
                                   "--client-ca",
                                   d + "/ca.crt",
                                   "--configmap-file",
                                   d + "/configmap.json",
                                   "--policy-file",
                                   d + "/policy.json"};
  if (options.require_client_cert) {
    args.push_back("--require-client-cert");
  }
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (std::string& a : args) {
    argv.push_back(a.data());
  }
  argv.push_back(nullptr);

  int pipefd[2];
  if (pipe(pipefd) != 0) {
    return absl::InternalError("pipe");
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipefd[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, pipefd[0]);
  int rc = posix_spawnp(&server->pid_, "python3", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(pipefd[1]);
  if (rc != 0) {
    close(pipefd[0]);
    return absl::InternalError(absl::StrCat("posix_spawnp python3: ", rc));
  }
  FILE* out = fdopen(pipefd[0], "r");
  char line[256] = {0};
  bool got = fgets(line, sizeof(line), out) != nullptr;
  fclose(out);  // the server prints nothing else
  std::string_view text(line);
  constexpr std::string_view kPrefix = "listening on 127.0.0.1:";
  if (!got ||
      !absl::StartsWith(absl::string_view(text.data(), text.size()), "listening on 127.0.0.1:") ||
      !absl::SimpleAtoi(absl::string_view(text.data() + kPrefix.size(),
                                          text.size() - kPrefix.size() - (text.back() == '\n')),
                        &server->port_)) {
    return absl::InternalError(
        absl::StrCat("fake apiserver did not start: '", std::string(text), "'"));
  }
  return server;
}

FakeApiServerProcess::~FakeApiServerProcess() {
  if (pid_ > 0) {
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
  }
}

std::shared_ptr<KubeClientConfig> FakeApiServerProcess::clientConfig() const {
  auto config = std::make_shared<KubeClientConfig>();
  config->server = absl::StrCat("https://127.0.0.1:", port_);
  config->host = "127.0.0.1";
  config->port = static_cast<uint16_t>(port_);
  config->ca_pem = ca_.cert_pem;
  config->source = "test";
  return config;
}

void FakeApiServerProcess::writeConfigMapData(const std::string& json) const {
  writeFileAtomically(dir_ + "/configmap.json", json);
}

void FakeApiServerProcess::removeConfigMap() const {
  std::remove((dir_ + "/configmap.json").c_str());
}

void FakeApiServerProcess::writePolicy(const std::string& json) const {
  writeFileAtomically(dir_ + "/policy.json", json);
}

absl::StatusOr<std::string> FakeApiServerProcess::control(const std::string& method,
                                                          const std::string& path) const {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);  // a control channel, not under test
  {
    // Present the client certificate in case the server requires one.
    BIO* cert_bio =
        BIO_new_mem_buf(client_.cert_pem.data(), static_cast<int>(client_.cert_pem.size()));
    X509* cert = PEM_read_bio_X509(cert_bio, nullptr, nullptr, nullptr);
    BIO_free(cert_bio);
    BIO* key_bio =
        BIO_new_mem_buf(client_.key_pem.data(), static_cast<int>(client_.key_pem.size()));
    EVP_PKEY* key = PEM_read_bio_PrivateKey(key_bio, nullptr, nullptr, nullptr);
    BIO_free(key_bio);
    SSL_CTX_use_certificate(ctx, cert);
    SSL_CTX_use_PrivateKey(ctx, key);
    X509_free(cert);
    EVP_PKEY_free(key);
  }
  BIO* bio = BIO_new_ssl_connect(ctx);
  BIO_set_conn_hostname(bio, absl::StrCat("127.0.0.1:", port_).c_str());
  std::string response;
  absl::Status status = absl::OkStatus();
  if (BIO_do_connect(bio) <= 0) {
    status = absl::UnavailableError("control connection failed");
  } else {
    std::string request =
        absl::StrCat(method, " ", path, " HTTP/1.0\r\nHost: fake\r\nContent-Length: 0\r\n\r\n");
    BIO_write(bio, request.data(), static_cast<int>(request.size()));
    char buf[16384];
    int n;
    while ((n = BIO_read(bio, buf, sizeof(buf))) > 0) {
      response.append(buf, n);
    }
  }
  BIO_free_all(bio);
  SSL_CTX_free(ctx);
  if (!status.ok()) {
    return status;
  }
  size_t split = response.find("\r\n\r\n");
  if (split == std::string::npos || !absl::StartsWith(response, "HTTP/1.1 200")) {
    return absl::InternalError(absl::StrCat("control ", path, ": ", response.substr(0, 200)));
  }
  return response.substr(split + 4);
}

absl::Status FakeApiServerProcess::reset() const { return control("POST", "/__reset").status(); }

absl::StatusOr<std::vector<RecordedRequest>> FakeApiServerProcess::recorded() const {
  absl::StatusOr<std::string> body = control("GET", "/__recorded");
  if (!body.ok()) {
    return body.status();
  }
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(*body).get(root) != simdjson::SUCCESS) {
    return absl::InternalError("unparseable /__recorded");
  }
  std::vector<RecordedRequest> out;
  for (simdjson::dom::element item : root.get_array()) {
    RecordedRequest r;
    r.connection = static_cast<int>(int64_t(item["connection"]));
    r.method = std::string(std::string_view(item["method"]));
    r.path = std::string(std::string_view(item["path"]));
    r.body = std::string(std::string_view(item["body"]));
    r.client_cert_cn = std::string(std::string_view(item["client_cert_cn"]));
    for (simdjson::dom::element pair : item["headers"].get_array()) {
      simdjson::dom::array kv = pair.get_array();
      r.headers.emplace_back(std::string(std::string_view(kv.at(0))),
                             std::string(std::string_view(kv.at(1))));
    }
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace aaproxy::testing
