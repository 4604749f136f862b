#include "authz/go_text.h"

#include "gtest/gtest.h"

namespace aaproxy {
namespace {

TEST(GoQuote, MatchesStrconvQuote) {
  EXPECT_EQ(goQuote("alice"), R"("alice")");
  EXPECT_EQ(goQuote(R"(a"b\c)"), R"("a\"b\\c")");
  EXPECT_EQ(goQuote("a\nb\t\x01\x7f"), R"("a\nb\t\x01\x7f")");
  EXPECT_EQ(goQuote("caf\xc3\xa9"), "\"caf\xc3\xa9\"");
  EXPECT_EQ(goQuote("bad\xff"), R"("bad\xff")");
  EXPECT_EQ(goQuote("\xc2\x85"), R"("\u0085")");
  EXPECT_EQ(goQuote("\xe2\x80\xa8"), R"("\u2028")");
  EXPECT_EQ(goQuote("\xc2\xa0"), R"("\u00a0")");
  EXPECT_EQ(goQuote("\xf3\xa0\x80\x81"), R"("\U000e0001")");
  EXPECT_EQ(goQuote("<&>"), R"("<&>")");
}

TEST(GoUnescape, PathAndQueryModes) {
  EXPECT_EQ(*goUnescape("a%2Fb+c", false), "a/b+c");
  EXPECT_EQ(*goUnescape("a%2fb+c", true), "a/b c");
  EXPECT_EQ(goUnescape("%zz", false).status().message(), R"(invalid URL escape "%zz")");
  EXPECT_EQ(goUnescape("ab%4", false).status().message(), R"(invalid URL escape "%4")");
  EXPECT_EQ(goUnescape("ab%", false).status().message(), R"(invalid URL escape "%")");
  EXPECT_EQ(*goUnescape("", false), "");
  EXPECT_EQ(*goUnescape("/apis/plain/path", false), "/apis/plain/path");
  EXPECT_EQ(*goUnescape("%41%42c%43", false), "ABcC");
  EXPECT_EQ(*goUnescape("++%2B+", true), "  + ");
  EXPECT_EQ(*goUnescape("x%00y", false), std::string("x\0y", 3));
}

TEST(GoQuery, ParseQuerySemantics) {
  GoQuery q = GoQuery::parse("a=1&a=2&b&c=%zz&d=x;y&&e=%20+");
  EXPECT_EQ(q.first("a"), "1");
  EXPECT_EQ(q.all("a").size(), 2u);
  EXPECT_TRUE(q.has("b"));
  EXPECT_EQ(q.first("b"), "");
  EXPECT_FALSE(q.has("c"));
  EXPECT_FALSE(q.has("d"));
  EXPECT_EQ(q.first("e"), "  ");
}

TEST(GoEscapedPath, KeepsValidRawPath) {
  auto uri = parseGoRequestUri("/a%2Fb/c");
  ASSERT_TRUE(uri.ok());
  EXPECT_EQ(uri->path, "/a/b/c");
  EXPECT_EQ(goEscapedPath(*uri), "/a%2Fb/c");
  uri = parseGoRequestUri("/a b");
  EXPECT_EQ(goEscapedPath(*uri), "/a%20b");
}

TEST(GoEqualFold, SimpleFolding) {
  EXPECT_TRUE(goEqualFold("FaLsE", "false"));
  EXPECT_TRUE(goEqualFold("fal\xc5\xbf" "e", "false"));
  EXPECT_TRUE(goEqualFold("\xe2\x84\xaa", "k"));
  EXPECT_FALSE(goEqualFold("falsee", "false"));
}

TEST(GoParse, IntAndBool) {
  EXPECT_TRUE(goParsesInt64("-9223372036854775808"));
  EXPECT_FALSE(goParsesInt64("9223372036854775808"));
  EXPECT_TRUE(goParsesInt64("+7"));
  EXPECT_FALSE(goParsesInt64(""));
  EXPECT_FALSE(goParsesInt64("1_000"));
  EXPECT_EQ(goParseBool("T"), std::make_pair(true, true));
  EXPECT_EQ(goParseBool("yes"), std::make_pair(false, false));
}

TEST(GoErrorf, NoArgumentVerbs) {
  EXPECT_EQ(goErrorfNoArgs("plain"), "plain");
  EXPECT_EQ(goErrorfNoArgs("100%% sure"), "100% sure");
  EXPECT_EQ(goErrorfNoArgs("/a%s/b"), "/a%!s(MISSING)/b");
  EXPECT_EQ(goErrorfNoArgs("%5.2f"), "%!f(MISSING)");
  EXPECT_EQ(goErrorfNoArgs("end%"), "end%!(NOVERB)");
  EXPECT_EQ(goErrorfNoArgs("%[1]d"), "%!d(BADINDEX)");
  EXPECT_EQ(goErrorfNoArgs("%*d"), "%!(BADWIDTH)%!d(MISSING)");
  EXPECT_EQ(goErrorfNoArgs("%\xc3\xa9"), "%!\xc3\xa9(MISSING)");
}

}  // namespace
}  // namespace aaproxy
