#include "authz/request_info.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace aaproxy {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

struct ResourceCase {
  std::string method;
  std::string url;
  std::string verb;
  std::string apiPrefix;
  std::string group;
  std::string version;
  std::string ns;
  std::string resource;
  std::string subresource;
  std::string name;
  std::vector<std::string> parts;
};

void PrintTo(const ResourceCase& c, std::ostream* os) { *os << c.method << " " << c.url; }

class ResourceRequestTest : public ::testing::TestWithParam<ResourceCase> {};

TEST_P(ResourceRequestTest, MatchesUpstream) {
  const ResourceCase& c = GetParam();
  auto info = resolveRequestInfo(c.method, c.url);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_TRUE(info->isResourceRequest);
  EXPECT_EQ(info->verb, c.verb);
  EXPECT_EQ(info->apiPrefix, c.apiPrefix);
  EXPECT_EQ(info->apiGroup, c.group);
  EXPECT_EQ(info->apiVersion, c.version);
  EXPECT_EQ(info->namespaceName, c.ns);
  EXPECT_EQ(info->resource, c.resource);
  EXPECT_EQ(info->subresource, c.subresource);
  EXPECT_EQ(info->name, c.name);
  EXPECT_EQ(info->parts, c.parts);
}

// Upstream's TestGetAPIRequestInfo success table (requestinfo_test.go). Upstream lists apiPrefix
// "api" for the /apis/extensions rows but never asserts it; the resolver really yields "apis".
INSTANTIATE_TEST_SUITE_P(
    UpstreamTable, ResourceRequestTest,
    ::testing::Values(
        ResourceCase{"GET", "/api/v1/namespaces", "list", "api", "", "v1", "", "namespaces", "", "", {"namespaces"}},
        ResourceCase{"GET", "/api/v1/namespaces/other", "get", "api", "", "v1", "other", "namespaces", "", "other", {"namespaces", "other"}},
        ResourceCase{"GET", "/api/v1/namespaces/other/pods", "list", "api", "", "v1", "other", "pods", "", "", {"pods"}},
        ResourceCase{"GET", "/api/v1/namespaces/other/pods/foo", "get", "api", "", "v1", "other", "pods", "", "foo", {"pods", "foo"}},
        ResourceCase{"HEAD", "/api/v1/namespaces/other/pods/foo", "get", "api", "", "v1", "other", "pods", "", "foo", {"pods", "foo"}},
        ResourceCase{"GET", "/api/v1/pods", "list", "api", "", "v1", "", "pods", "", "", {"pods"}},
        ResourceCase{"HEAD", "/api/v1/pods", "list", "api", "", "v1", "", "pods", "", "", {"pods"}},
        ResourceCase{"GET", "/api/v1/proxy/namespaces/other/pods/foo", "proxy", "api", "", "v1", "other", "pods", "", "foo", {"pods", "foo"}},
        ResourceCase{"GET", "/api/v1/proxy/namespaces/other/pods/foo/subpath/not/a/subresource", "proxy", "api", "", "v1", "other", "pods", "", "foo", {"pods", "foo", "subpath", "not", "a", "subresource"}},
        ResourceCase{"GET", "/api/v1/watch/pods", "watch", "api", "", "v1", "", "pods", "", "", {"pods"}},
        ResourceCase{"GET", "/api/v1/pods?watch=true", "watch", "api", "", "v1", "", "pods", "", "", {"pods"}},
        ResourceCase{"GET", "/api/v1/pods?watch=false", "list", "api", "", "v1", "", "pods", "", "", {"pods"}},
        ResourceCase{"GET", "/api/v1/watch/namespaces/other/pods", "watch", "api", "", "v1", "other", "pods", "", "", {"pods"}},
        ResourceCase{"GET", "/api/v1/namespaces/other/pods?watch=1", "watch", "api", "", "v1", "other", "pods", "", "", {"pods"}},
        ResourceCase{"GET", "/api/v1/namespaces/other/pods?watch=0", "list", "api", "", "v1", "other", "pods", "", "", {"pods"}},
        ResourceCase{"GET", "/api/v1/namespaces/other/pods/foo/status", "get", "api", "", "v1", "other", "pods", "status", "foo", {"pods", "foo", "status"}},
        ResourceCase{"GET", "/api/v1/namespaces/other/pods/foo/proxy/subpath", "get", "api", "", "v1", "other", "pods", "proxy", "foo", {"pods", "foo", "proxy", "subpath"}},
        ResourceCase{"PUT", "/api/v1/namespaces/other/finalize", "update", "api", "", "v1", "other", "namespaces", "finalize", "other", {"namespaces", "other", "finalize"}},
        ResourceCase{"PUT", "/api/v1/namespaces/other/status", "update", "api", "", "v1", "other", "namespaces", "status", "other", {"namespaces", "other", "status"}},
        ResourceCase{"PATCH", "/api/v1/namespaces/other/pods/foo", "patch", "api", "", "v1", "other", "pods", "", "foo", {"pods", "foo"}},
        ResourceCase{"DELETE", "/api/v1/namespaces/other/pods/foo", "delete", "api", "", "v1", "other", "pods", "", "foo", {"pods", "foo"}},
        ResourceCase{"POST", "/api/v1/namespaces/other/pods", "create", "api", "", "v1", "other", "pods", "", "", {"pods"}},
        ResourceCase{"DELETE", "/api/v1/nodes", "deletecollection", "api", "", "v1", "", "nodes", "", "", {"nodes"}},
        ResourceCase{"DELETE", "/api/v1/namespaces", "deletecollection", "api", "", "v1", "", "namespaces", "", "", {"namespaces"}},
        ResourceCase{"DELETE", "/api/v1/namespaces/other/pods", "deletecollection", "api", "", "v1", "other", "pods", "", "", {"pods"}},
        ResourceCase{"DELETE", "/apis/extensions/v1/namespaces/other/pods", "deletecollection", "apis", "extensions", "v1", "other", "pods", "", "", {"pods"}},
        ResourceCase{"POST", "/apis/extensions/v1/namespaces/other/pods", "create", "apis", "extensions", "v1", "other", "pods", "", "", {"pods"}},
        ResourceCase{"POST", "/apis/extensions/v1beta3/namespaces/other/pods", "create", "apis", "extensions", "v1beta3", "other", "pods", "", "", {"pods"}}));

