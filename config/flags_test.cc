#include "config/flags.h"

#include <openssl/ssl.h>

#include "absl/strings/str_cat.h"
#include "config/route_table.h"
#include "gtest/gtest.h"

namespace aaproxy {
namespace {

absl::StatusOr<CommandLine> parse(const std::vector<std::string>& args) {
  return parseCommandLine(args);
}

TEST(Flags, DefaultsMatchUpstreamNames) {
  auto cl = parse({"--upstream", "http://127.0.0.1:8080"});
  ASSERT_TRUE(cl.ok()) << cl.status();
  EXPECT_EQ(cl->options.secure_port, 8443);
  EXPECT_EQ(cl->options.bind_address, "0.0.0.0");
  EXPECT_EQ(cl->options.tls_min_version, TLS1_2_VERSION);
  EXPECT_GE(cl->options.workers, 1);
  EXPECT_EQ(cl->options.upstream.kind, UpstreamAddress::Kind::kTcp);
  EXPECT_EQ(cl->options.upstream.host, "127.0.0.1");
  EXPECT_EQ(cl->options.upstream.port, 8080);
  EXPECT_EQ(cl->options.read_header_timeout, absl::Seconds(32));
}

TEST(Flags, EqualsAndSpaceFormsAndBareBool) {
  auto cl = parse({"--secure-port=9443", "--workers", "3", "--anonymous-auth", "-v=4",
                   "--upstream=unix:///run/backend.sock", "--idle-timeout=1m30s"});
  ASSERT_TRUE(cl.ok()) << cl.status();
  EXPECT_EQ(cl->options.secure_port, 9443);
  EXPECT_EQ(cl->options.workers, 3);
  EXPECT_TRUE(cl->options.anonymous_auth);
  EXPECT_EQ(cl->options.verbosity, 4);
  EXPECT_EQ(cl->options.upstream.kind, UpstreamAddress::Kind::kUnix);
  EXPECT_EQ(cl->options.upstream.path, "/run/backend.sock");
  EXPECT_EQ(cl->options.idle_timeout, absl::Seconds(90));
}

TEST(Flags, Http2StallTimeout) {
  auto cl = parse({"--upstream", "http://127.0.0.1:8080"});
  ASSERT_TRUE(cl.ok()) << cl.status();
  EXPECT_EQ(cl->options.http2_stall_timeout, absl::Seconds(60));
  cl = parse({"--upstream", "http://127.0.0.1:8080", "--http2-stall-timeout=500ms"});
  ASSERT_TRUE(cl.ok()) << cl.status();
  EXPECT_EQ(cl->options.http2_stall_timeout, absl::Milliseconds(500));
  cl = parse({"--upstream", "http://127.0.0.1:8080", "--http2-stall-timeout", "0"});
  ASSERT_TRUE(cl.ok()) << cl.status();
  EXPECT_EQ(cl->options.http2_stall_timeout, absl::ZeroDuration());
  cl = parse({"--upstream", "http://127.0.0.1:8080", "--http2-stall-timeout", "-1s"});
  ASSERT_FALSE(cl.ok());
  EXPECT_EQ(cl.status().message(),
            "--http2-stall-timeout: \"-1s\" is not a duration like 30s, 1m30s or 500ms");
}

TEST(Flags, HelpListsEveryFlag) {
  auto cl = parse({"--help"});
  ASSERT_TRUE(cl.ok());
  EXPECT_TRUE(cl->show_help);
  std::string help = helpText();
  for (const char* flag : {"--secure-port", "--bind-address", "--tls-cert-file", "--tls-private-key-file",
                           "--tls-min-version", "--upstream", "--client-ca-file",
                           "--requestheader-client-ca-file", "--workers", "--anonymous-auth", "--v"}) {
    EXPECT_NE(help.find(flag), std::string::npos) << flag;
  }
}

struct BadFlagCase {
  std::vector<std::string> args;
  std::string error;
};

class BadFlags : public ::testing::TestWithParam<BadFlagCase> {};

TEST_P(BadFlags, ErrorNamesTheFlag) {
  auto cl = parse(GetParam().args);
  ASSERT_FALSE(cl.ok());
  EXPECT_EQ(cl.status().message(), GetParam().error);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, BadFlags,
    ::testing::Values(
        BadFlagCase{{},
                    "--upstream: required (http://host:port, https://host:port or "
                    "unix:///path.sock)"},
        BadFlagCase{{"--upstream", "http://h:1", "--secure-port", "abc"},
                    "--secure-port: \"abc\" is not an integer in [0, 65535]"},
        BadFlagCase{{"--upstream", "ftp://x:1"},
                    "--upstream: \"ftp://x:1\" must start with http://, https:// or unix://"},
        BadFlagCase{{"--upstream", "http://host"},
                    "--upstream: \"http://host\" needs a port: http://host:port"},
        BadFlagCase{{"--upstream", "https://[::1]"},
                    "--upstream: \"https://[::1]\" needs a port: https://[::1]:8080"},
        BadFlagCase{{"--upstream", "https://h:1/api"},
                    "--upstream: \"https://h:1/api\" must not have a path: https://host:port"},
        BadFlagCase{{"--upstream", "https://h:0"},
                    "--upstream: \"https://h:0\" needs a host and a port in 1..65535"},
        BadFlagCase{{"--upstream", "unix://relative.sock"},
                    "--upstream: \"unix://relative.sock\" is not unix:///absolute/path.sock"},
        BadFlagCase{{"--upstream", "http://h:1", "--no-such-flag"},
                    "unknown flag --no-such-flag (see aa-proxy --help)"},
        BadFlagCase{{"--upstream", "http://h:1", "--client-ca-file", "/nonexistent/ca.crt"},
                    "--client-ca-file: cannot read \"/nonexistent/ca.crt\": No such file or directory"},
        BadFlagCase{{"--upstream", "http://h:1", "--anonymous-auth=maybe"},
                    "--anonymous-auth: \"maybe\" is not a boolean (true or false)"},
        BadFlagCase{{"--upstream", "http://h:1", "--tls-min-version", "VersionTLS10"},
                    "--tls-min-version: \"VersionTLS10\" is not a supported TLS version "
                    "(VersionTLS12, VersionTLS13)"},
        BadFlagCase{{"--upstream", "http://h:1", "--idle-timeout", "soon"},
                    "--idle-timeout: \"soon\" is not a duration like 30s, 1m30s or 500ms"},
        BadFlagCase{{"--upstream"}, "--upstream: needs a value"},
        BadFlagCase{{"--upstream", "http://h:1", "--authorization-mode", "static"},
                    "--authorization-policy-file: required when --authorization-mode includes static"},
        BadFlagCase{{"--upstream", "http://h:1", "--authorization-mode", "rbac"},
                    "--authorization-mode: \"rbac\" must list static and/or webhook"}));

TEST(Flags, ListsSplitOnCommasAndAppend) {
  auto cl = parse({"--upstream", "http://h:1", "--requestheader-username-headers", "X-User, X-Other",
                   "--requestheader-username-headers=X-Third", "--authorization-always-allow-paths",
                   "/healthz,/metrics*"});
  ASSERT_TRUE(cl.ok()) << cl.status();
  ASSERT_TRUE(cl->options.requestheader_username_headers.has_value());
  EXPECT_EQ(*cl->options.requestheader_username_headers,
            (std::vector<std::string>{"X-User", "X-Other", "X-Third"}));
  EXPECT_FALSE(cl->options.requestheader_group_headers.has_value());
  EXPECT_EQ(cl->options.always_allow_paths, (std::vector<std::string>{"/healthz", "/metrics*"}));
  EXPECT_EQ(cl->options.always_allow_groups, (std::vector<std::string>{"system:masters"}));
}

class ConfigFile : public ::testing::Test {
 protected:
  std::string write(const std::string& yaml) {
    std::string path = ::testing::TempDir() + "/aa-proxy-config.yaml";
    FILE* f = std::fopen(path.c_str(), "w");
    std::fputs(yaml.c_str(), f);
    std::fclose(f);
    return path;
  }
};

TEST_F(ConfigFile, SettingsComeFromTheFileAndFlagsWin) {
  std::string path = write(
      "upstream: unix:///run/backend.sock\n"
      "secure-port: 9443\n"
      "anonymous-auth: false\n"
      "authorization-always-allow-paths: [/healthz, /metrics]\n"
      "requestheader-username-headers:\n  - X-Remote-User\n  - X-User\n");
  auto cl = parse({"--config", path, "--secure-port=10443",
                   "--authorization-always-allow-paths", "/livez"});
  ASSERT_TRUE(cl.ok()) << cl.status();
  EXPECT_EQ(cl->options.upstream.path, "/run/backend.sock");
  EXPECT_EQ(cl->options.secure_port, 10443);
  EXPECT_FALSE(cl->options.anonymous_auth);
  EXPECT_EQ(cl->options.always_allow_paths, (std::vector<std::string>{"/livez"}));
  EXPECT_EQ(*cl->options.requestheader_username_headers,
            (std::vector<std::string>{"X-Remote-User", "X-User"}));
}

TEST_F(ConfigFile, ErrorsNameTheField) {
  std::string path = write("upstream: http://h:1\nsecure-prot: 9443\n");
  auto cl = parse({"--config", path});
  ASSERT_FALSE(cl.ok());
  EXPECT_EQ(cl.status().message(),
            "--config: \"" + path + "\": unknown field \"secure-prot\" (fields are the flag names, see --help)");

  path = write("upstream: http://h:1\nsecure-port: many\n");
  cl = parse({"--config", path});
  ASSERT_FALSE(cl.ok());
  EXPECT_EQ(cl.status().message(), "--secure-port: \"many\" is not an integer in [0, 65535]");

  path = write("upstream: [http://h:1, {a: b}]\n");
  cl = parse({"--config", path});
  ASSERT_FALSE(cl.ok());
  EXPECT_EQ(cl.status().message(),
            "--config: \"" + path + "\": field \"upstream\": list items must be plain values");
}

TEST_F(ConfigFile, KeysThatAreNotStringsAreErrorsNotExceptions) {
  // Found by fuzz/flags_config_fuzzer: yaml-cpp's as<std::string>() threw out of parseCommandLine.
  for (const char* yaml : {"upstream: http://h:1\n? [complex, key]\n: value\n",
                           "{a: b}: 1\n", "~: 1\n"}) {
    std::string path = write(yaml);
    auto cl = parse({"--config", path});
    ASSERT_FALSE(cl.ok()) << yaml;
    EXPECT_EQ(cl.status().message(),
              "--config: \"" + path + "\": keys must be flag names (plain strings)");
  }
}

TEST(UpstreamAddress, Ipv6) {
  auto a = parseUpstreamAddress("http://[::1]:8080/");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->host, "::1");
  EXPECT_EQ(a->port, 8080);
}

TEST(UpstreamAddress, Https) {
  auto a = parseUpstreamAddress("https://backend.example:8443/");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->kind, UpstreamAddress::Kind::kHttps);
  EXPECT_EQ(a->host, "backend.example");
  EXPECT_EQ(a->port, 8443);
  EXPECT_EQ(a->tls, UpstreamTlsOptions());
  EXPECT_EQ(a->display, "https://backend.example:8443/");

