// Answers of the remote scripts that no well-behaved host sends (found by fuzz_remote_scripts):
// the parsers refuse them with exec::HostError instead of computing with them.
#include "sandbox/exec/script_parsers.h"

#include <gtest/gtest.h>

namespace smcp::exec {
namespace {

exec::FileReadRequest tail_request(long offset) {
  exec::FileReadRequest req;
  req.path = "/var/log/x.log";
  req.offset = offset;
  return req;
}

TEST(SshRemoteParsers, FileWindowWithNegativeCountsIsRefused) {
  // `found` = LONG_MIN was negated (undefined behaviour) to make the window's start line.
  EXPECT_THROW(parse_file_window("S 100 0\nE 0 0 0 -9223372036854775808 0 0\n", tail_request(-5), 0), exec::HostError);
  EXPECT_THROW(parse_file_window("S 100 0\nE 0 0 0 -3 0 0\n", tail_request(-5), 0), exec::HostError);
  EXPECT_THROW(parse_file_window("S 100 0\nE 0 0 0 0 0 -1\n", tail_request(40), 0), exec::HostError);
  // A newline count beyond any file made `total - found` overflow.
  EXPECT_THROW(parse_file_window("S 10 1\nLa\nE 1 0 0 1 2 1\nT 9223372036854775807\n", tail_request(-1), 1 << 20),
               exec::HostError);
}

TEST(SshRemoteParsers, FileWindowOfAGrowingFileIsStillAnswered) {
  // The file grew between `wc -c` (S) and awk (E): more lines than the size said is fine.
  auto w = parse_file_window("S 4 0\nLa\nLb\nE 2 1 0 2 4 7\n", tail_request(1), 0);
  EXPECT_EQ(w.lines.size(), 2u);
  EXPECT_TRUE(w.more_after);
}

} // namespace
} // namespace smcp::exec
