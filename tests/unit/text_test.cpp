// base/text.h: the one trim.
#include "mcp-server/base/text.h"

#include <gtest/gtest.h>

namespace smcp::text {
namespace {

TEST(TextTest, TrimTakesBlanksOffBothEnds) {
  EXPECT_EQ(trim("  a b \t\r\n"), "a b");
  EXPECT_EQ(trim(" \t\r\n"), "");
  EXPECT_EQ(trim(""), "");
  EXPECT_EQ(trim("x"), "x");
}

TEST(TextTest, TrimTakesOnlyTheCharactersAsked) {
  EXPECT_EQ(trim(" a\r\n", " \t"), "a\r\n");
  EXPECT_EQ(trim_view("\tvalue ", " \t"), "value");
}

} // namespace
} // namespace smcp::text