  a = parseUpstreamAddress("https://[fd00::1]:443");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->kind, UpstreamAddress::Kind::kHttps);
  EXPECT_EQ(a->host, "fd00::1");
  EXPECT_EQ(a->port, 443);
}

class UpstreamTlsFlags : public ::testing::Test {
 protected:
  void SetUp() override {
    file_ = ::testing::TempDir() + "/upstream-tls-flags.pem";
    FILE* f = std::fopen(file_.c_str(), "w");
    std::fputs("not checked here\n", f);
    std::fclose(f);
  }
  std::string file_;
};

TEST_F(UpstreamTlsFlags, SetWithAnHttpsUpstreamInAnyOrder) {
  auto cl = parse({"--upstream-ca-file", file_, "--upstream-server-name=backend.internal",
                   "--upstream", "https://10.0.0.7:8443", "--upstream-client-cert-file", file_,
                   "--upstream-client-key-file=" + file_});
  ASSERT_TRUE(cl.ok()) << cl.status();
  const UpstreamAddress& up = cl->options.upstream;
  EXPECT_EQ(up.kind, UpstreamAddress::Kind::kHttps);
  EXPECT_EQ(up.host, "10.0.0.7");
  EXPECT_EQ(up.port, 8443);
  EXPECT_EQ(up.tls, (UpstreamTlsOptions{.ca_file = file_,
                                        .client_cert_file = file_,
                                        .client_key_file = file_,
                                        .server_name = "backend.internal"}));
}