// The sample API and paths a hostile client may send. Each expectation is what upstream's
// resolver (which splits the *decoded* path and never cleans it) answers.
INSTANTIATE_TEST_SUITE_P(
    SampleAndHostile, ResourceRequestTest,
    ::testing::Values(
        ResourceCase{"GET", "/apis/sample-api-server/v1alpha1/namespaces/default/samples", "list", "apis", "sample-api-server", "v1alpha1", "default", "samples", "", "", {"samples"}},
        ResourceCase{"GET", "/apis/sample-api-server/v1alpha1/namespaces/default/samples/sample1", "get", "apis", "sample-api-server", "v1alpha1", "default", "samples", "", "sample1", {"samples", "sample1"}},
        ResourceCase{"GET", "/apis/sample-api-server/v1alpha1/samples", "list", "apis", "sample-api-server", "v1alpha1", "", "samples", "", "", {"samples"}},
        ResourceCase{"GET", "/apis/sample-api-server/v1alpha1/namespaces/default/samples?watch=1&resourceVersion=5", "watch", "apis", "sample-api-server", "v1alpha1", "default", "samples", "", "", {"samples"}},
        // ".." is authorized literally as a name.
        ResourceCase{"GET", "/apis/sample-api-server/v1alpha1/namespaces/default/samples/..", "get", "apis", "sample-api-server", "v1alpha1", "default", "samples", "", "..", {"samples", ".."}},
        ResourceCase{"GET", "/apis/sample-api-server/v1alpha1/namespaces/default/samples/%2E%2E", "get", "apis", "sample-api-server", "v1alpha1", "default", "samples", "", "..", {"samples", ".."}},
        ResourceCase{"GET", "/apis/sample-api-server/v1alpha1/namespaces/..", "get", "apis", "sample-api-server", "v1alpha1", "..", "namespaces", "", "..", {"namespaces", ".."}},
        // %2F is a separator after decoding.
        ResourceCase{"GET", "/apis/sample-api-server/v1alpha1/namespaces/default%2Fsamples", "list", "apis", "sample-api-server", "v1alpha1", "default", "samples", "", "", {"samples"}},
        ResourceCase{"GET", "/apis/sample-api-server/v1alpha1/namespaces/default/samples/a%2Fb", "get", "apis", "sample-api-server", "v1alpha1", "default", "samples", "b", "a", {"samples", "a", "b"}},
        ResourceCase{"GET", "/apis%2Fsample-api-server%2Fv1alpha1%2Fsamples", "list", "apis", "sample-api-server", "v1alpha1", "", "samples", "", "", {"samples"}},
        // "//" gives empty segments: an empty namespace is a cluster-wide list.
        ResourceCase{"GET", "/apis/sample-api-server/v1alpha1/namespaces//samples", "list", "apis", "sample-api-server", "v1alpha1", "", "samples", "", "", {"samples"}},
        ResourceCase{"GET", "/apis/sample-api-server/v1alpha1//samples", "get", "apis", "sample-api-server", "v1alpha1", "", "", "", "samples", {"", "samples"}},
        ResourceCase{"GET", "/apis/sample-api-server/v1alpha1/namespaces/default/samples//x", "list", "apis", "sample-api-server", "v1alpha1", "default", "samples", "x", "", {"samples", "", "x"}},
        // Leading and trailing slashes are trimmed.
        ResourceCase{"GET", "///apis/sample-api-server/v1alpha1/samples///", "list", "apis", "sample-api-server", "v1alpha1", "", "samples", "", "", {"samples"}},
        // Deeper segments are kept in parts but not interpreted.
        ResourceCase{"GET", "/apis/sample-api-server/v1alpha1/namespaces/default/samples/x/status/extra", "get", "apis", "sample-api-server", "v1alpha1", "default", "samples", "status", "x", {"samples", "x", "status", "extra"}},
        // Methods outside the table give an empty verb; methods are case-sensitive.
        ResourceCase{"OPTIONS", "/apis/sample-api-server/v1alpha1/samples", "", "apis", "sample-api-server", "v1alpha1", "", "samples", "", "", {"samples"}},
        ResourceCase{"get", "/apis/sample-api-server/v1alpha1/samples", "", "apis", "sample-api-server", "v1alpha1", "", "samples", "", "", {"samples"}},
        // Absolute-form request targets.
        ResourceCase{"GET", "https://example.com:443/apis/sample-api-server/v1alpha1/samples", "list", "apis", "sample-api-server", "v1alpha1", "", "samples", "", "", {"samples"}}));

