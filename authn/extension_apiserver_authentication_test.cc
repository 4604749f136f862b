// Ports the parsing cases of upstream's headerrequest/requestheader_controller_test.go (and its
// deserializeStrings) plus ConfigMap JSON handling and flag overrides.
#include "authn/extension_apiserver_authentication.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace aaproxy {
namespace {

using ::testing::HasSubstr;
using Strings = std::vector<std::string>;

TEST(ExtensionApiserverAuthenticationTest, HappyPath) {
  auto parsed = parseExtensionApiserverAuthentication({
      {"client-ca-file", "CLIENT PEM"},
      {"requestheader-client-ca-file", "RH PEM"},
      {"requestheader-username-headers", "[\"user-val\"]"},
      {"requestheader-uid-headers", "[\"uid-val\"]"},
      {"requestheader-group-headers", "[\"group-val\"]"},
      {"requestheader-extra-headers-prefix", "[\"extra-val\"]"},
      {"requestheader-allowed-names", "[\"names-val\", \"second\"]"},
  });
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->clientCaPem, "CLIENT PEM");
  EXPECT_EQ(parsed->requestHeaderCaPem, "RH PEM");
  EXPECT_EQ(parsed->requestHeaderUsernameHeaders, Strings{"user-val"});
  EXPECT_EQ(parsed->requestHeaderUidHeaders, Strings{"uid-val"});
  EXPECT_EQ(parsed->requestHeaderGroupHeaders, Strings{"group-val"});
  EXPECT_EQ(parsed->requestHeaderExtraHeaderPrefixes, Strings{"extra-val"});
  EXPECT_EQ(parsed->requestHeaderAllowedNames, (Strings{"names-val", "second"}));
}

TEST(ExtensionApiserverAuthenticationTest, EmptyConfigMapIsAllUnset) {
  auto parsed = parseExtensionApiserverAuthentication({});
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(*parsed, ExtensionApiserverAuthentication{});
}

TEST(ExtensionApiserverAuthenticationTest, MissingEmptyAndNullAreUnsetButEmptyListIsSet) {
  auto parsed = parseExtensionApiserverAuthentication({
      {"client-ca-file", ""},
      {"requestheader-username-headers", ""},
      {"requestheader-group-headers", "null"},
      {"requestheader-allowed-names", "[]"},
      {"requestheader-uid-headers", " [ \"a\" , null ] "},
  });
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->clientCaPem, std::nullopt);
  EXPECT_EQ(parsed->requestHeaderUsernameHeaders, std::nullopt);
  EXPECT_EQ(parsed->requestHeaderGroupHeaders, std::nullopt);
  EXPECT_EQ(parsed->requestHeaderExtraHeaderPrefixes, std::nullopt);
  EXPECT_EQ(parsed->requestHeaderAllowedNames, Strings{});
  EXPECT_EQ(parsed->requestHeaderUidHeaders, (Strings{"a", ""}));
}

TEST(ExtensionApiserverAuthenticationTest, InvalidJsonNamesTheKey) {
  for (const char* bad :
       {"incorrect-json-array", "[\"a\"", "[\"a\"] x", "{\"a\":1}", "[1]", "\"a\"", "   "}) {
    SCOPED_TRACE(bad);
    auto parsed = parseExtensionApiserverAuthentication(
        {{"requestheader-username-headers", bad}, {"requestheader-group-headers", "[\"g\"]"}});
    ASSERT_FALSE(parsed.ok());
    EXPECT_THAT(parsed.status().message(), HasSubstr("requestheader-username-headers: "));
  }
}

TEST(ConfigMapDataTest, ParsesData) {
  auto data = parseConfigMapData(R"({"apiVersion":"v1","kind":"ConfigMap",
      "metadata":{"name":"extension-apiserver-authentication","namespace":"kube-system"},
      "data":{"client-ca-file":"-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----\n",
              "requestheader-allowed-names":"[\"front-proxy-client\"]","nullvalue":null}})");
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->at("client-ca-file"),
            "-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----\n");
  EXPECT_EQ(data->at("requestheader-allowed-names"), "[\"front-proxy-client\"]");
  EXPECT_EQ(data->at("nullvalue"), "");
  auto parsed = parseExtensionApiserverAuthentication(*data);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->requestHeaderAllowedNames, Strings{"front-proxy-client"});
}

TEST(ConfigMapDataTest, MissingOrNullDataIsEmpty) {
  EXPECT_TRUE(parseConfigMapData(R"({"kind":"ConfigMap"})")->empty());
  EXPECT_TRUE(parseConfigMapData(R"({"kind":"ConfigMap","data":null})")->empty());
}

TEST(ConfigMapDataTest, Errors) {
  EXPECT_FALSE(parseConfigMapData("not json").ok());
  EXPECT_FALSE(parseConfigMapData("[]").ok());
  EXPECT_FALSE(parseConfigMapData(R"({"data":[]})").ok());
  auto nonString = parseConfigMapData(R"({"data":{"k":1}})");
  ASSERT_FALSE(nonString.ok());
  EXPECT_THAT(nonString.status().message(), HasSubstr("data[\"k\"] is not a string"));
}

TEST(MergeWithFlagsTest, FlagValueWinsFieldByField) {
  ExtensionApiserverAuthentication configMap;
  configMap.clientCaPem = "cm-client";
  configMap.requestHeaderCaPem = "cm-rh";
  configMap.requestHeaderAllowedNames = Strings{"front-proxy-client"};
  configMap.requestHeaderUsernameHeaders = Strings{"X-Remote-User"};
  configMap.requestHeaderGroupHeaders = Strings{"X-Remote-Group"};

  ExtensionApiserverAuthentication flags;
  flags.clientCaPem = "flag-client";
  flags.requestHeaderAllowedNames = Strings{};  // Given, though empty: it wins.
  auto merged = mergeWithFlags(configMap, flags);
  EXPECT_EQ(merged.clientCaPem, "flag-client");
  EXPECT_EQ(merged.requestHeaderCaPem, "cm-rh");
  EXPECT_EQ(merged.requestHeaderAllowedNames, Strings{});
  EXPECT_EQ(merged.requestHeaderUsernameHeaders, Strings{"X-Remote-User"});
  EXPECT_EQ(merged.requestHeaderGroupHeaders, Strings{"X-Remote-Group"});

  EXPECT_EQ(mergeWithFlags(configMap, {}), configMap);
}

TEST(MergeWithFlagsTest, RequestHeaderCaFlagTakesTheWholeRequestHeaderSetFromFlags) {
  ExtensionApiserverAuthentication configMap;
  configMap.clientCaPem = "cm-client";
  configMap.requestHeaderCaPem = "cm-rh";
  configMap.requestHeaderAllowedNames = Strings{"front-proxy-client"};
  configMap.requestHeaderUsernameHeaders = Strings{"X-Remote-User"};
  ExtensionApiserverAuthentication flags;
  flags.requestHeaderCaPem = "flag-rh";
  flags.requestHeaderUsernameHeaders = Strings{"X-User"};
  auto merged = mergeWithFlags(configMap, flags);
  EXPECT_EQ(merged.clientCaPem, "cm-client");
  EXPECT_EQ(merged.requestHeaderCaPem, "flag-rh");
  EXPECT_EQ(merged.requestHeaderUsernameHeaders, Strings{"X-User"});
  EXPECT_EQ(merged.requestHeaderAllowedNames, std::nullopt);
}

}  // namespace
}  // namespace aaproxy