TEST_F(UpstreamTlsFlags, DefaultsAreTheSystemStoreAndTheHost) {
  auto cl = parse({"--upstream", "https://backend:8443"});
  ASSERT_TRUE(cl.ok()) << cl.status();
  EXPECT_EQ(cl->options.upstream.tls, UpstreamTlsOptions());
}

TEST_F(UpstreamTlsFlags, IpServerNames) {
  for (const char* name : {"127.0.0.1", "::1", "fd00::7", "*.svc.cluster.local"}) {
    auto cl = parse({"--upstream", "https://backend:8443", "--upstream-server-name", name});
    ASSERT_TRUE(cl.ok()) << name << ": " << cl.status();
    EXPECT_EQ(cl->options.upstream.tls.server_name, name);
  }
}

TEST_F(UpstreamTlsFlags, FromTheConfigFile) {
  std::string path = ::testing::TempDir() + "/upstream-tls-config.yaml";
  FILE* f = std::fopen(path.c_str(), "w");
  std::fputs(("upstream-ca-file: " + file_ + "\nupstream: https://[::1]:9443\n").c_str(), f);
  std::fclose(f);
  auto cl = parse({"--config", path, "--upstream-server-name", "localhost"});
  ASSERT_TRUE(cl.ok()) << cl.status();
  EXPECT_EQ(cl->options.upstream.host, "::1");
  EXPECT_EQ(cl->options.upstream.tls.ca_file, file_);
  EXPECT_EQ(cl->options.upstream.tls.server_name, "localhost");
}

