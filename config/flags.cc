// A small table-driven flag parser: pflag's syntax (--name=value, --name value, bare bools).
#include "config/flags.h"

#include <arpa/inet.h>
#include <openssl/ssl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <algorithm>
#include <functional>
#include <optional>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "config/cpu_quota.h"
#include "config/route_table.h"
#include "yaml-cpp/yaml.h"

namespace aaproxy {
namespace {

absl::string_view av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

using Setter = std::function<absl::Status(ProxyOptions&, std::string_view)>;

struct FlagSpec {
  std::string name;  // without dashes
  bool is_bool = false;
  std::string value_name;  // shown in help: "int", "string", "duration", "path"
  std::string default_text;
  std::string help;
  Setter set;
};

absl::Status invalid(std::string_view value, std::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("\"", av(value), "\" ", av(what)));
}

absl::Status parseInt(std::string_view value, int min, int max, int& out) {
  int v = 0;
  if (!absl::SimpleAtoi(av(value), &v) || v < min || v > max) {
    return invalid(value, absl::StrFormat("is not an integer in [%d, %d]", min, max));
  }
  out = v;
  return absl::OkStatus();
}

absl::Status parseBool(std::string_view value, bool& out) {
  // The spellings Go's strconv.ParseBool accepts.
  static const char* kTrue[] = {"1", "t", "T", "TRUE", "true", "True"};
  static const char* kFalse[] = {"0", "f", "F", "FALSE", "false", "False"};
  for (const char* t : kTrue) {
    if (value == t) {
      out = true;
      return absl::OkStatus();
    }
  }
  for (const char* f : kFalse) {
    if (value == f) {
      out = false;
      return absl::OkStatus();
    }
  }
  return invalid(value, "is not a boolean (true or false)");
}

absl::Status parseDuration(std::string_view value, absl::Duration& out) {
  absl::Duration d;
  if (!absl::ParseDuration(av(value), &d) || d < absl::ZeroDuration()) {
    return invalid(value, "is not a duration like 30s, 1m30s or 500ms");
  }
  out = d;
  return absl::OkStatus();
}

absl::Status readableFile(std::string_view value, std::string& out) {
  std::string path(value);
  if (path.empty()) {
    return absl::InvalidArgumentError("must not be empty");
  }
  if (access(path.c_str(), R_OK) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read \"", path, "\": ", std::strerror(errno)));
  }
  out = std::move(path);
  return absl::OkStatus();
}

// pflag's StringSlice: comma-separated; a repeated flag appends.
absl::Status appendList(std::string_view value, std::vector<std::string>& out) {
  for (absl::string_view item : absl::StrSplit(av(value), ',')) {
    item = absl::StripAsciiWhitespace(item);
    if (!item.empty()) {
      out.emplace_back(item);
    }
  }
  return absl::OkStatus();
}

absl::Status appendOptionalList(std::string_view value, std::optional<std::vector<std::string>>& out) {
  if (!out.has_value()) {
    out.emplace();
  }
  return appendList(value, *out);
}

// A list of Go path.Match patterns, each checked for syntax.
absl::Status appendPathPatterns(std::string_view value, std::vector<std::string>& out) {
  std::vector<std::string> patterns;
  if (absl::Status s = appendList(value, patterns); !s.ok()) {
    return s;
  }
  for (const std::string& pattern : patterns) {
    if (absl::StatusOr<bool> ok = goPathMatch(pattern, "/"); !ok.ok()) {
      return invalid(pattern, "is not a path pattern (Go path.Match: syntax error in pattern)");
    }
  }
  out.insert(out.end(), patterns.begin(), patterns.end());
  return absl::OkStatus();
}