struct NonResourceCase {
  std::string method;
  std::string url;
  std::string path;
  std::string verb;
  std::string apiPrefix;
};

void PrintTo(const NonResourceCase& c, std::ostream* os) { *os << c.method << " " << c.url; }

class NonResourceRequestTest : public ::testing::TestWithParam<NonResourceCase> {};

TEST_P(NonResourceRequestTest, MatchesUpstream) {
  const NonResourceCase& c = GetParam();
  auto info = resolveRequestInfo(c.method, c.url);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_FALSE(info->isResourceRequest);
  EXPECT_EQ(info->path, c.path);
  EXPECT_EQ(info->verb, c.verb);
  EXPECT_EQ(info->apiPrefix, c.apiPrefix);
  EXPECT_EQ(info->resource, "");
  EXPECT_THAT(info->parts, IsEmpty());
}

// The semantics doc only says these are non-resource requests; upstream also leaves
// apiPrefix set to "apis" when the prefix matched but group/version/resource are missing.
INSTANTIATE_TEST_SUITE_P(
    UpstreamTable, NonResourceRequestTest,
    ::testing::Values(
        // errorCases and TestGetNonAPIRequestInfo's non-resource rows.
        NonResourceCase{"GET", "/", "/", "get", ""},
        NonResourceCase{"GET", "/api/version/", "/api/version/", "get", ""},
        NonResourceCase{"GET", "/apis/group/version/", "/apis/group/version/", "get", "apis"},
        NonResourceCase{"GET", "/badprefix/version/resource", "/badprefix/version/resource", "get", ""},
        NonResourceCase{"GET", "/apis/version/resource", "/apis/version/resource", "get", "apis"},
        NonResourceCase{"GET", "/not-api/version/resource", "/not-api/version/resource", "get", ""},
        NonResourceCase{"GET", "/apis/extensions/v1beta1", "/apis/extensions/v1beta1", "get", "apis"},
        NonResourceCase{"GET", "/apis/extensions/v1beta1/", "/apis/extensions/v1beta1/", "get", "apis"},
        NonResourceCase{"GET", "/api/version", "/api/version", "get", ""},
        NonResourceCase{"GET", "/api", "/api", "get", ""}));

