// The POSIX toolkit of sandbox/exec: the /proc/PID/stat parser, owning descriptors, and reading a
// pipe to its end on an EventLoop.
#include "sandbox/exec/event_loop.h"
#include "sandbox/exec/fd.h"
#include "sandbox/exec/pipe_reader.h"
#include "sandbox/exec/proc_stat.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <string>
#include <unistd.h>

namespace smcp::exec {
namespace {

using namespace std::chrono_literals;

TEST(ProcessStat, CountsFieldsFromTheLastParenthesisOfTheName) {
  const std::string line = "4242 (a (b) c) S 1 4200 4100 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 98765 1234 56\n";
  ProcStat st;
  ASSERT_TRUE(parse_proc_stat(line.c_str(), st));
  EXPECT_EQ(st.pid, 4242);
  EXPECT_STREQ(st.comm, "a (b) c");
  EXPECT_EQ(st.state, 'S');
  EXPECT_EQ(st.ppid, 1);
  EXPECT_EQ(st.pgrp, 4200);
  EXPECT_EQ(st.sid, 4100);
  EXPECT_EQ(st.start_time, 98765u);
  EXPECT_TRUE(st.live());
  EXPECT_TRUE(parse_proc_stat("7 (z) Z 1 7 7 0", st));
  EXPECT_FALSE(st.live());
  EXPECT_FALSE(parse_proc_stat("garbage", st));
}

TEST(ProcessStat, ReadsThisProcess) {
  ProcStat st;
  ASSERT_TRUE(read_proc_stat(::getpid(), st));
  EXPECT_EQ(st.pid, ::getpid());
  EXPECT_EQ(st.ppid, ::getppid());
  EXPECT_EQ(st.pgrp, ::getpgrp());
  EXPECT_EQ(st.sid, ::getsid(0));
  EXPECT_GT(st.start_time, 0u);
  EXPECT_FALSE(read_proc_stat(0, st));
}

TEST(UniqueFd, ClosesWhatItOwns) {
  Pipe p;
  ASSERT_TRUE(open_pipe(p));
  const int fd = p.read.get();
  EXPECT_GE(::fcntl(fd, F_GETFD), 0);
  EXPECT_TRUE(::fcntl(fd, F_GETFD) & FD_CLOEXEC);
  UniqueFd moved = std::move(p.read);
  EXPECT_FALSE(p.read);
  moved.reset();
  EXPECT_EQ(::fcntl(fd, F_GETFD), -1) << "the descriptor was not closed";
}

TEST(PipeReader, DeliversEveryChunkThenEndsOnce) {
  Pipe p;
  ASSERT_TRUE(open_pipe(p));
  EventLoop loop;
  std::string got;
  int ends = 0;
  PipeReader reader(
      loop, std::move(p.read), [&](std::string_view d) { got.append(d); }, [&] { ++ends; });
  ASSERT_EQ(write_all(p.write.get(), "hello ", 6), 0);
  loop.run_until(EventLoop::Clock::now() + 2s);
  EXPECT_EQ(got, "hello ");
  EXPECT_TRUE(reader.open());
  ASSERT_EQ(write_all(p.write.get(), "world", 5), 0);
  p.write.reset();
  const auto until = EventLoop::Clock::now() + 2s;
  while (reader.open() && EventLoop::Clock::now() < until) {
    loop.run_until(until);
  }
  EXPECT_FALSE(reader.open());
  EXPECT_EQ(got, "hello world");
  EXPECT_EQ(ends, 1);
}

} // namespace
} // namespace smcp::exec
