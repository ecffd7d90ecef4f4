// How values go into the remote scripts: quoting (checked by round trips through a real sh and
// perl), shell identifiers, and "~" paths expanded to the remote home.
#include "sandbox/exec/quote.h"
#include "sandbox/exec/remote_scripts.h"
#include "sandbox/exec/run_process.h"

#include <gtest/gtest.h>

#include <filesystem>

namespace smcp::exec {
namespace {

const std::vector<std::string> k_nasty = {
    "",
    "plain",
    "it's",
    "''",
    "'\\''",
    "a b  c",
    "$HOME `id` $(id) ${x:-y}",
    "back\\slash\\\\",
    "new\nline\n",
    "tab\there",
    "semi; rm -rf /tmp/nothing && echo || true",
    "*?[a-z]{1,2}~",
    "unicode: é ü 日本 🚀",
    "\"double\" 'single' \"mixed'\"",
    "-n",
    "!bang !! !$",
    std::string("\x01\x02\x1e\x7f", 4),
};

std::string run_sh(const std::string& script) {
  ProcessResult r = run_process({"/bin/sh", "-c", script}, std::chrono::seconds(10));
  EXPECT_EQ(r.status, 0) << r.err;
  return r.out;
}

TEST(Quote, ShQuoteWrapsInSingleQuotes) {
  EXPECT_EQ(sh_quote(""), "''");
  EXPECT_EQ(sh_quote("abc"), "'abc'");
  EXPECT_EQ(sh_quote("it's"), "'it'\\''s'");
  EXPECT_EQ(sh_quote("'"), "''\\'''");
}

TEST(Quote, ShQuoteRoundTripsThroughARealShell) {
  for (const auto& s : k_nasty) {
    EXPECT_EQ(run_sh("printf '%s' " + sh_quote(s)), s) << "input: " << s;
    // Also as one word among others (no splitting, no globbing).
    EXPECT_EQ(run_sh("set -- x " + sh_quote(s) + " y; printf '%s|' \"$#\" \"$2\""), "3|" + s + "|");
  }
}

TEST(Quote, NestedQuotingRoundTrips) {
  for (const auto& s : k_nasty) {
    std::string inner = "printf '%s' " + sh_quote(s);
    EXPECT_EQ(run_sh("sh -c " + sh_quote(inner)), s) << "input: " << s;
  }
}

TEST(Quote, PerlQuoteRoundTripsThroughPerl) {
  if (!std::filesystem::exists("/usr/bin/perl")) {
    GTEST_SKIP() << "perl is not installed";
  }
  for (const auto& s : k_nasty) {
    ProcessResult r = run_process({"/usr/bin/perl", "-e", "print " + perl_quote(s) + ";"}, std::chrono::seconds(10));
    EXPECT_EQ(r.out, s) << "input: " << s << " err: " << r.err;
  }
  EXPECT_EQ(perl_quote("a'b\\c"), "'a\\'b\\\\c'");
}

TEST(Quote, ShellIdentifiers) {
  EXPECT_TRUE(is_shell_identifier("PATH"));
  EXPECT_TRUE(is_shell_identifier("_x1"));
  EXPECT_FALSE(is_shell_identifier("1x"));
  EXPECT_FALSE(is_shell_identifier("A-B"));
  EXPECT_FALSE(is_shell_identifier(""));
  EXPECT_FALSE(is_shell_identifier("A B"));
  EXPECT_TRUE(contains_nul(std::string("a\0b", 3)));
  EXPECT_FALSE(contains_nul("ab"));
}

TEST(RemotePaths, ExpandHome) {
  EXPECT_EQ(expand_home("~", "/home/a"), "/home/a");
  EXPECT_EQ(expand_home("~/x/y", "/home/a"), "/home/a/x/y");
  EXPECT_EQ(expand_home("/abs", "/home/a"), "/abs");
  EXPECT_EQ(expand_home("~bob/x", "/home/a"), "~bob/x");
  EXPECT_EQ(expand_home("rel", "/home/a"), "rel");
}

} // namespace
} // namespace smcp::exec
