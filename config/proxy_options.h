// Every setting of aa-proxy, parsed and validated once; the data path only reads these structs.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace aaproxy {

// TLS to an https:// backend. The backend's certificate is always verified: its chain against
// `ca_file` and its name against `server_name`.
struct UpstreamTlsOptions {
  std::string ca_file;           // PEM CAs; "" = the system trust store
  std::string client_cert_file;  // PEM, intermediates after the leaf; set with client_key_file
  std::string client_key_file;
  // SNI and the name the certificate must hold; "" = the address's host. An IP address is
  // checked against the certificate's IP SANs (and sent without SNI).
  std::string server_name;

  bool operator==(const UpstreamTlsOptions&) const = default;
};

// Where the backend listens: HTTP over TCP (plain or TLS) or over a Unix socket.
struct UpstreamAddress {
  enum class Kind { kTcp, kUnix, kHttps };
  Kind kind = Kind::kTcp;
  std::string host;  // kTcp, kHttps
  uint16_t port = 0;  // kTcp, kHttps
  std::string path;   // kUnix
  UpstreamTlsOptions tls;  // kHttps
  std::string display;  // as given on the command line

  bool operator==(const UpstreamAddress&) const = default;
};

// Parses `http://host:port`, `https://host:port` (IPv6 in brackets) or `unix:///abs/path.sock`.
// `tls` is left empty: it comes from the --upstream-* TLS flags.
absl::StatusOr<UpstreamAddress> parseUpstreamAddress(std::string_view value);

class RouteTable;  // config/route_table.h

// kube-rbac-proxy's --auth-header-fields-enabled: the identity also under names a backend
// chooses, the groups joined into one value.
struct AuthHeaderFields {
  bool enabled = false;
  std::string user_field = "x-remote-user";
  std::string groups_field = "x-remote-groups";
  std::string groups_separator = "|";
};

struct ProxyOptions {
  // Serving.
  std::string bind_address = "0.0.0.0";
  int secure_port = 8443;
  std::string tls_cert_file;
  std::string tls_private_key_file;
  int tls_min_version = 0;  // an OpenSSL TLS1_x_VERSION constant
  std::string tls_cipher_list;  // --tls-cipher-suites as an OpenSSL TLS 1.2 cipher list; "" = default
  int workers = 0;          // 0 = the cgroup CPU quota, else the cores (config/cpu_quota.h)
  std::string workers_source;  // where `workers` came from, for the start-up log

  // Backend: --upstream, and the routes of the --config file. After parsing, `routes` holds at
  // least one route (without a `routes:` list, "/" to --upstream with kubernetes authorization)
  // and `upstreams` every distinct backend once (RouteConfig::upstream_index).
  UpstreamAddress upstream;
  bool upstream_set = false;   // --upstream was given (routes without an upstream use it)
  std::string config_file;     // --config, re-read for its routes on change and SIGHUP
  std::shared_ptr<const RouteTable> routes;
  std::vector<UpstreamAddress> upstreams;
  // kube-rbac-proxy's --allow-paths (others 404) and --ignore-paths (no authn/authz): Go
  // path.Match patterns against the decoded path.
  std::vector<std::string> allow_paths;
  std::vector<std::string> ignore_paths;
  AuthHeaderFields auth_header_fields;

  // Client certificate trust.
  std::string client_ca_file;
  std::string requestheader_client_ca_file;
  bool anonymous_auth = true;

  // Delegated authentication (k8s.io/apiserver's DelegatingAuthenticationOptions).
  std::string kubeconfig;                 // fallback for both of the below
  std::string authentication_kubeconfig;  // TokenReview, the ConfigMap lookup
  std::string authorization_kubeconfig;   // SubjectAccessReview
  bool authentication_skip_lookup = false;
  bool authentication_tolerate_lookup_failure = false;
  // Explicit request-header settings; set ones override the ConfigMap's.
  std::optional<std::vector<std::string>> requestheader_allowed_names;
  std::optional<std::vector<std::string>> requestheader_username_headers;
  std::optional<std::vector<std::string>> requestheader_uid_headers;
  std::optional<std::vector<std::string>> requestheader_group_headers;
  std::optional<std::vector<std::string>> requestheader_extra_headers_prefix;
  absl::Duration token_webhook_cache_ttl = absl::Seconds(10);
  std::vector<std::string> token_audiences;
  absl::Duration configmap_resync_period = absl::Minutes(1);

  // Delegated authorization.
  std::vector<std::string> authorization_modes = {"webhook"};  // "static", "webhook"
  std::string authorization_policy_file;
  std::vector<std::string> always_allow_groups = {"system:masters"};
  std::vector<std::string> always_allow_paths = {"/healthz", "/readyz", "/livez"};
  absl::Duration authorized_ttl = absl::Seconds(10);
  absl::Duration unauthorized_ttl = absl::Seconds(10);
  size_t authorization_cache_size = 8192;
  absl::Duration stale_allow_grace_period = absl::ZeroDuration();  // 0: off, as upstream

  // HTTP limits and timeouts (defaults as k8s.io/apiserver's secure serving where it has one).
  absl::Duration read_header_timeout = absl::Seconds(32);
  absl::Duration idle_timeout = absl::Seconds(90);
  absl::Duration upstream_connect_timeout = absl::Seconds(10);
  size_t max_header_bytes = 1 << 20;
  size_t max_request_line_bytes = 64 << 10;

  // HTTP/2 (ALPN "h2"), with k8s.io/apiserver's limits: 250 concurrent streams per connection
  // (Go's default, used when the flag is 0) and 256 KiB of request body buffered per stream.
  bool http2 = true;
  int http2_max_streams_per_connection = 0;
  // Response data waiting on a client's shut flow-control window this long resets the stream,
  // or closes the connection when none of its streams moves (Go's server has no such limit; this
  // is nginx's send_timeout, 60s, for a slow reader that would pin backend connections). 0: off.
  absl::Duration http2_stall_timeout = absl::Seconds(60);

  // Plain-HTTP health port for kubelet probes; 0 = off.
  int healthz_port = 0;
  std::string healthz_bind_address = "0.0.0.0";
  std::string logging_format = "text";  // "text" (klog) or "json"

  // Lifecycle.
  absl::Duration shutdown_grace_period = absl::Seconds(25);
  absl::Duration tls_reload_interval = absl::Seconds(10);

  int verbosity = 0;
};

}  // namespace aaproxy