INSTANTIATE_TEST_SUITE_P(
    SampleAndHostile, NonResourceRequestTest,
    ::testing::Values(
        NonResourceCase{"GET", "/apis/sample-api-server/v1alpha1", "/apis/sample-api-server/v1alpha1", "get", "apis"},
        NonResourceCase{"GET", "/apis", "/apis", "get", ""},
        NonResourceCase{"GET", "/openapi/v2", "/openapi/v2", "get", ""},
        NonResourceCase{"GET", "/openapi/v3/apis/sample-api-server/v1alpha1", "/openapi/v3/apis/sample-api-server/v1alpha1", "get", ""},
        NonResourceCase{"GET", "/healthz", "/healthz", "get", ""},
        NonResourceCase{"HEAD", "/livez?verbose", "/livez", "head", ""},
        NonResourceCase{"POST", "/readyz", "/readyz", "post", ""},
        NonResourceCase{"PURGE", "/healthz", "/healthz", "purge", ""},
        // The path is decoded, never cleaned; Go keeps '#' in a request URI.
        NonResourceCase{"GET", "/healthz/../apis/x", "/healthz/../apis/x", "get", ""},
        NonResourceCase{"GET", "/healthz%2F..%2Fmetrics", "/healthz/../metrics", "get", ""},
        NonResourceCase{"GET", "/healthz#frag", "/healthz#frag", "get", ""},
        NonResourceCase{"GET", "//healthz", "//healthz", "get", ""},
        NonResourceCase{"GET", "/heal%74hz", "/healthz", "get", ""},
        NonResourceCase{"GET", "*", "*", "get", ""}));

TEST(RequestInfo, EmptyTargetIsInvalid) {
  EXPECT_EQ(resolveRequestInfo("GET", "").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(RequestInfo, BadEscapesAreRejectedLikeGoServer) {
  for (const char* url : {"/apis/%zz", "/healthz%", "/healthz%4", "/a%g0"}) {
    EXPECT_EQ(resolveRequestInfo("GET", url).status().code(), absl::StatusCode::kInvalidArgument)
        << url;
  }
  EXPECT_EQ(resolveRequestInfo("GET", "/a\x01").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(resolveRequestInfo("GET", "relative/path").status().code(),
            absl::StatusCode::kInvalidArgument);
  // A bad escape in the query is not a request error: that pair is dropped.
  auto info = resolveRequestInfo("GET", "/api/v1/pods?watch=%zz");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->verb, "list");
}

TEST(RequestInfo, SpecialVerbWithoutResourceIsUpstreamsError) {
  auto info = resolveRequestInfo("GET", "/api/v1/watch");
  EXPECT_EQ(info.status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(info.status().message(), "unable to determine kind and namespace from url, /api/v1/watch");
  info = resolveRequestInfo("GET", "/apis/sample-api-server/v1alpha1/proxy?x=1");
  EXPECT_EQ(info.status().message(),
            "unable to determine kind and namespace from url, "
            "/apis/sample-api-server/v1alpha1/proxy?x=1");
}

TEST(RequestInfo, VeryLongPath) {
  std::string name(200000, 'a');
  auto info = resolveRequestInfo("GET", "/apis/sample-api-server/v1alpha1/namespaces/default/samples/" + name);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->name, name);
  std::string many;
  for (int i = 0; i < 20000; ++i) {
    many += "/x";
  }
  info = resolveRequestInfo("GET", "/apis/g/v/r" + many);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->parts.size(), 20001u);
  EXPECT_EQ(info->subresource, "x");
}

// ---- watch and selectors ----------------------------------------------------------------

struct SelectorCase {
  std::string name;
  std::string method;
  std::string url;
  std::string expectedName;
  std::string verb;
  std::string fieldSelector;
  std::string labelSelector;
};

void PrintTo(const SelectorCase& c, std::ostream* os) { *os << c.name; }

class SelectorParsingTest : public ::testing::TestWithParam<SelectorCase> {};

TEST_P(SelectorParsingTest, MatchesUpstream) {
  const SelectorCase& c = GetParam();
  auto info = resolveRequestInfo(c.method, c.url);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->name, c.expectedName);
  EXPECT_EQ(info->verb, c.verb);
  EXPECT_EQ(info->fieldSelector, c.fieldSelector);
  EXPECT_EQ(info->labelSelector, c.labelSelector);
}

