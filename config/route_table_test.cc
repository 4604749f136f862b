#include "config/route_table.h"

#include <yaml-cpp/yaml.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace aaproxy {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<std::vector<RouteConfig>> parse(const std::string& yaml) {
  return parseRoutes(YAML::Load(yaml));
}

TEST(RouteTableTest, ParsesEveryAuthorizationMode) {
  absl::StatusOr<std::vector<RouteConfig>> routes = parse(R"(
- path: /apis/
- path: /metrics
  upstream: http://127.0.0.1:9100
  authorization: resourceAttributes
  resourceAttributes:
    namespace: "{{ .Value }}"
    apiVersion: v1
    resource: services
    subresource: metrics
  rewrites:
    byQueryParameter: {name: namespace}
    byHttpHeader: {name: X-Namespace}
- path: /orders
  upstream: unix:///run/orders.sock
  authorization: nonResource
- path: /static
  authorization: public
- path: /admin/
  authorization: deny
)");
  ASSERT_TRUE(routes.ok()) << routes.status();
  ASSERT_EQ(routes->size(), 5u);
  EXPECT_EQ((*routes)[0].path, "/apis");
  EXPECT_EQ((*routes)[0].authorization, RouteAuthorization::kKubernetes);
  EXPECT_FALSE((*routes)[0].upstream.has_value());
  const RouteConfig& metrics = (*routes)[1];
  EXPECT_EQ(metrics.authorization, RouteAuthorization::kResourceAttributes);
  EXPECT_EQ(metrics.upstream->port, 9100);
  EXPECT_EQ(metrics.resource_attributes.namespace_name.fill("ns1"), "ns1");
  EXPECT_EQ(metrics.resource_attributes.resource.fill("ns1"), "services");
  EXPECT_EQ(metrics.rewrites.query_parameter, "namespace");
  EXPECT_EQ(metrics.rewrites.http_header, "X-Namespace");
  EXPECT_EQ(metrics.rewrites.path_segment, -1);
  EXPECT_EQ((*routes)[2].upstream->kind, UpstreamAddress::Kind::kUnix);
  EXPECT_EQ((*routes)[2].authorization, RouteAuthorization::kNonResource);
  EXPECT_EQ((*routes)[3].authorization, RouteAuthorization::kPublic);
  EXPECT_EQ((*routes)[4].path, "/admin");
  EXPECT_EQ((*routes)[4].authorization, RouteAuthorization::kDeny);
}

TEST(RouteTableTest, ResourceAttributesImplyTheirMode) {
  absl::StatusOr<std::vector<RouteConfig>> routes = parse(R"(
- path: /tenants
  resourceAttributes: {resource: tenants, name: "t-{{.Value}}-x"}
  rewrites: {byPathSegment: {index: 1}}
)");
  ASSERT_TRUE(routes.ok()) << routes.status();
  EXPECT_EQ((*routes)[0].authorization, RouteAuthorization::kResourceAttributes);
  EXPECT_EQ((*routes)[0].rewrites.path_segment, 1);
  EXPECT_EQ((*routes)[0].resource_attributes.name.fill("acme"), "t-acme-x");
}

