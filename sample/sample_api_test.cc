#include "sample/sample_api.h"

#include "gtest/gtest.h"

namespace aaproxy::sample {
namespace {

constexpr char kNotFound[] =
    "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":"
    "\"the server could not find the requested resource\",\"reason\":\"NotFound\",\"details\":{},"
    "\"code\":404}\n";

TEST(SampleApiTest, DiscoveryIsByteExact) {
  Route route = routeRequest("GET", "/apis/sample-api-server/v1alpha1");
  EXPECT_EQ(route.kind, RouteKind::kFixed);
  EXPECT_EQ(route.status, 200);
  EXPECT_EQ(
      route.body,
      "{\"apiVersion\":\"v1\",\"kind\":\"APIResourceList\",\"groupVersion\":\"sample-api-server/"
      "v1alpha1\",\"resources\":[{\"group\":\"sample-api-server\",\"kind\":\"Sample\",\"name\":"
      "\"samples\",\"namespaced\":true,\"singularName\":\"sample\",\"verbs\":[\"get\",\"list\"]}]"
      "}\n");
}

TEST(SampleApiTest, ListAndGetAreByteExact) {
  EXPECT_EQ(routeRequest("GET", "/apis/sample-api-server/v1alpha1/namespaces/team-a/samples").body,
            "{\"apiVersion\":\"sample-api-server/v1alpha1\",\"kind\":\"SampleList\",\"metadata\":{"
            "\"resourceVersion\":\"1\"},\"items\":[{\"apiVersion\":\"sample-api-server/v1alpha1\","
            "\"kind\":\"Sample\",\"metadata\":{\"name\":\"sample1\"},\"spec\":{\"name\":\"team-a\"}"
            "}]}\n");
  EXPECT_EQ(
      routeRequest("GET", "/apis/sample-api-server/v1alpha1/namespaces/team-a/samples/x1").body,
      "{\"apiVersion\":\"sample-api-server/v1alpha1\",\"kind\":\"Sample\",\"metadata\":{\"name\":"
      "\"x1\"},\"spec\":{\"name\":\"team-a.x1\"}}\n");
}

TEST(SampleApiTest, GroupDiscovery) {
  EXPECT_EQ(
      routeRequest("GET", "/apis").body,
      "{\"kind\":\"APIGroupList\",\"apiVersion\":\"v1\",\"groups\":[{\"name\":\"sample-api-"
      "server\","
      "\"versions\":[{\"groupVersion\":\"sample-api-server/v1alpha1\",\"version\":\"v1alpha1\"}],"
      "\"preferredVersion\":{\"groupVersion\":\"sample-api-server/v1alpha1\",\"version\":"
      "\"v1alpha1\"}}]}\n");
  EXPECT_EQ(
      routeRequest("GET", "/apis/sample-api-server").body,
      "{\"kind\":\"APIGroup\",\"apiVersion\":\"v1\",\"name\":\"sample-api-server\",\"versions\":[{"
      "\"groupVersion\":\"sample-api-server/v1alpha1\",\"version\":\"v1alpha1\"}],"
      "\"preferredVersion\":{\"groupVersion\":\"sample-api-server/v1alpha1\",\"version\":"
      "\"v1alpha1\"}}\n");
}

TEST(SampleApiTest, UnknownPathsAreNotFoundStatus) {
  for (const char* target :
       {"/", "/api", "/apis/other", "/apis/sample-api-server/v1alpha1/foos",
        "/apis/sample-api-server/v1alpha1/namespaces/ns/samples/a/b",
        "/apis/sample-api-server/v1alpha1/namespaces//samples", "/debug/nope"}) {
    Route route = routeRequest("GET", target);
    EXPECT_EQ(route.status, 404) << target;
    EXPECT_EQ(route.body, kNotFound) << target;
  }
}

TEST(SampleApiTest, WatchQueryFollowsKubernetesRule) {
  struct Case {
    const char* target;
    bool watch;
  } cases[] = {
      {"/apis/sample-api-server/v1alpha1/namespaces/ns/samples?watch=true", true},
      {"/apis/sample-api-server/v1alpha1/namespaces/ns/samples?watch=1", true},
      {"/apis/sample-api-server/v1alpha1/namespaces/ns/samples?watch", true},
      {"/apis/sample-api-server/v1alpha1/namespaces/ns/samples?watch=false", false},
      {"/apis/sample-api-server/v1alpha1/namespaces/ns/samples?watch=0", false},
      {"/apis/sample-api-server/v1alpha1/watch/namespaces/ns/samples", true},
  };
  for (const auto& c : cases) {
    Route route = routeRequest("GET", c.target);
    EXPECT_EQ(route.kind == RouteKind::kWatch, c.watch) << c.target;
    if (c.watch) {
      EXPECT_EQ(route.ns, "ns");
    }
  }
  Route timed = routeRequest(
      "GET", "/apis/sample-api-server/v1alpha1/namespaces/ns/samples?watch=true&timeoutSeconds=3");
  EXPECT_EQ(timed.timeoutSeconds, 3);
}

TEST(SampleApiTest, WatchEvent) {
  EXPECT_EQ(
      watchEventJson("ADDED", "ns", 1),
      "{\"type\":\"ADDED\",\"object\":{\"apiVersion\":\"sample-api-server/v1alpha1\",\"kind\":"
      "\"Sample\",\"metadata\":{\"name\":\"sample1\",\"resourceVersion\":\"1\"},\"spec\":{"
      "\"name\":\"ns\"}}}\n");
}

TEST(SampleApiTest, WritesAreNotAllowedOnTheApi) {
  Route route = routeRequest("POST", "/apis/sample-api-server/v1alpha1/namespaces/ns/samples");
  EXPECT_EQ(route.status, 405);
  EXPECT_NE(route.body.find("\"reason\":\"MethodNotAllowed\""), std::string::npos);
}

TEST(SampleApiTest, DebugEndpoints) {
  EXPECT_EQ(routeRequest("POST", "/debug/body").kind, RouteKind::kDebugBody);
  EXPECT_EQ(routeRequest("GET", "/debug/headers?x=1").kind, RouteKind::kDebugHeaders);
  Route bytes = routeRequest("GET", "/debug/bytes?n=1073741824");
  EXPECT_EQ(bytes.kind, RouteKind::kDebugBytes);
  EXPECT_EQ(bytes.bytes, 1073741824u);
  EXPECT_EQ(routeRequest("GET", "/debug/bytes?n=-1").status, 400);
  EXPECT_EQ(routeRequest("GET", "/debug/slow?ms=250").delayMs, 250);
  EXPECT_EQ(routeRequest("GET", "/healthz").body, "ok");
}

TEST(SampleApiTest, DebugTrailersTakesItsTrailersFromTheQuery) {
  Route route = routeRequest("GET", "/debug/trailers?X-Checksum=abc&Grpc-Status=0&X-Empty");
  EXPECT_EQ(route.kind, RouteKind::kDebugTrailers);
  EXPECT_EQ(route.body, "trailers follow\n");
  EXPECT_EQ(route.trailers, (std::vector<std::pair<std::string, std::string>>{
                                {"X-Checksum", "abc"}, {"Grpc-Status", "0"}, {"X-Empty", ""}}));
  EXPECT_TRUE(routeRequest("POST", "/debug/trailers").trailers.empty());
  EXPECT_EQ(routeRequest("GET", "/debug/trailers?=x").status, 400);
  EXPECT_EQ(routeRequest("GET", "/debug/trailers?a(b=x").status, 400);
}

}  // namespace
}  // namespace aaproxy::sample