TEST_F(UpstreamTlsFlags, ErrorsNameTheFlag) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--upstream", "http://h:1", "--upstream-ca-file", file_},
       "--upstream-ca-file: needs an https:// --upstream (it is \"http://h:1\")"},
      {{"--upstream-client-cert-file", file_, "--upstream-client-key-file", file_, "--upstream",
        "unix:///run/b.sock"},
       "--upstream-client-cert-file: needs an https:// --upstream (it is \"unix:///run/b.sock\")"},
      {{"--upstream", "http://h:1", "--upstream-server-name", "h"},
       "--upstream-server-name: needs an https:// --upstream (it is \"http://h:1\")"},
      {{"--upstream", "https://h:1", "--upstream-client-cert-file", file_},
       "--upstream-client-key-file: required when --upstream-client-cert-file is set"},
      {{"--upstream", "https://h:1", "--upstream-client-key-file", file_},
       "--upstream-client-cert-file: required when --upstream-client-key-file is set"},
      {{"--upstream", "https://h:1", "--upstream-ca-file", "/nonexistent/ca.crt"},
       "--upstream-ca-file: cannot read \"/nonexistent/ca.crt\": No such file or directory"},
      {{"--upstream", "https://h:1", "--upstream-server-name="},
       "--upstream-server-name: must not be empty"},
      {{"--upstream", "https://h:1", "--upstream-server-name", "backend:8443"},
       "--upstream-server-name: \"backend:8443\" is not a host name or an IP address"},
      {{"--upstream", "https://h:1", "--upstream-server-name", "https://backend"},
       "--upstream-server-name: \"https://backend\" is not a host name or an IP address"},
  };
  for (const auto& [args, error] : cases) {
    auto cl = parse(args);
    ASSERT_FALSE(cl.ok()) << error;
    EXPECT_EQ(cl.status().message(), error);
  }
}

TEST(Flags, HelpListsTheUpstreamTlsFlags) {
  std::string help = helpText();
  for (const char* flag : {"--upstream-ca-file path", "--upstream-client-cert-file path",
                           "--upstream-client-key-file path", "--upstream-server-name string"}) {
    EXPECT_NE(help.find(flag), std::string::npos) << flag;
  }
}

TEST(Flags, CipherSuitesByGoNames) {
  auto cl = parse({"--upstream", "http://127.0.0.1:1", "--tls-cipher-suites",
                   "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_AES_128_GCM_SHA256,"
                   "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"});
  ASSERT_TRUE(cl.ok()) << cl.status();
  EXPECT_EQ(cl->options.tls_cipher_list,
            "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305");
  auto bad = parse({"--upstream", "http://127.0.0.1:1", "--tls-cipher-suites",
                    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA2"});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(),
            "--tls-cipher-suites: Cipher suite TLS_ECDHE_ECDSA_WITH_RC4_128_SHA2 not supported or "
            "doesn't exist");
}

}  // namespace
}  // namespace aaproxy

