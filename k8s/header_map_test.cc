#include "k8s/header_map.h"

#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace aaproxy {
namespace {

std::vector<std::string> lines(const HeaderMap& headers) {
  std::vector<std::string> out;
  for (const Header& h : headers.entries()) {
    out.push_back(h.name + ": " + h.value);
  }
  return out;
}

TEST(HeaderMap, CaseInsensitiveLookupKeepsDuplicatesInOrder) {
  HeaderMap h;
  h.add("Accept", "a");
  h.add("X-Group", "1");
  h.add("x-group", "2");
  EXPECT_EQ(h.get("ACCEPT"), "a");
  EXPECT_EQ(h.getAll("X-GROUP"), (std::vector<std::string_view>{"1", "2"}));
  EXPECT_FALSE(h.has("Host"));
  EXPECT_EQ(h.remove("x-GROUP"), 2u);
  EXPECT_EQ(lines(h), std::vector<std::string>{"Accept: a"});
}

TEST(HeaderMap, RemoveIfKeepsTheOrderOfTheRest) {
  HeaderMap h;
  for (const char* name : {"a", "drop", "b", "drop", "drop", "c"}) {
    h.add(name, "v");
  }
  EXPECT_EQ(h.removeIf([](const Header& x) { return x.name == "drop"; }), 3u);
  EXPECT_EQ(lines(h), (std::vector<std::string>{"a: v", "b: v", "c: v"}));
  h.add("d", "v");  // a spare slot is reused, and the new line goes last
  EXPECT_EQ(lines(h), (std::vector<std::string>{"a: v", "b: v", "c: v", "d: v"}));
}

TEST(HeaderMap, ClearKeepsLineBuffersForTheNextMessage) {
  HeaderMap h;
  const std::string long_value(200, 'x');
  h.add("User-Agent", long_value);
  h.clear();
  EXPECT_TRUE(h.empty());
  EXPECT_EQ(h.get("User-Agent"), std::nullopt);
  Header& line = h.addLine();  // the parser's way: fill in place
  EXPECT_TRUE(line.name.empty());
  EXPECT_TRUE(line.value.empty());
  EXPECT_GE(line.value.capacity(), long_value.size());  // no allocation for a value this long
  line.name.append("Us");
  h.lastLine().name.append("er-Agent");
  h.lastLine().value.append("kubectl");
  EXPECT_EQ(lines(h), std::vector<std::string>{"User-Agent: kubectl"});
}

TEST(HeaderMap, CopiesAndMovesCarryOnlyTheLines) {
  HeaderMap h;
  h.add("a", "1");
  h.add("b", "2");
  h.add("gone", "3");
  h.remove("gone");
  HeaderMap copy = h;
  EXPECT_EQ(lines(copy), (std::vector<std::string>{"a: 1", "b: 2"}));
  HeaderMap assigned;
  assigned.add("old", "x");
  assigned = h;
  EXPECT_EQ(lines(assigned), (std::vector<std::string>{"a: 1", "b: 2"}));
  HeaderMap moved = std::move(h);
  EXPECT_EQ(lines(moved), (std::vector<std::string>{"a: 1", "b: 2"}));
  EXPECT_TRUE(h.empty());  // NOLINT(bugprone-use-after-move): moved-from is specified empty
  h.add("c", "3");
  EXPECT_EQ(lines(h), std::vector<std::string>{"c: 3"});
}

}  // namespace
}  // namespace aaproxy
