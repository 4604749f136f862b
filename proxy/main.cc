// aa-proxy's entry point: parse flags, build the TLS context and admission chain, serve until
// SIGTERM/SIGINT.
#include <http_parser.h>
#include <netdb.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <future>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "config/flags.h"
#include "config/kubeconfig.h"
#include "config/route_table.h"
#include "kube/apiserver_client.h"
#include "kube/configmap_source.h"
#include "kube/kube_transport.h"
#include "proxy/authentication_sources.h"
#include "proxy/config_reloader.h"
#include "proxy/delegated_admission.h"
#include "proxy/health_server.h"
#include "proxy/server.h"
#include "proxy/tls_context.h"
#include "proxy/tls_reloader.h"
#include "proxy/upstream_tls.h"

namespace aaproxy {
namespace {

// "http://127.0.0.1:8080", or "3 routes to 2 backends (http://a:1, unix:///b.sock)".
std::string describeBackends(const ProxyOptions& options) {
  if (options.routes == nullptr || options.routes->isDefault()) {
    return options.upstreams.empty() ? options.upstream.display : options.upstreams[0].display;
  }
  std::string out = absl::StrCat(options.routes->routes().size(), " routes to ",
                                 options.upstreams.size(), " backend",
                                 options.upstreams.size() == 1 ? "" : "s", " (");
  for (size_t i = 0; i < options.upstreams.size(); ++i) {
    absl::StrAppend(&out, i == 0 ? "" : ", ", options.upstreams[i].display);
  }
  return out + ")";
}

// Every client, backend and kube-apiserver connection is a descriptor; the usual soft limit of
// 1024 would refuse connections long before the proxy is busy. Go programs (kube-apiserver
// included) raise the soft limit to the hard one at start; so do we.
void raiseOpenFileLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) {
    return;
  }
  rlim_t previous = limit.rlim_cur;
  limit.rlim_cur = limit.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &limit) == 0) {
    AA_VLOG(1) << "open file limit raised from " << previous << " to " << limit.rlim_cur;
  }
}

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
  if (getaddrinfo(address.host.c_str(), std::to_string(address.port).c_str(), &hints, &result) !=
      0) {
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

// The kube-apiserver connection for one purpose: the flag's kubeconfig, else --kubeconfig, else
// in-cluster. No cluster at all is not an error (standalone mode): null then.
absl::StatusOr<std::shared_ptr<const KubeTransport>> loadTransport(const std::string& flag,
                                                                   const std::string& specific,
                                                                   const std::string& fallback) {
  std::string path = !specific.empty() ? specific : fallback;
  InClusterEnvironment env = InClusterEnvironment::fromProcess();
  if (path.empty() && env.service_host.empty()) {
    return std::shared_ptr<const KubeTransport>();
  }
  absl::StatusOr<std::shared_ptr<const KubeClientConfig>> config =
      loadKubeClientConfig(path, "", env);
  if (!config.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": ", config.status().message()));
  }
  absl::StatusOr<std::shared_ptr<KubeTransport>> transport = KubeTransport::create(*config);
  if (!transport.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": ", transport.status().message()));
  }
  return std::shared_ptr<const KubeTransport>(*std::move(transport));
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
  g_log_json.store(options.logging_format == "json");

  // http-parser's own header limit must not be tighter than ours (it counts the request line).
  http_parser_set_max_header_size(
      static_cast<uint32_t>(options.max_header_bytes + options.max_request_line_bytes + 4096));

  // Each https:// backend's TLS context, built once and shared by every worker's pool: a bad
  // file fails the start (exit 2), naming its flag or route field.
  std::vector<std::shared_ptr<const UpstreamTlsContext>> upstream_tls;
  for (const UpstreamAddress& upstream : options.upstreams) {
    if (upstream.kind != UpstreamAddress::Kind::kHttps) {
      upstream_tls.push_back(nullptr);
      continue;
    }
    absl::StatusOr<std::shared_ptr<const UpstreamTlsContext>> context =
        UpstreamTlsContext::create(upstream);
    if (!context.ok()) {
      if (options.upstream_set && upstream == options.upstream) {
        return fail(context.status().message());
      }
      // A route's own backend: its upstreamTLS fields play the flags' part.
      return fail(absl::StrCat("--config: the route backend ", upstream.display,
                               " (upstreamTLS): ", context.status().message()));
    }
    upstream_tls.push_back(*std::move(context));
  }

  absl::StatusOr<std::shared_ptr<const KubeTransport>> authn_transport = loadTransport(
      "--authentication-kubeconfig", options.authentication_kubeconfig, options.kubeconfig);
  if (!authn_transport.ok()) {
    return fail(authn_transport.status().message());
  }
  absl::StatusOr<std::shared_ptr<const KubeTransport>> authz_transport = loadTransport(
      "--authorization-kubeconfig", options.authorization_kubeconfig, options.kubeconfig);
  if (!authz_transport.ok()) {
    return fail(authz_transport.status().message());
  }
  if (!*authn_transport) {
    AA_LOG(W) << "no kube-apiserver configured (no --authentication-kubeconfig, --kubeconfig or "
                 "in-cluster environment): bearer tokens are not reviewed and the "
                 "extension-apiserver-authentication ConfigMap is not looked up";
  }

  DelegatedAdmissionOptions admission_options;
  admission_options.anonymous_auth = options.anonymous_auth;
  admission_options.token_audiences = options.token_audiences;
  admission_options.token_cache_ttl = options.token_webhook_cache_ttl;
  admission_options.authorization_modes = options.authorization_modes;
  admission_options.authorization_policy_file = options.authorization_policy_file;
  admission_options.always_allow_groups = options.always_allow_groups;
  admission_options.always_allow_paths = options.always_allow_paths;
  admission_options.authorized_ttl = options.authorized_ttl;
  admission_options.unauthorized_ttl = options.unauthorized_ttl;
  admission_options.cache_size = options.authorization_cache_size;
  admission_options.stale_allow_grace_period = options.stale_allow_grace_period;
  admission_options.routes = options.routes;
  admission_options.allow_paths = options.allow_paths;
  admission_options.ignore_paths = options.ignore_paths;
  if (options.auth_header_fields.enabled) {
    admission_options.extra_identity_headers = {options.auth_header_fields.user_field,
                                                options.auth_header_fields.groups_field};
  }
  absl::StatusOr<std::unique_ptr<DelegatedAdmission>> created =
      DelegatedAdmission::create(admission_options, *authn_transport, *authz_transport);
  if (!created.ok()) {
    return fail(created.status().message());
  }
  DelegatedAdmission* admission = created->get();

  ServerTlsSettings tls;
  tls.cert_file = options.tls_cert_file;
  tls.key_file = options.tls_private_key_file;
  tls.min_version = options.tls_min_version;
  tls.http2 = options.http2;
  tls.cipher_list = options.tls_cipher_list;
  auto shared = std::make_unique<SharedProxyState>(options, nullptr, *std::move(created),
                                                   std::move(upstream_tls));
  SharedProxyState* state = shared.get();
  TlsReloader tls_reloader(tls, [state](std::shared_ptr<const ServerTlsContext> context) {
    state->setTls(std::move(context));
  });
  if (absl::Status s = tls_reloader.loadInitial(); !s.ok()) {
    return fail(s.message());
  }
  if (options.tls_cert_file.empty()) {
    AA_LOG(I) << "no --tls-cert-file given: serving with a generated self-signed certificate";
  }

  // Client certificates: the authenticators (which verify them) and the CA names the handshake
  // advertises move together.
  AuthenticationSources authentication(options, [admission, &tls_reloader](
                                                    const ExtensionApiserverAuthentication&
                                                        config) {
    if (absl::Status s = admission->updateAuthentication(config); !s.ok()) {
      return s;
    }
    std::vector<std::string> cas;
    for (const std::optional<std::string>& pem : {config.clientCaPem, config.requestHeaderCaPem}) {
      if (pem.has_value()) {
        cas.push_back(*pem);
      }
    }
    return tls_reloader.setDynamicCas("authentication", std::move(cas));
  });
  if (absl::Status s = authentication.refreshFiles(); !s.ok()) {
    return fail(s.message());
  }
  MetricsRegistry& metrics = MetricsRegistry::global();
  const char* reloads_help =
      "Reloads of the extension-apiserver-authentication ConfigMap by result.";
  Counter& configmap_reloads_ok = metrics.counter("aaproxy_authentication_config_reloads_total",
                                                  reloads_help, "result=\"success\"");
  Counter& configmap_reloads_failed = metrics.counter("aaproxy_authentication_config_reloads_total",
                                                      reloads_help, "result=\"failure\"");
  const char* tls_reloads_help = "Reloads of the serving certificate and CA files by result.";
  Counter& tls_reloads_ok =
      metrics.counter("aaproxy_tls_reloads_total", tls_reloads_help, "result=\"success\"");
  Counter& tls_reloads_failed =
      metrics.counter("aaproxy_tls_reloads_total", tls_reloads_help, "result=\"failure\"");
  const char* expiry_help =
      "Earliest notAfter (Unix seconds) of the serving certificate and of each trusted CA bundle.";
  metrics.gauge("aaproxy_certificate_expiration_timestamp_seconds", expiry_help,
                "certificate=\"serving\"", [state] {
                  std::shared_ptr<const ServerTlsContext> tls = state->tls();
                  return tls ? earliestExpiry(tls->certificatePem()).value_or(0) : 0;
                });
  metrics.gauge("aaproxy_certificate_expiration_timestamp_seconds", expiry_help,
                "certificate=\"client-ca\"", [&authentication] {
                  std::optional<std::string> pem = authentication.effective().clientCaPem;
                  return pem ? earliestExpiry(*pem).value_or(0) : 0;
                });
  metrics.gauge("aaproxy_certificate_expiration_timestamp_seconds", expiry_help,
                "certificate=\"requestheader-client-ca\"", [&authentication] {
                  std::optional<std::string> pem = authentication.effective().requestHeaderCaPem;
                  return pem ? earliestExpiry(*pem).value_or(0) : 0;
                });

  // Signals are taken synchronously by this thread (sigtimedwait below); no other thread sees
  // them. Blocked before the first thread starts, since threads inherit the mask: a thread
  // started earlier would take a SIGHUP or SIGTERM sent while this one is not waiting (a reload,
  // a backend probe) and die of its default action, with no reload and no drain.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  // The control loop talks to kube-apiserver for the ConfigMap and serves the plain health port;
  // workers never wait on it.
  EventLoop control;
  std::unique_ptr<HealthServer> health_server;
  if (options.healthz_port != 0) {
    health_server = std::make_unique<HealthServer>(control.base(), state->health());
    if (absl::Status s = health_server->listen(options.healthz_bind_address, options.healthz_port);
        !s.ok()) {
      return fail(s.message());
    }
  }
  std::unique_ptr<ApiServerClient> control_client;
  std::unique_ptr<ConfigMapSource> configmap;
  const bool lookup =
      *authn_transport && !options.authentication_skip_lookup &&
      (options.client_ca_file.empty() || options.requestheader_client_ca_file.empty());
  control.start();
  if (lookup) {
    state->health().setAuthenticationConfigLoaded(false);
    control_client = std::make_unique<ApiServerClient>(control.base(), *authn_transport);
    ConfigMapSourceOptions cm_options;
    cm_options.resync_period = options.configmap_resync_period;
    cm_options.tolerate_lookup_failure = options.authentication_tolerate_lookup_failure;
    cm_options.log = [](std::string_view message) { AA_LOG(I) << message; };
    configmap = std::make_unique<ConfigMapSource>(
        *control_client, cm_options,
        [&authentication, state, &configmap_reloads_ok,
         &configmap_reloads_failed](const ConfigMapData& data) {
          if (absl::Status s = authentication.onConfigMap(data); !s.ok()) {
            configmap_reloads_failed.inc();
            AA_LOG(E) << "keeping the previous authentication configuration: " << s;
            return;
          }
          configmap_reloads_ok.inc();
          state->health().setAuthenticationConfigLoaded(true);
          AA_LOG(I) << "loaded kube-system/extension-apiserver-authentication";
        });
    std::promise<absl::Status> started;
    control.post(
        [&] { configmap->start([&started](const absl::Status& s) { started.set_value(s); }); });
    absl::Status s = started.get_future().get();
    if (!s.ok()) {
      control.stop();
      control.join();
      return fail(s.message());
    }
    state->health().setAuthenticationConfigLoaded(true);
  }

  signal(SIGPIPE, SIG_IGN);
  raiseOpenFileLimit();
  // Debian's abseil is built without NDEBUG, so absl::Mutex would run its deadlock detector
  // (a global graph update on every lock) in production; the unit tests keep it on.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  absl::StatusOr<std::unique_ptr<ProxyServer>> server = ProxyServer::create(std::move(shared));
  if (!server.ok()) {
    return fail(server.status().message());
  }
  // Every backend of the route table (one without `routes:`) answers a connection.
  auto probeBackends = [&options] {
    for (const UpstreamAddress& upstream : options.upstreams) {
      if (!probeBackend(upstream)) {
        return false;
      }
    }
    return true;
  };
  state->health().setBackendReachable(probeBackends());
  for (Dispatcher* loop : (*server)->loops()) {
    admission->attachLoop(*loop);
  }
  (*server)->start();
  AA_LOG(I) << "serving on https://" << options.bind_address << ":" << (*server)->port() << " with "
            << options.workers << " workers (from " << options.workers_source
            << "), forwarding to " << describeBackends(options);

  // The main thread is the control thread: signals, file watching, backend probing.
  ConfigReloader config_reloader(options, *admission, state->health());
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
      if (absl::Status s = authentication.refreshFiles(); !s.ok()) {
        AA_LOG(E) << "reloading CA files failed, keeping the current ones: " << s;
      }
      config_reloader.check(force);
      uint64_t before = tls_reloader.reloads();
      if (absl::Status s = tls_reloader.reloadIfChanged(force); !s.ok()) {
        tls_reloads_failed.inc();
        AA_LOG(E) << "reloading TLS files failed, keeping the current certificates: " << s;
      } else if (tls_reloader.reloads() != before) {
        tls_reloads_ok.inc();
        AA_LOG(I) << "reloaded the serving certificate and client CA files";
      }
    }
    if (!state->health().backendReachable() && probeBackends()) {
      AA_LOG(I) << "backend " << describeBackends(options) << " is reachable again";
      state->health().setBackendReachable(true);
    }
  }
  AA_LOG(I) << "received " << strsignal(received) << ": draining for up to "
            << absl::FormatDuration(options.shutdown_grace_period);
  (*server)->drain(options.shutdown_grace_period);
  (*server)->stop();
  (*server)->wait();
  control.post([&] {
    configmap.reset();
    control_client.reset();
    health_server.reset();
  });
  control.stop();
  control.join();
  AA_LOG(I) << "shut down cleanly";
  return 0;
}

}  // namespace
}  // namespace aaproxy

int main(int argc, char** argv) { return aaproxy::run(argc, argv); }
