#include "authz/selector.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace aaproxy {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

TEST(FieldSelector, ParsesLikeUpstream) {
  auto r = parseFieldSelector("b=2,a!=1,c==3");
  ASSERT_TRUE(r.ok());
  EXPECT_THAT(*r, ElementsAre(ParsedRequirement{"a", "!=", {"1"}}, ParsedRequirement{"b", "=", {"2"}},
                              ParsedRequirement{"c", "=", {"3"}}));
  EXPECT_THAT(*parseFieldSelector(""), IsEmpty());
  EXPECT_THAT(*parseFieldSelector(",,"), IsEmpty());
  EXPECT_THAT(*parseFieldSelector("="), IsEmpty());
  EXPECT_THAT(*parseFieldSelector("=x"), ElementsAre(ParsedRequirement{"", "=", {"x"}}));
  EXPECT_THAT(*parseFieldSelector(R"(a=x\,y\=z\\)"), ElementsAre(ParsedRequirement{"a", "=", {"x,y=z\\"}}));
  EXPECT_FALSE(parseFieldSelector("a").ok());
  EXPECT_FALSE(parseFieldSelector("a=b=c").ok());
  EXPECT_FALSE(parseFieldSelector(R"(a=b\)").ok());
  EXPECT_FALSE(parseFieldSelector(R"(a=\q)").ok());
  // Invalid UTF-8 in an escaped value becomes U+FFFD (Go ranges over runes).
  EXPECT_THAT(*parseFieldSelector("a=\xff\\,"), ElementsAre(ParsedRequirement{"a", "=", {"\xef\xbf\xbd,"}}));
  EXPECT_THAT(*parseFieldSelector("a=\xff"), ElementsAre(ParsedRequirement{"a", "=", {"\xff"}}));
}

TEST(FieldSelector, ExactMatch) {
  std::string v;
  auto r = *parseFieldSelector("metadata.name!=x,metadata.name=y");
  EXPECT_TRUE(fieldSelectorRequiresExactMatch(r, "metadata.name", &v));
  EXPECT_EQ(v, "y");
  EXPECT_FALSE(fieldSelectorRequiresExactMatch(r, "spec.x", &v));
}

struct LabelCase {
  std::string selector;
  bool ok;
  std::vector<ParsedRequirement> want;
};

class LabelSelectorTest : public ::testing::TestWithParam<LabelCase> {};

TEST_P(LabelSelectorTest, Parse) {
  auto r = parseLabelSelector(GetParam().selector);
  ASSERT_EQ(r.ok(), GetParam().ok) << GetParam().selector << " " << r.status();
  if (r.ok()) {
    EXPECT_EQ(*r, GetParam().want) << GetParam().selector;
  }
}

// Cases after apimachinery's TestSelectorParse / TestToString / TestLexer tables.
INSTANTIATE_TEST_SUITE_P(
    Upstream, LabelSelectorTest,
    ::testing::Values(
        LabelCase{"", true, {}},
        LabelCase{"x=a,y=b,z=c", true, {{"x", "=", {"a"}}, {"y", "=", {"b"}}, {"z", "=", {"c"}}}},
        LabelCase{"x!=a,y=b", true, {{"x", "!=", {"a"}}, {"y", "=", {"b"}}}},
        LabelCase{"x=", true, {{"x", "=", {""}}}},
        LabelCase{"x= ", true, {{"x", "=", {""}}}},
        LabelCase{"x=,z= ", true, {{"x", "=", {""}}, {"z", "=", {""}}}},
        LabelCase{"x= ,z= ", true, {{"x", "=", {""}}, {"z", "=", {""}}}},
        LabelCase{"!x", true, {{"x", "!", {}}}},
        LabelCase{"x>1", true, {{"x", "gt", {"1"}}}},
        LabelCase{"x<1", true, {{"x", "lt", {"1"}}}},
        LabelCase{"x>1a", false, {}},
        LabelCase{"x in (a,b)", true, {{"x", "in", {"a", "b"}}}},
        LabelCase{"x notin (a)", true, {{"x", "notin", {"a"}}}},
        LabelCase{"x in ()", true, {{"x", "in", {""}}}},
        LabelCase{"x in (,a)", true, {{"x", "in", {"", "a"}}}},
        LabelCase{"x in (a,)", true, {{"x", "in", {"", "a"}}}},
        LabelCase{"x in (a,,b)", true, {{"x", "in", {"", "a", "b"}}}},
        LabelCase{"in in (in)", true, {{"in", "in", {"in"}}}},
        LabelCase{"x in (a,,)", true, {{"x", "in", {"", "a"}}}},
        LabelCase{"x in (,,)", true, {{"x", "in", {""}}}},
        LabelCase{"x in (,", false, {}},
        LabelCase{"z,a", true, {{"a", "exists", {}}, {"z", "exists", {}}}},
        LabelCase{"x=a||y=b", false, {}},
        LabelCase{"x==a==b", false, {}},
        LabelCase{"!x=a", false, {}},
        LabelCase{"x=a,", false, {}},
        LabelCase{",x", false, {}},
        LabelCase{"x in a", false, {}},
        LabelCase{"x in (a", false, {}},
        LabelCase{"x=a b", false, {}},
        LabelCase{"x>", false, {}},
        LabelCase{"-x=a", false, {}},
        LabelCase{"x=-a", false, {}},
        LabelCase{"example.com/x=a", true, {{"example.com/x", "=", {"a"}}}},
        LabelCase{"Example.com/x=a", false, {}},
        LabelCase{"a/b/c=a", false, {}},
        LabelCase{"/x=a", false, {}},
        // Upstream's lexer reads a NUL byte as the end of input.
        LabelCase{std::string("\0x=a", 4), true, {}},
        LabelCase{std::string("x=a\0,", 5), false, {}}));

TEST(LabelSelector, LengthLimits) {
  EXPECT_TRUE(parseLabelSelector(std::string(63, 'a')).ok());
  EXPECT_FALSE(parseLabelSelector(std::string(64, 'a')).ok());
  EXPECT_TRUE(parseLabelSelector("k=" + std::string(63, 'v')).ok());
  EXPECT_FALSE(parseLabelSelector("k=" + std::string(64, 'v')).ok());
}

}  // namespace
}  // namespace aaproxy
