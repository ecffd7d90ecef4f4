// The parsers of what the remote scripts print: the supervisor's records in a stderr stream, and
// answers that no well-behaved host sends (the kind fuzz_remote_scripts generates), which the
// parsers refuse with exec::HostError instead of computing with them.
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

TEST(MarkerFilter, RemovesRecordsWhateverTheChunking) {
  const std::string nonce = "0123abcd";
  const std::string stream =
      "err1\n\x1e" + nonce + " sid 42 43\npartial line\x1e" + nonce + " exit 3\nafter\x1eother\x1e" + nonce;
  const std::string expected_text = "err1\npartial lineafter\x1eother\x1e" + nonce;
  for (std::size_t chunk = 1; chunk <= stream.size(); ++chunk) {
    MarkerFilter f(nonce);
    std::string out;
    for (std::size_t i = 0; i < stream.size(); i += chunk) {
      out += f.feed(std::string_view(stream).substr(i, chunk));
    }
    out += f.flush();
    EXPECT_EQ(out, expected_text) << "chunk " << chunk;
    auto records = f.take_records();
    ASSERT_EQ(records.size(), 2u) << "chunk " << chunk;
    SupervisorReport rep;
    for (const auto& r : records) {
      apply_record(r, rep);
    }
    EXPECT_EQ(rep.sid, 42);
    EXPECT_EQ(rep.supervisor_pid, 43);
    EXPECT_EQ(rep.exit_code, 3);
  }
}

TEST(MarkerFilter, SignalRecords) {
  SupervisorReport rep;
  apply_record("signal 15", rep);
  EXPECT_EQ(rep.signal, 15);
  EXPECT_FALSE(rep.guessed);
  SupervisorReport guessed;
  apply_record("signal 9 guessed", guessed);
  EXPECT_EQ(guessed.signal, 9);
  EXPECT_TRUE(guessed.guessed);
  SupervisorReport cwd;
  apply_record("error cwd", cwd);
  EXPECT_TRUE(cwd.cwd_missing);
}

TEST(ScriptParsers, FileWindowWithNegativeCountsIsRefused) {
  // A `found` of LONG_MIN must not be negated (undefined behaviour) to make the window's start line.
  EXPECT_THROW(parse_file_window("S 100 0\nE 0 0 0 -9223372036854775808 0 0\n", tail_request(-5), 0), exec::HostError);
  EXPECT_THROW(parse_file_window("S 100 0\nE 0 0 0 -3 0 0\n", tail_request(-5), 0), exec::HostError);
  EXPECT_THROW(parse_file_window("S 100 0\nE 0 0 0 0 0 -1\n", tail_request(40), 0), exec::HostError);
  // A newline count beyond any file must not make `total - found` overflow.
  EXPECT_THROW(parse_file_window("S 10 1\nLa\nE 1 0 0 1 2 1\nT 9223372036854775807\n", tail_request(-1), 1 << 20),
               exec::HostError);
}

TEST(ScriptParsers, FileWindowOfAGrowingFileIsStillAnswered) {
  // The file grew between `wc -c` (S) and awk (E): more lines than the size said is fine.
  auto w = parse_file_window("S 4 0\nLa\nLb\nE 2 1 0 2 4 7\n", tail_request(1), 0);
  EXPECT_EQ(w.lines.size(), 2u);
  EXPECT_TRUE(w.more_after);
}

} // namespace
} // namespace smcp::exec
