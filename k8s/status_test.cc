#include "k8s/status.h"

#include "gtest/gtest.h"

namespace aaproxy {
namespace {

TEST(StatusJson, UnauthorizedIsUpstreamsBody) {
  EXPECT_EQ(unauthorizedStatusJson(),
            R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",)"
            R"("message":"Unauthorized","reason":"Unauthorized","code":401})"
            "\n");
}

TEST(StatusJson, DetailsPresentButEmpty) {
  EXPECT_EQ(failureStatusJson(403, "Forbidden", "forbidden: x", StatusDetails{}),
            R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",)"
            R"("message":"forbidden: x","reason":"Forbidden","details":{},"code":403})"
            "\n");
}

TEST(StatusJson, DetailsOmitEmptyFields) {
  EXPECT_EQ(failureStatusJson(403, "Forbidden", "m", StatusDetails{.name = "", .group = "g", .kind = "k"}),
            R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",)"
            R"("message":"m","reason":"Forbidden","details":{"group":"g","kind":"k"},"code":403})"
            "\n");
}

// runtime/serializer/json: Pretty uses json.MarshalIndent(obj, "", "  ") and writes no newline.
TEST(StatusJson, PrettyMatchesMarshalIndent) {
  EXPECT_EQ(unauthorizedStatusJson(JsonStyle::kPretty),
            "{\n"
            "  \"kind\": \"Status\",\n"
            "  \"apiVersion\": \"v1\",\n"
            "  \"metadata\": {},\n"
            "  \"status\": \"Failure\",\n"
            "  \"message\": \"Unauthorized\",\n"
            "  \"reason\": \"Unauthorized\",\n"
            "  \"code\": 401\n"
            "}");
  EXPECT_EQ(failureStatusJson(403, "Forbidden", "a, \"b\": {c}", StatusDetails{.name = "n", .group = "", .kind = "k"},
                              JsonStyle::kPretty),
            "{\n"
            "  \"kind\": \"Status\",\n"
            "  \"apiVersion\": \"v1\",\n"
            "  \"metadata\": {},\n"
            "  \"status\": \"Failure\",\n"
            "  \"message\": \"a, \\\"b\\\": {c}\",\n"
            "  \"reason\": \"Forbidden\",\n"
            "  \"details\": {\n"
            "    \"name\": \"n\",\n"
            "    \"kind\": \"k\"\n"
            "  },\n"
            "  \"code\": 403\n"
            "}");
  EXPECT_EQ(failureStatusJson(403, "Forbidden", "m", StatusDetails{}, JsonStyle::kPretty),
            "{\n  \"kind\": \"Status\",\n  \"apiVersion\": \"v1\",\n  \"metadata\": {},\n"
            "  \"status\": \"Failure\",\n  \"message\": \"m\",\n  \"reason\": \"Forbidden\",\n"
            "  \"details\": {},\n  \"code\": 403\n}");
}

TEST(StatusJson, IndentArrays) {
  EXPECT_EQ(goJsonIndent(R"({"a":[1,"x\\"],"b":[]})"),
            "{\n  \"a\": [\n    1,\n    \"x\\\\\"\n  ],\n  \"b\": []\n}");
}

struct EscapeCase {
  std::string input;
  std::string want;
};

class GoJsonEscapeTest : public ::testing::TestWithParam<EscapeCase> {};

TEST_P(GoJsonEscapeTest, MatchesEncodingJson) {
  std::string out;
  appendGoJsonString(out, GetParam().input);
  EXPECT_EQ(out, GetParam().want);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, GoJsonEscapeTest,
    ::testing::Values(EscapeCase{"plain", R"("plain")"},
                      EscapeCase{R"(User "a")", R"("User \"a\"")"},
                      EscapeCase{"<&>", R"("\u003c\u0026\u003e")"},
                      EscapeCase{"a\nb\tc\rd\\", R"("a\nb\tc\rd\\")"},
                      EscapeCase{std::string("\x01\x1f", 2), R"("\u0001\u001f")"},
                      EscapeCase{"\xe2\x80\xa8\xe2\x80\xa9", R"("\u2028\u2029")"},
                      EscapeCase{"caf\xc3\xa9", "\"caf\xc3\xa9\""},
                      EscapeCase{"bad\xff", R"("bad\ufffd")"},
                      EscapeCase{"\xc0\xaf", R"("\ufffd\ufffd")"}));

}  // namespace
}  // namespace aaproxy