// Upstream's TestSelectorParsing, plus decoding corner cases.
INSTANTIATE_TEST_SUITE_P(
    UpstreamTable, SelectorParsingTest,
    ::testing::Values(
        SelectorCase{"no selector", "GET", "/apis/group/version/resource", "", "list", "", ""},
        SelectorCase{"metadata.name selector", "GET", "/apis/group/version/resource?fieldSelector=metadata.name=name1", "name1", "list", "metadata.name=name1", ""},
        SelectorCase{"metadata.name selector with watch", "GET", "/apis/group/version/resource?watch=true&fieldSelector=metadata.name=name1", "name1", "watch", "metadata.name=name1", ""},
        SelectorCase{"random selector", "GET", "/apis/group/version/resource?fieldSelector=foo=bar&labelSelector=baz=qux", "", "list", "foo=bar", "baz=qux"},
        SelectorCase{"invalid selector with metadata.name", "GET", "/apis/group/version/resource?fieldSelector=metadata.name=name1,foo", "", "list", "metadata.name=name1,foo", ""},
        SelectorCase{"invalid selector with metadata.name with watch", "GET", "/apis/group/version/resource?fieldSelector=metadata.name=name1,foo&watch=true", "", "watch", "metadata.name=name1,foo", ""},
        SelectorCase{"invalid selector with metadata.name with watch false", "GET", "/apis/group/version/resource?fieldSelector=metadata.name=name1,foo&watch=false", "", "list", "metadata.name=name1,foo", ""},
        SelectorCase{"selector on deletecollection is honored", "DELETE", "/apis/group/version/resource?fieldSelector=foo=bar&labelSelector=baz=qux", "", "deletecollection", "foo=bar", "baz=qux"},
        SelectorCase{"selector on repeated param matches parsed param", "GET", "/apis/group/version/resource?fieldSelector=metadata.name=foo&fieldSelector=metadata.name=bar&labelSelector=foo=bar&labelSelector=foo=baz", "foo", "list", "metadata.name=foo", "foo=bar"},
        SelectorCase{"selector on other verb is ignored", "GET", "/apis/group/version/resource/name?fieldSelector=foo=bar&labelSelector=foo=bar", "name", "get", "", ""},
        SelectorCase{"selector on deprecated root type watch is not parsed", "GET", "/apis/group/version/watch/resource?fieldSelector=metadata.name=foo&labelSelector=foo=bar", "", "watch", "", ""},
        SelectorCase{"selector on deprecated root item watch is not parsed", "GET", "/apis/group/version/watch/resource/name?fieldSelector=metadata.name=foo&labelSelector=foo=bar", "name", "watch", "", ""}));

