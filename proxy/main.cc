// aa-proxy's entry point: parse flags, build the TLS context and admission chain, serve until
// SIGTERM/SIGINT.
#include <signal.h>

#include <cstdio>
#include <iostream>

#include <http_parser.h>

#include "common/logging.h"
#include "config/flags.h"
#include "proxy/certificate_admission.h"
#include "proxy/server.h"
#include "proxy/tls_context.h"

namespace aaproxy {
namespace {

int fail(absl::string_view message) {
  std::fprintf(stderr, "aa-proxy: %.*s\n", static_cast<int>(message.size()), message.data());
  return 2;
}

int run(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  absl::StatusOr<CommandLine> command_line = parseCommandLine(args);
  if (!command_line.ok()) {
    return fail(command_line.status().message());
  }
  if (command_line->show_help) {
    std::cout << helpText();
    return 0;
  }
  ProxyOptions options = std::move(command_line->options);
  g_log_verbosity.store(options.verbosity);

  ServerTlsSettings tls;
  tls.cert_file = options.tls_cert_file;
  tls.key_file = options.tls_private_key_file;
  tls.min_version = options.tls_min_version;
  for (const auto& [flag, path] : {std::pair<const char*, const std::string&>{"--client-ca-file", options.client_ca_file},
                                   {"--requestheader-client-ca-file", options.requestheader_client_ca_file}}) {
    if (path.empty()) {
      continue;
    }
    absl::StatusOr<std::string> pem = readFileToString(path);
    if (!pem.ok()) {
      return fail(std::string(flag) + ": " + std::string(pem.status().message()));
    }
    if (absl::StatusOr<std::vector<X509Ptr>> certs = parsePemCertificates(*pem); !certs.ok()) {
      return fail(std::string(flag) + ": \"" + path + "\": " + std::string(certs.status().message()));
    }
    tls.client_ca_pems.push_back(*std::move(pem));
  }
  absl::StatusOr<std::shared_ptr<const ServerTlsContext>> tls_context = ServerTlsContext::create(tls);
  if (!tls_context.ok()) {
    return fail(tls_context.status().message());
  }
  if (options.tls_cert_file.empty()) {
    AA_LOG(I) << "no --tls-cert-file given: serving with a generated self-signed certificate";
  }
  // http-parser's own header limit must not be tighter than ours (it counts the request line).
  http_parser_set_max_header_size(
      static_cast<uint32_t>(options.max_header_bytes + options.max_request_line_bytes + 4096));

  auto admission = std::make_unique<CertificateAdmission>(options.anonymous_auth);
  auto shared = std::make_unique<SharedProxyState>(options, *std::move(tls_context), std::move(admission));

  // Signals are taken synchronously by this thread; workers never see them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  absl::StatusOr<std::unique_ptr<ProxyServer>> server = ProxyServer::create(std::move(shared));
  if (!server.ok()) {
    return fail(server.status().message());
  }
  (*server)->start();
  AA_LOG(I) << "serving on https://" << options.bind_address << ":" << (*server)->port()
            << " with " << options.workers << " workers, forwarding to " << options.upstream.display;
  int received = 0;
  sigwait(&signals, &received);
  AA_LOG(I) << "received " << strsignal(received) << ", shutting down";
  (*server)->stop();
  (*server)->wait();
  return 0;
}

}  // namespace
}  // namespace aaproxy

int main(int argc, char** argv) { return aaproxy::run(argc, argv); }