// An HTTP field name (RFC 9110 token), as given.
absl::Status headerName(std::string_view value, std::string& out) {
  if (value.empty() ||
      value.find_first_not_of("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
                              "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != std::string_view::npos) {
    return invalid(value, "is not an HTTP header name");
  }
  out = std::string(value);
  return absl::OkStatus();
}

absl::Status parseTlsVersion(std::string_view value, int& out) {
  static const std::pair<const char*, int> kVersions[] = {
      {"VersionTLS12", TLS1_2_VERSION},
      {"VersionTLS13", TLS1_3_VERSION},
  };
  for (const auto& [name, version] : kVersions) {
    if (value == name) {
      out = version;
      return absl::OkStatus();
    }
  }
  return invalid(value, "is not a supported TLS version (VersionTLS12, VersionTLS13)");
}

// k8s.io/component-base's cipher suite names (Go's crypto/tls names) and OpenSSL's for them.
// TLS 1.3 suites are accepted and, as in Go, not configurable: they stay OpenSSL's defaults.
struct CipherSuiteName {
  const char* go;
  const char* openssl;  // nullptr: a TLS 1.3 suite
};
constexpr CipherSuiteName kCipherSuites[] = {
    {"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256"},
    {"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "ECDHE-RSA-AES128-GCM-SHA256"},
    {"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "ECDHE-ECDSA-AES256-GCM-SHA384"},
    {"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "ECDHE-RSA-AES256-GCM-SHA384"},
    {"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305", "ECDHE-ECDSA-CHACHA20-POLY1305"},
    {"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305"},
    {"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305", "ECDHE-RSA-CHACHA20-POLY1305"},
    {"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-RSA-CHACHA20-POLY1305"},
    {"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "ECDHE-ECDSA-AES128-SHA"},
    {"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "ECDHE-RSA-AES128-SHA"},
    {"TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", "ECDHE-ECDSA-AES256-SHA"},
    {"TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", "ECDHE-RSA-AES256-SHA"},
    {"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", "ECDHE-ECDSA-AES128-SHA256"},
    {"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", "ECDHE-RSA-AES128-SHA256"},
    {"TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA", "ECDHE-RSA-DES-CBC3-SHA"},
    {"TLS_RSA_WITH_AES_128_GCM_SHA256", "AES128-GCM-SHA256"},
    {"TLS_RSA_WITH_AES_256_GCM_SHA384", "AES256-GCM-SHA384"},
    {"TLS_RSA_WITH_AES_128_CBC_SHA", "AES128-SHA"},
    {"TLS_RSA_WITH_AES_256_CBC_SHA", "AES256-SHA"},
    {"TLS_RSA_WITH_AES_128_CBC_SHA256", "AES128-SHA256"},
    {"TLS_RSA_WITH_3DES_EDE_CBC_SHA", "DES-CBC3-SHA"},
    {"TLS_AES_128_GCM_SHA256", nullptr},
    {"TLS_AES_256_GCM_SHA384", nullptr},
    {"TLS_CHACHA20_POLY1305_SHA256", nullptr},
};

absl::Status parseCipherSuites(std::string_view value, std::string& openssl_list) {
  std::vector<std::string> names;
  appendList(value, names);
  openssl_list.clear();
  for (const std::string& name : names) {
    const CipherSuiteName* found = nullptr;
    for (const CipherSuiteName& suite : kCipherSuites) {
      if (name == suite.go) {
        found = &suite;
      }
    }
    if (found == nullptr) {
      // component-base's words.
      return absl::InvalidArgumentError(
          absl::StrCat("Cipher suite ", name, " not supported or doesn't exist"));
    }
    if (found->openssl != nullptr) {
      absl::StrAppend(&openssl_list, openssl_list.empty() ? "" : ":", found->openssl);
    }
  }
  return absl::OkStatus();
}

// A DNS name or an IP literal (IPv6 without brackets): what Go's tls.Config.ServerName holds.
absl::Status parseServerName(std::string_view value, UpstreamTlsOptions& tls) {
  if (value.empty()) {
    return absl::InvalidArgumentError("must not be empty");
  }
  in6_addr v6;
  bool ipv6 = inet_pton(AF_INET6, std::string(value).c_str(), &v6) == 1;
  for (char c : value) {
    bool allowed = absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' ||
                   c == '_' || c == '*' || (ipv6 && c == ':');
    if (!allowed) {
      return invalid(value, "is not a host name or an IP address");
    }
  }
  tls.server_name = std::string(value);
  return absl::OkStatus();
}

const std::vector<FlagSpec>& flagTable() {
  static const std::vector<FlagSpec> kFlags = {
      {"config", false, "path", "",
       "A YAML file with the same settings as the flags (keys are the flag names without dashes, "
       "lists as YAML lists); flags on the command line win.",
       [](ProxyOptions&, std::string_view) { return absl::OkStatus(); }},
      {"secure-port", false, "int", "8443", "The port on which to serve HTTPS with authentication and authorization.",
       [](ProxyOptions& o, std::string_view v) { return parseInt(v, 0, 65535, o.secure_port); }},
      {"bind-address", false, "ip", "0.0.0.0", "The IP address on which to listen for the --secure-port port.",
       [](ProxyOptions& o, std::string_view v) {
         if (v.empty()) {
           return absl::InvalidArgumentError("must not be empty");
         }
         o.bind_address = std::string(v);
         return absl::OkStatus();
       }},
      {"tls-cert-file", false, "path", "",
       "File containing the default x509 certificate for HTTPS (CA cert, if any, concatenated after the "
       "server cert). If --tls-cert-file and --tls-private-key-file are not provided, a self-signed "
       "certificate and key are generated in memory.",
       [](ProxyOptions& o, std::string_view v) { return readableFile(v, o.tls_cert_file); }},
      {"tls-private-key-file", false, "path", "", "File containing the default x509 private key matching --tls-cert-file.",
       [](ProxyOptions& o, std::string_view v) { return readableFile(v, o.tls_private_key_file); }},
      {"tls-min-version", false, "string", "VersionTLS12", "Minimum TLS version supported. Possible values: VersionTLS12, VersionTLS13.",
       [](ProxyOptions& o, std::string_view v) { return parseTlsVersion(v, o.tls_min_version); }},
      {"tls-cipher-suites", false, "strings", "",
       "Comma-separated list of cipher suites for the server (Go's names, as kube-apiserver's "
       "flag). If omitted, OpenSSL's defaults. TLS 1.3 suites are not configurable.",
       [](ProxyOptions& o, std::string_view v) {
         return parseCipherSuites(v, o.tls_cipher_list);
       }},
      {"upstream", false, "url", "",
       "The backend to forward authorized requests to: http://host:port, https://host:port or "
       "unix:///path/to.sock. Required unless every route of the --config file names its own "
       "upstream.",
       [](ProxyOptions& o, std::string_view v) -> absl::Status {
         auto parsed = parseUpstreamAddress(v);
         if (!parsed.ok()) {
           return parsed.status();
         }
         UpstreamTlsOptions tls = std::move(o.upstream.tls);  // the TLS flags may come first
         o.upstream = *std::move(parsed);
         o.upstream.tls = std::move(tls);
         return absl::OkStatus();
       }},
      {"upstream-ca-file", false, "path", "",
       "The CA the upstream uses for TLS connection. This is required when the upstream uses "
       "TLS and its own CA certificate. Default: the system trust store. Needs an https:// "
       "--upstream.",
       [](ProxyOptions& o, std::string_view v) { return readableFile(v, o.upstream.tls.ca_file); }},
      {"upstream-client-cert-file", false, "path", "",
       "If set, the client will be used to authenticate the proxy to upstream. Requires "
       "--upstream-client-key-file to be set, too.",
       [](ProxyOptions& o, std::string_view v) {
         return readableFile(v, o.upstream.tls.client_cert_file);
       }},
      {"upstream-client-key-file", false, "path", "",
       "The key matching the certificate from --upstream-client-cert-file. If set, requires "
       "--upstream-client-cert-file to be set, too.",
       [](ProxyOptions& o, std::string_view v) {
         return readableFile(v, o.upstream.tls.client_key_file);
       }},
      {"upstream-server-name", false, "string", "",
       "The name sent as SNI and required in the upstream's certificate (an IP address is "
       "matched against its IP SANs). Default: the host of the https:// --upstream.",
       [](ProxyOptions& o, std::string_view v) { return parseServerName(v, o.upstream.tls); }},
      {"client-ca-file", false, "path", "",
       "If set, any request presenting a client certificate signed by one of the authorities in the "
       "client-ca-file is authenticated with an identity corresponding to the CommonName of the client certificate.",
       [](ProxyOptions& o, std::string_view v) { return readableFile(v, o.client_ca_file); }},
      {"requestheader-client-ca-file", false, "path", "",
       "Root certificate bundle to use to verify client certificates on incoming requests before trusting "
       "usernames in headers specified by --requestheader-username-headers.",
       [](ProxyOptions& o, std::string_view v) { return readableFile(v, o.requestheader_client_ca_file); }},
      {"anonymous-auth", true, "bool", "true",
       "Enables anonymous requests: requests not rejected by another authentication method are treated as "
       "user system:anonymous in group system:unauthenticated. When false they are answered 401.",
       [](ProxyOptions& o, std::string_view v) { return parseBool(v, o.anonymous_auth); }},
      {"kubeconfig", false, "path", "",
       "kubeconfig for both --authentication-kubeconfig and --authorization-kubeconfig when they are not set. "
       "Without any, the in-cluster service account is used.",
       [](ProxyOptions& o, std::string_view v) { return readableFile(v, o.kubeconfig); }},
      {"authentication-kubeconfig", false, "path", "",
       "kubeconfig file pointing at the 'core' kubernetes server with enough rights to create "
       "tokenreviews.authentication.k8s.io and read the extension-apiserver-authentication ConfigMap.",
       [](ProxyOptions& o, std::string_view v) { return readableFile(v, o.authentication_kubeconfig); }},
      {"authorization-kubeconfig", false, "path", "",
       "kubeconfig file pointing at the 'core' kubernetes server with enough rights to create "
       "subjectaccessreviews.authorization.k8s.io.",
       [](ProxyOptions& o, std::string_view v) { return readableFile(v, o.authorization_kubeconfig); }},
      {"authentication-skip-lookup", true, "bool", "false",
       "If false, the authentication-kubeconfig is used to look up missing authentication "
       "configuration from the cluster (kube-system/extension-apiserver-authentication).",
       [](ProxyOptions& o, std::string_view v) { return parseBool(v, o.authentication_skip_lookup); }},
      {"authentication-tolerate-lookup-failure", true, "bool", "false",
       "If true, failures to look up missing authentication configuration from the cluster are not "
       "fatal. Note that this can result in authentication that treats all requests as anonymous.",
       [](ProxyOptions& o, std::string_view v) {
         return parseBool(v, o.authentication_tolerate_lookup_failure);
       }},
      {"requestheader-allowed-names", false, "strings", "",
       "List of client certificate common names to allow to provide usernames in headers specified by "
       "--requestheader-username-headers. If empty, any client certificate validated by the authorities "
       "in --requestheader-client-ca-file is allowed.",
       [](ProxyOptions& o, std::string_view v) { return appendOptionalList(v, o.requestheader_allowed_names); }},
      {"requestheader-username-headers", false, "strings", "x-remote-user",
       "List of request headers to inspect for usernames. X-Remote-User is common.",
       [](ProxyOptions& o, std::string_view v) {
         return appendOptionalList(v, o.requestheader_username_headers);
       }},
      {"requestheader-uid-headers", false, "strings", "",
       "List of request headers to inspect for UIDs. X-Remote-Uid is suggested.",
       [](ProxyOptions& o, std::string_view v) { return appendOptionalList(v, o.requestheader_uid_headers); }},
      {"requestheader-group-headers", false, "strings", "x-remote-group",
       "List of request headers to inspect for groups. X-Remote-Group is suggested.",
       [](ProxyOptions& o, std::string_view v) { return appendOptionalList(v, o.requestheader_group_headers); }},
      {"requestheader-extra-headers-prefix", false, "strings", "x-remote-extra-",
       "List of request header prefixes to inspect. X-Remote-Extra- is suggested.",
       [](ProxyOptions& o, std::string_view v) {
         return appendOptionalList(v, o.requestheader_extra_headers_prefix);
       }},
      {"authentication-token-webhook-cache-ttl", false, "duration", "10s",
       "The duration to cache responses from the webhook token authenticator.",
       [](ProxyOptions& o, std::string_view v) { return parseDuration(v, o.token_webhook_cache_ttl); }},
      {"authentication-token-audiences", false, "strings", "",
       "Audiences sent in TokenReviews; empty means the apiserver's own audiences.",
       [](ProxyOptions& o, std::string_view v) { return appendList(v, o.token_audiences); }},
      {"authentication-configmap-resync-period", false, "duration", "1m",
       "How often the extension-apiserver-authentication ConfigMap is re-read besides the watch.",
       [](ProxyOptions& o, std::string_view v) { return parseDuration(v, o.configmap_resync_period); }},
      {"authorization-mode", false, "strings", "webhook",
       "Ordered authorizers after the always-allow rules: static (the --authorization-policy-file) and/or "
       "webhook (SubjectAccessReview to kube-apiserver), e.g. static,webhook.",
       [](ProxyOptions& o, std::string_view v) -> absl::Status {
         std::vector<std::string> modes;
         appendList(v, modes);
         for (const std::string& m : modes) {
           if (m != "static" && m != "webhook") {
             return invalid(v, "must list static and/or webhook");
           }
         }
         if (modes.empty()) {
           return invalid(v, "must list static and/or webhook");
         }
         o.authorization_modes = modes;
         return absl::OkStatus();
       }},
      {"authorization-policy-file", false, "path", "",
       "YAML rules for the static authorizer (standalone mode, no cluster); see docs/static-policy.md.",
       [](ProxyOptions& o, std::string_view v) { return readableFile(v, o.authorization_policy_file); }},
      {"authorization-always-allow-groups", false, "strings", "system:masters",
       "Groups whose requests are always allowed (privileged groups).",
       [](ProxyOptions& o, std::string_view v) {
         o.always_allow_groups.clear();
         return appendList(v, o.always_allow_groups);
       }},
      {"authorization-always-allow-paths", false, "strings", "/healthz,/readyz,/livez",
       "Non-resource paths allowed without asking kube-apiserver; a trailing * matches a prefix.",
       [](ProxyOptions& o, std::string_view v) {
         o.always_allow_paths.clear();
         return appendList(v, o.always_allow_paths);
       }},
      {"authorization-stale-allow-grace-period", false, "duration", "0s",
       "Opt-in: when SubjectAccessReviews fail with a connection error or a 5xx, keep using a "
       "cached 'allowed' decision for up to this long after its TTL. Denials are never extended; "
       "each use is counted in aaproxy_authorization_stale_allows_total and logged at -v 2. 0 "
       "turns it off (kube-apiserver has no such fallback).",
       [](ProxyOptions& o, std::string_view v) {
         return parseDuration(v, o.stale_allow_grace_period);
       }},
      {"allow-paths", false, "patterns", "",
       "Comma-separated Go path.Match patterns (e.g. /metrics,/api/v1/*); a request whose path "
       "matches none is answered 404. Cannot be combined with --ignore-paths.",
       [](ProxyOptions& o, std::string_view v) {
         o.allow_paths.clear();
         return appendPathPatterns(v, o.allow_paths);
       }},
      {"ignore-paths", false, "patterns", "",
       "Comma-separated Go path.Match patterns whose requests are forwarded without authentication "
       "or authorization (identity headers and credentials are still removed). Cannot be combined "
       "with --allow-paths.",
       [](ProxyOptions& o, std::string_view v) {
         o.ignore_paths.clear();
         return appendPathPatterns(v, o.ignore_paths);
       }},
      {"auth-header-fields-enabled", true, "bool", "false",
       "Also pass the user and groups to the backend in --auth-header-user-field-name and "
       "--auth-header-groups-field-name (names clients cannot set: they are removed from requests).",
       [](ProxyOptions& o, std::string_view v) { return parseBool(v, o.auth_header_fields.enabled); }},
      {"auth-header-user-field-name", false, "name", "x-remote-user",
       "The header that carries the user name when --auth-header-fields-enabled.",
       [](ProxyOptions& o, std::string_view v) {
         return headerName(v, o.auth_header_fields.user_field);
       }},
      {"auth-header-groups-field-name", false, "name", "x-remote-groups",
       "The header that carries the groups when --auth-header-fields-enabled.",
       [](ProxyOptions& o, std::string_view v) {
         return headerName(v, o.auth_header_fields.groups_field);
       }},
      {"auth-header-groups-field-separator", false, "string", "|",
       "The separator between groups in --auth-header-groups-field-name.",
       [](ProxyOptions& o, std::string_view v) -> absl::Status {
         if (v.empty() || v.find_first_of("\r\n") != std::string_view::npos) {
           return invalid(v, "must be a non-empty separator without line breaks");
         }
         o.auth_header_fields.groups_separator = std::string(v);
         return absl::OkStatus();
       }},
      {"authorization-webhook-cache-authorized-ttl", false, "duration", "10s",
       "The duration to cache 'authorized' responses from the webhook authorizer.",
       [](ProxyOptions& o, std::string_view v) { return parseDuration(v, o.authorized_ttl); }},
      {"authorization-webhook-cache-unauthorized-ttl", false, "duration", "10s",
       "The duration to cache 'unauthorized' responses from the webhook authorizer.",
       [](ProxyOptions& o, std::string_view v) { return parseDuration(v, o.unauthorized_ttl); }},
      {"workers", false, "int", "the CPU quota",
       "Worker threads, each with its own event loop. Default: the container's CPU quota (cgroup "
       "v2 cpu.max or v1 cfs_quota_us, rounded up), else the number of cores.",
       [](ProxyOptions& o, std::string_view v) { return parseInt(v, 1, 256, o.workers); }},
      {"read-header-timeout", false, "duration", "32s",
       "How long a client may take to complete the TLS handshake and send a request's headers.",
       [](ProxyOptions& o, std::string_view v) { return parseDuration(v, o.read_header_timeout); }},
      {"idle-timeout", false, "duration", "90s", "How long an idle keep-alive client connection is kept open.",
       [](ProxyOptions& o, std::string_view v) { return parseDuration(v, o.idle_timeout); }},
      {"upstream-connect-timeout", false, "duration", "10s", "How long to wait for a connection to the backend.",
       [](ProxyOptions& o, std::string_view v) { return parseDuration(v, o.upstream_connect_timeout); }},
      {"max-header-bytes", false, "int", "1048576",
       "Largest request header block accepted; larger requests are answered 431.",
       [](ProxyOptions& o, std::string_view v) {
         int n = 0;
         absl::Status s = parseInt(v, 1024, 64 << 20, n);
         o.max_header_bytes = static_cast<size_t>(n);
         return s;
       }},
      {"http2", true, "bool", "true",
       "Offer HTTP/2 (h2) in ALPN before http/1.1. With false, only HTTP/1.1 is served.",
       [](ProxyOptions& o, std::string_view v) { return parseBool(v, o.http2); }},
      {"http2-max-streams-per-connection", false, "int", "0",
       "The limit that the server gives to clients for the maximum number of streams in an "
       "HTTP/2 connection. Zero means to use golang's default (250).",
       [](ProxyOptions& o, std::string_view v) {
         return parseInt(v, 0, 1 << 20, o.http2_max_streams_per_connection);
       }},
      {"http2-stall-timeout", false, "duration", "60s",
       "How long response data may wait on an HTTP/2 client that does not take it (a flow-control "
       "window it keeps at zero, or a socket it stopped reading): then the stream is reset, or, "
       "when nothing at all could be sent on the connection, the connection gets GOAWAY and is "
       "closed. Zero disables the check.",
       [](ProxyOptions& o, std::string_view v) { return parseDuration(v, o.http2_stall_timeout); }},
      {"max-request-line-bytes", false, "int", "65536",
       "Longest request line (method, target, version) accepted; longer requests are answered 414.",
       [](ProxyOptions& o, std::string_view v) {
         int n = 0;
         absl::Status s = parseInt(v, 256, 16 << 20, n);
         o.max_request_line_bytes = static_cast<size_t>(n);
         return s;
       }},
      {"healthz-port", false, "int", "0",
       "If non-zero, also serve /healthz, /livez and /readyz over plain HTTP on this port, without "
       "authentication (for kubelet probes).",
       [](ProxyOptions& o, std::string_view v) { return parseInt(v, 0, 65535, o.healthz_port); }},
      {"healthz-bind-address", false, "ip", "0.0.0.0", "The IP address for --healthz-port.",
       [](ProxyOptions& o, std::string_view v) {
         o.healthz_bind_address = std::string(v);
         return absl::OkStatus();
       }},
      {"logging-format", false, "string", "text",
       "Log format: text (klog's header format) or json (one JSON object per line).",
       [](ProxyOptions& o, std::string_view v) -> absl::Status {
         if (v != "text" && v != "json") {
           return invalid(v, "is not a logging format (text, json)");
         }
         o.logging_format = std::string(v);
         return absl::OkStatus();
       }},
      {"shutdown-grace-period", false, "duration", "25s",
       "On SIGTERM: readiness fails at once, the listener closes, and in-flight requests get this long "
       "to finish before the remaining connections (watches, tunnels) are closed.",
       [](ProxyOptions& o, std::string_view v) { return parseDuration(v, o.shutdown_grace_period); }},
      {"tls-reload-interval", false, "duration", "10s",
       "How often the serving certificate, key and CA files are checked for changes (SIGHUP reloads at once).",
       [](ProxyOptions& o, std::string_view v) { return parseDuration(v, o.tls_reload_interval); }},
      {"v", false, "int", "0", "Log verbosity: 0 errors and lifecycle, 2 one line per request, 4 connection details.",
       [](ProxyOptions& o, std::string_view v) { return parseInt(v, 0, 10, o.verbosity); }},
  };
  return kFlags;
}

const FlagSpec* findFlag(std::string_view name) {
  for (const FlagSpec& f : flagTable()) {
    if (f.name == name) {
      return &f;
    }
  }
  return nullptr;
}

}  // namespace

absl::StatusOr<UpstreamAddress> parseUpstreamAddress(std::string_view value) {
  UpstreamAddress out;
  out.display = std::string(value);
  absl::string_view rest = av(value);
  if (absl::ConsumePrefix(&rest, "unix://")) {
    if (rest.empty() || rest[0] != '/') {
      return invalid(value, "is not unix:///absolute/path.sock");
    }
    out.kind = UpstreamAddress::Kind::kUnix;
    out.path = std::string(rest);
    return out;
  }
  bool https = false;
  if (absl::ConsumePrefix(&rest, "https://")) {
    https = true;
  } else if (!absl::ConsumePrefix(&rest, "http://")) {
    return invalid(value, "must start with http://, https:// or unix://");
  }
  const char* scheme = https ? "https" : "http";
  absl::ConsumeSuffix(&rest, "/");
  if (rest.find('/') != absl::string_view::npos) {
    return invalid(value, absl::StrCat("must not have a path: ", scheme, "://host:port"));
  }
  absl::string_view host;
  absl::string_view port;
  if (absl::ConsumePrefix(&rest, "[")) {
    size_t close = rest.find(']');
    if (close == absl::string_view::npos) {
      return invalid(value, "has an unterminated [IPv6] host");
    }
    host = rest.substr(0, close);
    rest.remove_prefix(close + 1);
    if (!absl::ConsumePrefix(&rest, ":")) {
      return invalid(value, absl::StrCat("needs a port: ", scheme, "://[::1]:8080"));
    }
    port = rest;
  } else {
    size_t colon = rest.rfind(':');
    if (colon == absl::string_view::npos) {
      return invalid(value, absl::StrCat("needs a port: ", scheme, "://host:port"));
    }
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  int p = 0;
  if (host.empty() || !absl::SimpleAtoi(port, &p) || p <= 0 || p > 65535) {
    return invalid(value, "needs a host and a port in 1..65535");
  }
  out.kind = https ? UpstreamAddress::Kind::kHttps : UpstreamAddress::Kind::kTcp;
  out.host = std::string(host);
  out.port = static_cast<uint16_t>(p);
  return out;
}

namespace {

struct FlagValue {
  const FlagSpec* spec;
  std::string value;
};

struct ConfigFile {
  std::vector<FlagValue> values;
  std::vector<RouteConfig> routes;
};

// --config: a YAML mapping from flag names (without dashes) to values; lists for list flags;
// and `routes`, the route table (config/route_table.h).
absl::StatusOr<ConfigFile> loadConfigFile(const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("--config: \"", path, "\": ", e.what()));
  }
  ConfigFile file;
  std::vector<FlagValue>& values = file.values;
  if (!root || root.IsNull()) {
    return file;
  }
  if (!root.IsMap()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--config: \"", path, "\": must be a mapping of flag names to values"));
  }
  for (const auto& entry : root) {
    if (!entry.first.IsScalar()) {
      // as<std::string>() would throw for a "? [complex]" or null key.
      return absl::InvalidArgumentError(
          absl::StrCat("--config: \"", path, "\": keys must be flag names (plain strings)"));
    }
    std::string key = entry.first.Scalar();
    if (key == "routes") {
      absl::StatusOr<std::vector<RouteConfig>> routes = absl::InternalError("");
      try {
        routes = parseRoutes(entry.second);
      } catch (const YAML::Exception& e) {
        routes = absl::InvalidArgumentError(absl::StrCat("routes: ", e.what()));
      }
      if (!routes.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("--config: \"", path, "\": ", routes.status().message()));
      }
      file.routes = *std::move(routes);
      continue;
    }
    const FlagSpec* spec = findFlag(key);
    if (spec == nullptr || key == "config") {
      return absl::InvalidArgumentError(absl::StrCat("--config: \"", path, "\": unknown field \"", key,
                                                     "\" (fields are the flag names, see --help)"));
    }
    const YAML::Node& node = entry.second;
    std::string value;
    if (node.IsSequence()) {
      for (const auto& item : node) {
        if (!item.IsScalar()) {
          return absl::InvalidArgumentError(absl::StrCat(
              "--config: \"", path, "\": field \"", key, "\": list items must be plain values"));
        }
        absl::StrAppend(&value, value.empty() ? "" : ",", item.Scalar());
      }
    } else if (node.IsScalar()) {
      value = node.Scalar();
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "--config: \"", path, "\": field \"", key, "\": must be a value or a list of values"));
    }
    values.push_back({spec, std::move(value)});
  }
  return file;
}