INSTANTIATE_TEST_SUITE_P(
    Decoding, SelectorParsingTest,
    ::testing::Values(
        // Any watch value but "0"/"false" (case-folded) means watch, the empty string included.
        SelectorCase{"watch empty", "GET", "/api/v1/pods?watch=", "", "watch", "", ""},
        SelectorCase{"watch bare", "GET", "/api/v1/pods?watch", "", "watch", "", ""},
        SelectorCase{"watch FALSE", "GET", "/api/v1/pods?watch=FALSE", "", "list", "", ""},
        SelectorCase{"watch first value wins", "GET", "/api/v1/pods?watch=0&watch=1", "", "list", "", ""},
        SelectorCase{"watch plus is space", "GET", "/api/v1/pods?watch=+", "", "watch", "", ""},
        // strings.EqualFold folds U+017F (long s) to 's'.
        SelectorCase{"watch long s", "GET", "/api/v1/pods?watch=fal%C5%BFe", "", "list", "", ""},
        // A ListOptions decode failure (bad limit) resets everything but watch, which is then
        // compared after strings.ToLower: the long s no longer matches.
        SelectorCase{"decode failure long s", "GET", "/api/v1/pods?limit=x&watch=fal%C5%BFe", "", "watch", "", ""},
        SelectorCase{"decode failure drops name", "GET", "/api/v1/pods?limit=&fieldSelector=metadata.name=a", "", "list", "metadata.name=a", ""},
        SelectorCase{"bad timeout drops name", "GET", "/api/v1/pods?timeoutSeconds=1.5&fieldSelector=metadata.name=a", "", "list", "metadata.name=a", ""},
        SelectorCase{"good limit keeps name", "GET", "/api/v1/pods?limit=-5&timeoutSeconds=%2B3&fieldSelector=metadata.name=a", "a", "list", "metadata.name=a", ""},
        SelectorCase{"bad label selector drops name", "GET", "/api/v1/pods?labelSelector=a%3D%3D%3D&fieldSelector=metadata.name=a", "", "list", "metadata.name=a", "a==="},
        SelectorCase{"semicolon pair dropped", "GET", "/api/v1/pods?watch=1;x=2", "", "list", "", ""},
        SelectorCase{"escaped selector", "GET", "/api/v1/pods?fieldSelector=metadata.name%3Dfoo", "foo", "list", "metadata.name=foo", ""},
        SelectorCase{"double equals", "GET", "/api/v1/pods?fieldSelector=metadata.name==foo", "foo", "list", "metadata.name==foo", ""},
        SelectorCase{"not equals is no name", "GET", "/api/v1/pods?fieldSelector=metadata.name!=foo", "", "list", "metadata.name!=foo", ""},
        SelectorCase{"sorted terms pick first", "GET", "/api/v1/pods?fieldSelector=metadata.name=b,metadata.name=a", "a", "list", "metadata.name=b,metadata.name=a", ""},
        SelectorCase{"invalid segment name", "GET", "/api/v1/pods?fieldSelector=metadata.name=a%2Fb", "", "list", "metadata.name=a/b", ""},
        SelectorCase{"dotdot name", "GET", "/api/v1/pods?fieldSelector=metadata.name=..", "", "list", "metadata.name=..", ""},
        SelectorCase{"percent name", "GET", "/api/v1/pods?fieldSelector=metadata.name=a%25", "", "list", "metadata.name=a%", ""},
        SelectorCase{"escaped comma name", "GET", "/api/v1/pods?fieldSelector=metadata.name=a%5C,b", "a,b", "list", "metadata.name=a\\,b", ""},
        SelectorCase{"name via selector then delete", "DELETE", "/api/v1/pods?fieldSelector=metadata.name=a", "", "deletecollection", "metadata.name=a", ""}));

// Go's urlmaxqueryparams (default 10000): one parameter more and URL.Query() is empty, so the
// watch flag and the selectors vanish from the authorization attributes.
TEST(RequestInfo, QueryParameterLimit) {
  std::string filler;
  for (int i = 0; i < 9998; ++i) {
    filler += "a=1&";
  }
  auto info = resolveRequestInfo("GET", "/api/v1/pods?" + filler + "watch=1&labelSelector=x");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->verb, "watch");  // exactly 10000 parameters
  EXPECT_EQ(info->labelSelector, "x");
  info = resolveRequestInfo("GET", "/api/v1/pods?" + filler + "a=1&watch=1&labelSelector=x");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->verb, "list");  // 10001 parameters
  EXPECT_EQ(info->labelSelector, "");
}

TEST(RequestInfo, SelectorRequirementsForSar) {
  auto info = resolveRequestInfo(
      "GET",
      "/api/v1/pods?fieldSelector=spec.nodeName=n1,metadata.namespace!=kube-system"
      "&labelSelector=app+in+(b,a,a),!legacy,tier,env!=prod,x>5,version=v1");
  ASSERT_TRUE(info.ok());
  // Field terms sorted by text; = and != become In / NotIn.
  EXPECT_THAT(info->fieldSelectorRequirements,
              ElementsAre(SelectorRequirement{"metadata.namespace", "NotIn", {"kube-system"}},
                          SelectorRequirement{"spec.nodeName", "In", {"n1"}}));
  // Label requirements sorted by key; gt/lt dropped; set values sorted and de-duplicated.
  EXPECT_THAT(info->labelSelectorRequirements,
              ElementsAre(SelectorRequirement{"app", "In", {"a", "b"}},
                          SelectorRequirement{"env", "NotIn", {"prod"}},
                          SelectorRequirement{"legacy", "DoesNotExist", {}},
                          SelectorRequirement{"tier", "Exists", {}},
                          SelectorRequirement{"version", "In", {"v1"}}));
}