TEST(RouteTableTest, ErrorsNameTheField) {
  struct Case {
    std::string yaml;
    std::string error;
  };
  const Case cases[] = {
      {"{path: /}", "routes: must be a list of routes"},
      {"- upstream: http://127.0.0.1:1", "routes[0].path: required"},
      {"- path: metrics", "routes[0].path: \"metrics\" must start with /"},
      {"- path: /a/../b", "routes[0].path: \"/a/../b\" must be a plain path prefix"},
      {"- path: /a*", "routes[0].path: \"/a*\" must be a plain path prefix"},
      {"- path: /a\n- path: /a/", "routes[1].path: \"/a\" is also routes[0].path"},
      {"- path: /a\n  upstream: ftp://x:1", "routes[0].upstream: "},
      {"- path: /a\n  authorization: rbac",
       "routes[0].authorization: \"rbac\" is not one of kubernetes, resourceAttributes, "
       "nonResource, public, deny"},
      {"- path: /a\n  upstrem: http://127.0.0.1:1", "routes[0]: unknown field \"upstrem\""},
      {"- path: /a\n  authorization: public\n  resourceAttributes: {resource: x}",
       "routes[0].resourceAttributes: only for authorization resourceAttributes, not public"},
      {"- path: /a\n  authorization: resourceAttributes",
       "routes[0].resourceAttributes: required for authorization resourceAttributes"},
      {"- path: /a\n  resourceAttributes: {namespace: x}",
       "routes[0].resourceAttributes.resource: required"},
      {"- path: /a\n  resourceAttributes: {resource: x, verb: get}",
       "routes[0].resourceAttributes: unknown field \"verb\""},
      {"- path: /a\n  resourceAttributes: {resource: \"{{ .Values }}\"}\n  rewrites: "
       "{byQueryParameter: {name: n}}",
       "routes[0].resourceAttributes.resource: \"{{ .Values }}\": the only template is "
       "{{ .Value }}"},
      {"- path: /a\n  resourceAttributes: {resource: \"{{ .Value\"}",
       "routes[0].resourceAttributes.resource: \"{{ .Value\": unclosed {{"},
      {"- path: /a\n  resourceAttributes: {resource: \"{{ .Value }}\"}",
       "routes[0].rewrites: required: resourceAttributes use {{ .Value }}"},
      {"- path: /a\n  resourceAttributes: {resource: x}\n  rewrites: {byHttpHeader: {name: h}}",
       "routes[0].rewrites: no resourceAttributes field uses {{ .Value }}"},
      {"- path: /a\n  resourceAttributes: {resource: \"{{.Value}}\"}\n  rewrites: {}",
       "routes[0].rewrites: needs byQueryParameter, byHttpHeader or byPathSegment"},
      {"- path: /a\n  resourceAttributes: {resource: \"{{.Value}}\"}\n  rewrites: "
       "{byQueryParameter: {name: \"\"}}",
       "routes[0].rewrites.byQueryParameter.name: must not be empty"},
      {"- path: /a\n  resourceAttributes: {resource: \"{{.Value}}\"}\n  rewrites: "
       "{byPathSegment: {index: -1}}",
       "routes[0].rewrites.byPathSegment.index: \"-1\" is not a segment index (0, 1, ...)"},
      {"- path: /a\n  resourceAttributes: {resource: [a]}",
       "routes[0].resourceAttributes.resource: must be a plain value"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<std::vector<RouteConfig>> routes = parse(c.yaml);
    ASSERT_FALSE(routes.ok()) << c.yaml;
    EXPECT_THAT(std::string(routes.status().message()), HasSubstr(c.error)) << c.yaml;
  }
}

TEST(RouteTableTest, ResolveGivesEachDistinctUpstreamOneIndex) {
  absl::StatusOr<std::vector<RouteConfig>> routes = parse(R"(
- path: /a
  upstream: http://127.0.0.1:1
- path: /b
- path: /c
  upstream: http://127.0.0.1:1
)");
  ASSERT_TRUE(routes.ok());
  std::vector<UpstreamAddress> upstreams;
  absl::StatusOr<UpstreamAddress> fallback = parseUpstreamAddress("unix:///x.sock");
  ASSERT_TRUE(resolveRoutes(*routes, *fallback, upstreams).ok());
  ASSERT_EQ(upstreams.size(), 2u);
  EXPECT_EQ((*routes)[0].upstream_index, 0u);
  EXPECT_EQ((*routes)[1].upstream_index, 1u);
  EXPECT_EQ(upstreams[1].kind, UpstreamAddress::Kind::kUnix);
  EXPECT_EQ((*routes)[2].upstream_index, 0u);

  absl::Status missing = resolveRoutes(*routes, std::nullopt, upstreams);
  EXPECT_EQ(missing.message(),
            "routes[1].upstream: required when --upstream is not set (path \"/b\")");

  std::vector<RouteConfig> none;
  ASSERT_TRUE(resolveRoutes(none, *fallback, upstreams).ok());
  ASSERT_EQ(none.size(), 1u);
  EXPECT_TRUE(RouteTable(none).isDefault());
  EXPECT_EQ(resolveRoutes(none = {}, std::nullopt, upstreams).message(),
            "--upstream: required (http://host:port, https://host:port or unix:///path.sock)");
}

TEST(RouteTableTest, LongestPrefixOnSegmentBoundaries) {
  absl::StatusOr<std::vector<RouteConfig>> routes = parse(R"(
- path: /
  authorization: deny
- path: /metrics
  authorization: public
- path: /metrics/private
- path: /apis/
)");
  ASSERT_TRUE(routes.ok());
  RouteTable table(*routes);
  EXPECT_FALSE(table.isDefault());
  auto path_of = [&](std::string_view p) { return table.match(p)->path; };
  EXPECT_EQ(path_of("/metrics"), "/metrics");
  EXPECT_EQ(path_of("/metrics/"), "/metrics");
  EXPECT_EQ(path_of("/metrics/x"), "/metrics");
  EXPECT_EQ(path_of("/metricsx"), "/");
  EXPECT_EQ(path_of("/metrics/private"), "/metrics/private");
  EXPECT_EQ(path_of("/metrics/private/y"), "/metrics/private");
  EXPECT_EQ(path_of("/metrics/privatey"), "/metrics");
  EXPECT_EQ(path_of("/apis"), "/apis");
  EXPECT_EQ(path_of("/"), "/");

  routes->erase(routes->begin());
  RouteTable no_root(*routes);
  EXPECT_EQ(no_root.match("/other"), nullptr);
  EXPECT_EQ(no_root.match("/"), nullptr);
}

TEST(RouteTableTest, AmbiguousSegments) {
  EXPECT_FALSE(hasAmbiguousSegments("/"));
  EXPECT_FALSE(hasAmbiguousSegments("/a/b/"));
  EXPECT_FALSE(hasAmbiguousSegments("/a/.b/c.."));
  EXPECT_TRUE(hasAmbiguousSegments("/a/../b"));
  EXPECT_TRUE(hasAmbiguousSegments("/a/./b"));
  EXPECT_TRUE(hasAmbiguousSegments("/a/.."));
  EXPECT_TRUE(hasAmbiguousSegments("/."));
  EXPECT_TRUE(hasAmbiguousSegments("//admin"));
  EXPECT_TRUE(hasAmbiguousSegments("/a//b"));
  EXPECT_FALSE(hasAmbiguousSegments("*"));
}

// Go's path/match_test.go table (the ASCII rows).
TEST(RouteTableTest, GoPathMatch) {
  struct Case {
    std::string pattern, name;
    bool match;
    bool bad = false;
  };
  const Case cases[] = {
      {"abc", "abc", true},
      {"*", "abc", true},
      {"*c", "abc", true},
      {"a*", "a", true},
      {"a*", "abc", true},
      {"a*", "ab/c", false},
      {"a*/b", "abc/b", true},
      {"a*/b", "a/c/b", false},
      {"a*b*c*d*e*/f", "axbxcxdxe/f", true},
      {"a*b*c*d*e*/f", "axbxcxdxexxx/f", true},
      {"a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false},
      {"a*b*c*d*e*/f", "axbxcxdxexxx/fff", false},
      {"a*b?c*x", "abxbbxdbxebxczzx", true},
      {"a*b?c*x", "abxbbxdbxebxczzy", false},
      {"ab[c]", "abc", true},
      {"ab[b-d]", "abc", true},
      {"ab[e-g]", "abc", false},
      {"ab[^c]", "abc", false},
      {"ab[^b-d]", "abc", false},
      {"ab[^e-g]", "abc", true},
      {"a\\*b", "a*b", true},
      {"a\\*b", "ab", false},
      {"a?b", "a/b", false},
      {"a*b", "a/b", false},
      {"[\\]a]", "]", true},
      {"[\\-]", "-", true},
      {"[x\\-]", "x", true},
      {"[x\\-]", "-", true},
      {"[x\\-]", "z", false},
      {"[\\-x]", "x", true},
      {"[\\-x]", "-", true},
      {"[\\-x]", "a", false},
      {"[]a]", "]", false, true},
      {"[-]", "-", false, true},
      {"[x-]", "x", false, true},
      {"[x-]", "-", false, true},
      {"[x-]", "z", false, true},
      {"[-x]", "x", false, true},
      {"[-x]", "-", false, true},
      {"[-x]", "a", false, true},
      {"\\", "a", false, true},
      {"[a-b-c]", "a", false, true},
      {"[", "a", false, true},
      {"[^", "a", false, true},
      {"[^bc", "a", false, true},
      {"a[", "a", false, true},
      {"a[", "ab", false, true},
      {"a[", "x", false, true},
      {"a/b[", "x", false, true},
      {"*x", "xxx", true},
      // kube-rbac-proxy's usual patterns.
      {"/metrics", "/metrics", true},
      {"/metrics", "/metrics/", false},
      {"/api/v1/*", "/api/v1/pods", true},
      {"/api/v1/*", "/api/v1/pods/x", false},
      {"/healthz*", "/healthz/ready", false},
  };
  for (const Case& c : cases) {
    absl::StatusOr<bool> got = goPathMatch(c.pattern, c.name);
    if (c.bad) {
      EXPECT_FALSE(got.ok()) << c.pattern << " " << c.name;
      continue;
    }
    ASSERT_TRUE(got.ok()) << c.pattern << " " << c.name << ": " << got.status();
    EXPECT_EQ(*got, c.match) << c.pattern << " " << c.name;
  }
}

}  // namespace
}  // namespace aaproxy