namespace aaproxy {
namespace {

std::string writeConfig(const std::string& name, const std::string& text) {
  std::string path = ::testing::TempDir() + "/" + name;
  FILE* f = fopen(path.c_str(), "w");
  fputs(text.c_str(), f);
  fclose(f);
  return path;
}

TEST(Flags, RoutesFromTheConfigFile) {
  std::string path = writeConfig("routes.yaml", R"(
upstream: http://127.0.0.1:8080
routes:
- path: /metrics
  upstream: http://127.0.0.1:9100
  authorization: nonResource
- path: /apis
- path: /admin
  upstream: http://127.0.0.1:9100
  authorization: deny
)");
  auto cl = parseCommandLine({"--config", path});
  ASSERT_TRUE(cl.ok()) << cl.status();
  const ProxyOptions& o = cl->options;
  ASSERT_EQ(o.upstreams.size(), 2u);
  EXPECT_EQ(o.upstreams[0].port, 9100);
  EXPECT_EQ(o.upstreams[1].port, 8080);
  ASSERT_NE(o.routes, nullptr);
  EXPECT_FALSE(o.routes->isDefault());
  EXPECT_EQ(o.routes->match("/apis/x")->upstream_index, 1u);
  EXPECT_EQ(o.routes->match("/admin")->authorization, RouteAuthorization::kDeny);
  EXPECT_EQ(o.routes->match("/other"), nullptr);
}

TEST(Flags, WithoutRoutesOneDefaultRoute) {
  auto cl = parseCommandLine({"--upstream", "unix:///run/b.sock"});
  ASSERT_TRUE(cl.ok()) << cl.status();
  ASSERT_EQ(cl->options.upstreams.size(), 1u);
  EXPECT_EQ(cl->options.upstreams[0].path, "/run/b.sock");
  EXPECT_TRUE(cl->options.routes->isDefault());
}

TEST(Flags, RouteErrorsNameTheFileAndField) {
  std::string path = writeConfig("bad-routes.yaml", "routes:\n- path: /a\n  authorization: x\n");
  auto cl = parseCommandLine({"--config", path, "--upstream", "http://127.0.0.1:1"});
  ASSERT_FALSE(cl.ok());
  EXPECT_EQ(cl.status().message(),
            absl::StrCat("--config: \"", path,
                         "\": routes[0].authorization: \"x\" is not one of kubernetes, "
                         "resourceAttributes, nonResource, public, deny"));
  path = writeConfig("no-upstream.yaml", "routes:\n- path: /a\n");
  cl = parseCommandLine({"--config", path});
  ASSERT_FALSE(cl.ok());
  EXPECT_EQ(cl.status().message(),
            absl::StrCat("--config: \"", path,
                         "\": routes[0].upstream: required when --upstream is not set (path "
                         "\"/a\")"));
  cl = parseCommandLine({});
  ASSERT_FALSE(cl.ok());
  EXPECT_EQ(cl.status().message(), "--upstream: required (http://host:port, https://host:port or unix:///path.sock)");
}

TEST(Flags, KubeRbacProxyPathsAndAuthHeaderFields) {
  auto cl = parseCommandLine({"--upstream", "http://127.0.0.1:1", "--allow-paths",
                              "/metrics, /api/v1/*", "--auth-header-fields-enabled",
                              "--auth-header-groups-field-separator", ","});
  ASSERT_TRUE(cl.ok()) << cl.status();
  EXPECT_EQ(cl->options.allow_paths, (std::vector<std::string>{"/metrics", "/api/v1/*"}));
  EXPECT_TRUE(cl->options.auth_header_fields.enabled);
  EXPECT_EQ(cl->options.auth_header_fields.user_field, "x-remote-user");
  EXPECT_EQ(cl->options.auth_header_fields.groups_field, "x-remote-groups");
  EXPECT_EQ(cl->options.auth_header_fields.groups_separator, ",");

  struct Case {
    std::vector<std::string> args;
    std::string error;
  };
  const Case cases[] = {
      {{"--allow-paths", "/a[", "--upstream", "http://127.0.0.1:1"},
       "--allow-paths: \"/a[\" is not a path pattern (Go path.Match: syntax error in pattern)"},
      {{"--ignore-paths", "/a", "--allow-paths", "/b", "--upstream", "http://127.0.0.1:1"},
       "--allow-paths: cannot be combined with --ignore-paths (kube-rbac-proxy refuses it too)"},
      {{"--auth-header-user-field-name", "x user", "--upstream", "http://127.0.0.1:1"},
       "--auth-header-user-field-name: \"x user\" is not an HTTP header name"},
      {{"--auth-header-groups-field-separator", "", "--upstream", "http://127.0.0.1:1"},
       "--auth-header-groups-field-separator: \"\" must be a non-empty separator without line "
       "breaks"},
  };
  for (const Case& c : cases) {
    auto bad = parseCommandLine(c.args);
    ASSERT_FALSE(bad.ok()) << c.error;
    EXPECT_EQ(bad.status().message(), c.error);
  }
}

}  // namespace
}  // namespace aaproxy
