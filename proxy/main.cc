// aa-proxy's entry point: parse flags, build the TLS context and admission chain, serve until
// SIGTERM/SIGINT.
#include <netdb.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include <cstdio>
#include <iostream>

#include <http_parser.h>

#include "common/logging.h"
#include "config/flags.h"
#include "proxy/certificate_admission.h"
#include "proxy/server.h"
#include "proxy/tls_context.h"
#include "proxy/tls_reloader.h"

namespace aaproxy {
namespace {

int fail(absl::string_view message) {
  std::fprintf(stderr, "aa-proxy: %.*s\n", static_cast<int>(message.size()), message.data());
  return 2;
}

// A short blocking connect: the control thread may block, workers never do.
bool probeBackend(const UpstreamAddress& address) {
  int fd = -1;
  if (address.kind == UpstreamAddress::Kind::kUnix) {
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    std::strncpy(sun.sun_path, address.path.c_str(), sizeof(sun.sun_path) - 1);
    bool ok = fd >= 0 && connect(fd, reinterpret_cast<sockaddr*>(&sun), sizeof(sun)) == 0;
    if (fd >= 0) {
      close(fd);
    }
    return ok;
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* result = nullptr;
  if (getaddrinfo(address.host.c_str(), std::to_string(address.port).c_str(), &hints, &result) != 0) {
    return false;
  }
  bool ok = false;
  for (addrinfo* ai = result; ai != nullptr && !ok; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      continue;
    }
    timeval timeout{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
    ok = connect(fd, ai->ai_addr, ai->ai_addrlen) == 0;
    close(fd);
  }
  freeaddrinfo(result);
  return ok;
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
  std::vector<std::string> ca_files;
  for (const auto& [flag, path] :
       {std::pair<const char*, const std::string&>{"--client-ca-file", options.client_ca_file},
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
    ca_files.push_back(path);
  }
  // http-parser's own header limit must not be tighter than ours (it counts the request line).
  http_parser_set_max_header_size(
      static_cast<uint32_t>(options.max_header_bytes + options.max_request_line_bytes + 4096));

  auto admission = std::make_unique<CertificateAdmission>(options.anonymous_auth);
  auto shared = std::make_unique<SharedProxyState>(options, nullptr, std::move(admission));
  SharedProxyState* state = shared.get();
  TlsReloader tls_reloader(tls, ca_files, [state](std::shared_ptr<const ServerTlsContext> context) {
    state->setTls(std::move(context));
  });
  if (absl::Status s = tls_reloader.loadInitial(); !s.ok()) {
    return fail(s.message());
  }
  if (options.tls_cert_file.empty()) {
    AA_LOG(I) << "no --tls-cert-file given: serving with a generated self-signed certificate";
  }

  // Signals are taken synchronously by this thread; workers never see them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  absl::StatusOr<std::unique_ptr<ProxyServer>> server = ProxyServer::create(std::move(shared));
  if (!server.ok()) {
    return fail(server.status().message());
  }
  (*server)->start();
  AA_LOG(I) << "serving on https://" << options.bind_address << ":" << (*server)->port()
            << " with " << options.workers << " workers, forwarding to " << options.upstream.display;

  // The main thread is the control thread: signals, file watching, backend probing.
  absl::Time next_tls_check = absl::Now() + options.tls_reload_interval;
  int received = 0;
  for (;;) {
    timespec tick{0, 250 * 1000 * 1000};
    received = sigtimedwait(&signals, nullptr, &tick);
    if (received == SIGTERM || received == SIGINT) {
      break;
    }
    bool force = received == SIGHUP;
    if (force || absl::Now() >= next_tls_check) {
      next_tls_check = absl::Now() + options.tls_reload_interval;
      uint64_t before = tls_reloader.reloads();
      if (absl::Status s = tls_reloader.reloadIfChanged(force); !s.ok()) {
        AA_LOG(E) << "reloading TLS files failed, keeping the current certificates: " << s;
      } else if (tls_reloader.reloads() != before) {
        AA_LOG(I) << "reloaded the serving certificate and client CA files";
      }
    }
    if (!state->health().backendReachable() && probeBackend(options.upstream)) {
      AA_LOG(I) << "backend " << options.upstream.display << " is reachable again";
      state->health().setBackendReachable(true);
    }
  }
  AA_LOG(I) << "received " << strsignal(received) << ": draining for up to "
            << absl::FormatDuration(options.shutdown_grace_period);
  (*server)->drain(options.shutdown_grace_period);
  (*server)->stop();
  (*server)->wait();
  AA_LOG(I) << "shut down cleanly";
  return 0;
}

}  // namespace
}  // namespace aaproxy

int main(int argc, char** argv) { return aaproxy::run(argc, argv); }