namespace aaproxy {
namespace {

TEST(RouteTableTest, PerRouteUpstreamTls) {
  absl::StatusOr<std::vector<RouteConfig>> routes = parseRoutes(YAML::Load(R"(
- path: /secure
  upstream: https://backend.internal:8443
  upstreamTLS: {caFile: /etc/ca.crt, clientCertFile: /etc/c.crt, clientKeyFile: /etc/c.key,
                serverName: api.internal}
- path: /plain-https
  upstream: https://127.0.0.1:9443
)"));
  ASSERT_TRUE(routes.ok()) << routes.status();
  const UpstreamAddress& secure = *(*routes)[0].upstream;
  EXPECT_EQ(secure.kind, UpstreamAddress::Kind::kHttps);
  EXPECT_EQ(secure.tls.ca_file, "/etc/ca.crt");
  EXPECT_EQ(secure.tls.client_cert_file, "/etc/c.crt");
  EXPECT_EQ(secure.tls.client_key_file, "/etc/c.key");
  EXPECT_EQ(secure.tls.server_name, "api.internal");
  EXPECT_EQ((*routes)[1].upstream->tls, UpstreamTlsOptions());

  struct Case {
    std::string yaml, error;
  };
  const Case cases[] = {
      {"- path: /a\n  upstream: http://127.0.0.1:1\n  upstreamTLS: {caFile: x}",
       "routes[0].upstreamTLS: needs an https:// upstream on the route"},
      {"- path: /a\n  upstreamTLS: {caFile: x}",
       "routes[0].upstreamTLS: needs an https:// upstream on the route"},
      {"- path: /a\n  upstream: https://h:1\n  upstreamTLS: {clientCertFile: x}",
       "routes[0].upstreamTLS: clientCertFile and clientKeyFile go together"},
      {"- path: /a\n  upstream: https://h:1\n  upstreamTLS: {cafile: x}",
       "routes[0].upstreamTLS: unknown field \"cafile\""},
  };
  for (const Case& c : cases) {
    absl::StatusOr<std::vector<RouteConfig>> bad = parseRoutes(YAML::Load(c.yaml));
    ASSERT_FALSE(bad.ok()) << c.yaml;
    EXPECT_THAT(std::string(bad.status().message()), ::testing::HasSubstr(c.error)) << c.yaml;
  }
}

}  // namespace
}  // namespace aaproxy