TEST(RequestInfo, UnparsableSelectorGivesNoRequirements) {
  auto info = resolveRequestInfo("GET", "/api/v1/pods?fieldSelector=foo&labelSelector=a+in+b");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->fieldSelector, "foo");
  EXPECT_EQ(info->labelSelector, "a in b");
  EXPECT_THAT(info->fieldSelectorRequirements, IsEmpty());
  EXPECT_THAT(info->labelSelectorRequirements, IsEmpty());
}

TEST(RequestInfo, OnlyUnsupportedOperatorsGivesNoRequirements) {
  auto info = resolveRequestInfo("GET", "/api/v1/pods?labelSelector=x<3");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->labelSelector, "x<3");
  EXPECT_THAT(info->labelSelectorRequirements, IsEmpty());
}

TEST(GoParseDuration, ErrorsMatchTimePackage) {
  for (const char* ok : {"0", "-0", "+0", "1s", "1.5h", "-3m", ".5s", "5.s", "1h2m3s4ms5us6ns",
                         "1\xc2\xb5s", "1\xce\xbcs", "2562047h", "-9223372036854775808ns"}) {
    EXPECT_EQ(goParseDurationError(ok), "") << ok;
  }
  EXPECT_EQ(goParseDurationError(""), R"(time: invalid duration "")");
  EXPECT_EQ(goParseDurationError("abc"), R"(time: invalid duration "abc")");
  EXPECT_EQ(goParseDurationError("1"), R"(time: missing unit in duration "1")");
  EXPECT_EQ(goParseDurationError("1x"), R"(time: unknown unit "x" in duration "1x")");
  EXPECT_EQ(goParseDurationError(".s"), R"(time: invalid duration ".s")");
  EXPECT_EQ(goParseDurationError("-"), R"(time: invalid duration "-")");
  EXPECT_EQ(goParseDurationError("9223372036854775808ns"), R"(time: invalid duration "9223372036854775808ns")");
  EXPECT_EQ(goParseDurationError("2562048h"), R"(time: invalid duration "2562048h")");
  EXPECT_EQ(goParseDurationError("1\"s"), R"(time: unknown unit "\"s" in duration "1\"s")");
  EXPECT_EQ(goParseDurationError("1\xff"), R"(time: unknown unit "\xff" in duration "1\xff")");
}

TEST(RequestInfo, TimeoutParameterCheck) {
  auto check = [](std::string_view method, std::string_view url) {
    auto info = resolveRequestInfo(method, url);
    EXPECT_TRUE(info.ok());
    return checkRequestTimeoutParameter(*info, url);
  };
  EXPECT_TRUE(check("GET", "/api/v1/pods?timeout=30s").ok());
  EXPECT_TRUE(check("GET", "/api/v1/pods?timeout=").ok());
  EXPECT_TRUE(check("GET", "/api/v1/pods?timeout=-5s").ok());
  EXPECT_EQ(check("GET", "/apis/sample-api-server/v1alpha1/namespaces/default/samples?timeout=30").message(),
            "invalid timeout specified in the request URL - time: missing unit in duration \"30\"");
  EXPECT_EQ(check("GET", "/healthz?timeout=x&timeout=1s").message(),
            "invalid timeout specified in the request URL - time: invalid duration \"x\"");
  // The key may be percent-encoded; the value is checked decoded.
  EXPECT_EQ(check("GET", "/api/v1/pods?tim%65out=1%20s").message(),
            "invalid timeout specified in the request URL - time: unknown unit \" s\" in duration \"1 s\"");
  EXPECT_EQ(check("GET", "/api/v1/pods?limit=1&timeout=1+s").message(),
            "invalid timeout specified in the request URL - time: unknown unit \" s\" in duration \"1 s\"");
  EXPECT_TRUE(check("GET", "/api/v1/pods").ok());
  EXPECT_TRUE(check("GET", "/api/v1/pods?limit=5&timeoutSeconds=x").ok());
  // Long-running requests skip the check.
  EXPECT_TRUE(check("GET", "/api/v1/pods?watch=1&timeout=x").ok());
  EXPECT_TRUE(check("GET", "/api/v1/watch/pods?timeout=x").ok());
  EXPECT_TRUE(check("GET", "/debug/pprof/profile?timeout=x").ok());
}

}  // namespace
}  // namespace aaproxy
