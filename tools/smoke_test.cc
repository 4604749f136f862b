#include <event2/event.h>
#include <http_parser.h>
#include <openssl/ssl.h>
#include <simdjson.h>
#include <yaml-cpp/yaml.h>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

TEST(Toolchain, LinksEverything) {
  event_base* base = event_base_new();
  ASSERT_NE(base, nullptr);
  event_base_free(base);
  simdjson::ondemand::parser parser;
  auto json = simdjson::padded_string(std::string_view("{\"a\":1}"));
  simdjson::ondemand::document doc = parser.iterate(json);
  EXPECT_EQ(doc["a"].get_int64().value(), 1);
  EXPECT_EQ(YAML::Load("a: b")["a"].as<std::string>(), "b");
  EXPECT_EQ(absl::StrCat("a", 1), "a1");
  EXPECT_GT(http_parser_version(), 0u);
  EXPECT_NE(TLS_method(), nullptr);
}