// The TLS flags belong to an https:// upstream; the client certificate comes with its key.
absl::Status validateUpstreamTls(const UpstreamAddress& upstream) {
  const UpstreamTlsOptions& tls = upstream.tls;
  if (upstream.kind != UpstreamAddress::Kind::kHttps) {
    const std::pair<const char*, const std::string*> kFlags[] = {
        {"upstream-ca-file", &tls.ca_file},
        {"upstream-client-cert-file", &tls.client_cert_file},
        {"upstream-client-key-file", &tls.client_key_file},
        {"upstream-server-name", &tls.server_name},
    };
    for (const auto& [flag, value] : kFlags) {
      if (!value->empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("--", flag, ": needs an https:// --upstream (it is \"", upstream.display,
                         "\")"));
      }
    }
    return absl::OkStatus();
  }
  if (tls.client_cert_file.empty() != tls.client_key_file.empty()) {
    return absl::InvalidArgumentError(
        tls.client_cert_file.empty()
            ? "--upstream-client-cert-file: required when --upstream-client-key-file is set"
            : "--upstream-client-key-file: required when --upstream-client-cert-file is set");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<CommandLine> parseCommandLine(const std::vector<std::string>& args) {
  CommandLine cl;
  std::vector<FlagValue> from_args;
  std::string config_file;
  for (size_t i = 0; i < args.size(); ++i) {
    absl::string_view arg = args[i];
    if (arg == "-h" || arg == "--help") {
      cl.show_help = true;
      return cl;
    }
    absl::string_view body = arg;
    if (!absl::ConsumePrefix(&body, "--") && !absl::ConsumePrefix(&body, "-")) {
      return absl::InvalidArgumentError(
          absl::StrCat("unexpected argument \"", arg, "\": flags start with --"));
    }
    absl::string_view name = body;
    std::optional<std::string> value;
    if (size_t eq = body.find('='); eq != absl::string_view::npos) {
      name = body.substr(0, eq);
      value = std::string(body.substr(eq + 1));
    }
    const FlagSpec* spec = findFlag(std::string_view(name.data(), name.size()));
    if (spec == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown flag --", name, " (see aa-proxy --help)"));
    }
    if (!value.has_value()) {
      if (spec->is_bool) {
        value = "true";
      } else if (i + 1 < args.size()) {
        value = args[++i];
      } else {
        return absl::InvalidArgumentError(absl::StrCat("--", spec->name, ": needs a value"));
      }
    }
    if (spec->name == "config") {
      config_file = *value;
      cl.options.config_file = *value;
      continue;
    }
    from_args.push_back({spec, *std::move(value)});
  }
  // The config file first, then the command line: a flag given on the command line replaces the
  // file's value (for list flags too, rather than appending to it).
  std::vector<FlagValue> ordered;
  std::vector<RouteConfig> routes;
  if (!config_file.empty()) {
    absl::StatusOr<ConfigFile> from_file = loadConfigFile(config_file);
    if (!from_file.ok()) {
      return from_file.status();
    }
    routes = std::move(from_file->routes);
    for (FlagValue& fv : from_file->values) {
      bool overridden = std::any_of(from_args.begin(), from_args.end(),
                                    [&](const FlagValue& a) { return a.spec == fv.spec; });
      if (!overridden) {
        ordered.push_back(std::move(fv));
      }
    }
  }
  ordered.insert(ordered.end(), from_args.begin(), from_args.end());
  bool upstream_set = false;
  for (const FlagValue& fv : ordered) {
    if (absl::Status s = fv.spec->set(cl.options, fv.value); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--", fv.spec->name, ": ", s.message()));
    }
    upstream_set |= fv.spec->name == "upstream";
  }
  ProxyOptions& o = cl.options;
  o.upstream_set = upstream_set;
  if (absl::Status s = validateUpstreamTls(o.upstream); !s.ok()) {
    return s;
  }
  if (absl::Status s = resolveRoutes(routes, upstream_set ? std::optional(o.upstream) : std::nullopt,
                                     o.upstreams);
      !s.ok()) {
    if (o.config_file.empty() || absl::StartsWith(s.message(), "--")) {
      return s;
    }
    // A route of the file lacks its backend: the file is named, as for its other errors.
    return absl::InvalidArgumentError(
        absl::StrCat("--config: \"", o.config_file, "\": ", s.message()));
  }
  o.routes = std::make_shared<const RouteTable>(std::move(routes));
  if (!o.allow_paths.empty() && !o.ignore_paths.empty()) {
    return absl::InvalidArgumentError(
        "--allow-paths: cannot be combined with --ignore-paths (kube-rbac-proxy refuses it too)");
  }
  if (o.tls_cert_file.empty() != o.tls_private_key_file.empty()) {
    return absl::InvalidArgumentError(
        o.tls_cert_file.empty() ? "--tls-cert-file: required when --tls-private-key-file is set"
                                : "--tls-private-key-file: required when --tls-cert-file is set");
  }
  bool static_mode = std::find(o.authorization_modes.begin(), o.authorization_modes.end(), "static") !=
                     o.authorization_modes.end();
  if (static_mode && o.authorization_policy_file.empty()) {
    return absl::InvalidArgumentError(
        "--authorization-policy-file: required when --authorization-mode includes static");
  }
  if (!static_mode && !o.authorization_policy_file.empty()) {
    return absl::InvalidArgumentError(
        "--authorization-mode: must include static when --authorization-policy-file is set");
  }
  if (o.tls_min_version == 0) {
    o.tls_min_version = TLS1_2_VERSION;
  }
  if (o.workers == 0) {
    DefaultWorkers workers = defaultWorkerCount(std::thread::hardware_concurrency());
    o.workers = workers.workers;
    o.workers_source = std::move(workers.source);
  } else {
    o.workers_source = "--workers";
  }
  return cl;
}

absl::StatusOr<std::shared_ptr<const RouteTable>> reloadRouteTable(const ProxyOptions& options) {
  absl::StatusOr<ConfigFile> file = loadConfigFile(options.config_file);
  if (!file.ok()) {
    return file.status();
  }
  std::vector<RouteConfig> routes = std::move(file->routes);
  std::vector<UpstreamAddress> upstreams;
  if (absl::Status s = resolveRoutes(
          routes, options.upstream_set ? std::optional(options.upstream) : std::nullopt, upstreams);
      !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--config: \"", options.config_file, "\": ", s.message()));
  }
  for (size_t i = 0; i < routes.size(); ++i) {
    const UpstreamAddress& wanted = upstreams[routes[i].upstream_index];
    auto known = std::find(options.upstreams.begin(), options.upstreams.end(), wanted);
    if (known == options.upstreams.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--config: \"", options.config_file, "\": routes[", i, "].upstream: ", wanted.display,
          " is a backend aa-proxy did not start with; adding a backend needs a restart"));
    }
    routes[i].upstream_index = static_cast<size_t>(known - options.upstreams.begin());
  }
  return std::make_shared<const RouteTable>(std::move(routes));
}

std::string helpText() {
  std::string out =
      "aa-proxy: makes an HTTP backend a secure Kubernetes aggregated API server.\n"
      "It terminates the aggregator's mutual TLS, authenticates and authorizes each request as\n"
      "k8s.io/apiserver does, and forwards allowed requests to --upstream with clean identity headers.\n\n"
      "Usage: aa-proxy --upstream http://127.0.0.1:8080 [flags]\n\nFlags:\n";
  for (const FlagSpec& f : flagTable()) {
    std::string head = absl::StrCat("  --", f.name, f.is_bool ? "" : absl::StrCat(" ", f.value_name));
    absl::StrAppend(&out, head, "\n      ", f.help);
    if (!f.default_text.empty()) {
      absl::StrAppend(&out, " (default ", f.default_text, ")");
    }
    out += "\n";
  }
  out += "  -h, --help\n      Print this help.\n";
  return out;
}

}  // namespace aaproxy
