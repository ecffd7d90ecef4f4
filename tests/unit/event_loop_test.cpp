// exec::EventLoop: descriptor watches, timers, posted work and stop, on a real epoll loop.
#include "sandbox/exec/event_loop.h"

#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

namespace smcp::exec {
namespace {

using namespace std::chrono_literals;
using Clock = EventLoop::Clock;

struct Pipe {
  Pipe() { EXPECT_EQ(::pipe(fds), 0); }
  ~Pipe() {
    ::close(fds[0]);
    ::close(fds[1]);
  }
  int fds[2];
};

TEST(EventLoop, ReadableWatchRunsOnceWhenDataArrives) {
  EventLoop loop;
  Pipe p;
  EventLoop::Watch watch(loop, p.fds[0]);
  int calls = 0;
  watch.on_readable([&](bool ok) {
    EXPECT_TRUE(ok);
    ++calls;
  });
  EXPECT_TRUE(watch.waiting_readable());
  EXPECT_EQ(loop.run_until(Clock::now() + 50ms), 0u); // nothing written yet
  EXPECT_EQ(calls, 0);
  ASSERT_EQ(::write(p.fds[1], "x", 1), 1);
  EXPECT_GE(loop.run_until(Clock::now() + 2s), 1u);
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(watch.waiting_readable());
  EXPECT_EQ(loop.run_until(Clock::now() + 20ms), 0u); // one-shot: not re-armed by itself
  EXPECT_EQ(calls, 1);
}

TEST(EventLoop, AWaitArmedWhileDataIsWaitingCompletesAtOnce) {
  // Level-triggered: after reading part of what is there, re-arming must not wait for more. A
  // socket, not a pipe: on Linux a read from a pipe wakes its pollers again, which would hide an
  // edge-triggered wait; a read from a socket does not.
  EventLoop loop;
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  ASSERT_EQ(::write(sv[1], "abcdef", 6), 6);
  EventLoop::Watch watch(loop, sv[0]);
  std::string got;
  std::function<void()> arm = [&] {
    watch.on_readable([&](bool) {
      char c;
      if (::read(sv[0], &c, 1) == 1) {
        got.push_back(c);
        arm();
      }
    });
  };
  arm();
  const auto until = Clock::now() + 2s;
  while (got.size() < 6 && Clock::now() < until) {
    loop.run_until(until);
  }
  EXPECT_EQ(got, "abcdef");
  ::close(sv[0]);
  ::close(sv[1]);
}

TEST(EventLoop, EndOfFileCountsAsReadable) {
  EventLoop loop;
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  EventLoop::Watch watch(loop, fds[0]);
  bool fired = false;
  watch.on_readable([&](bool) { fired = true; });
  ::close(fds[1]);
  loop.run_until(Clock::now() + 2s);
  EXPECT_TRUE(fired);
  char c;
  EXPECT_EQ(::read(fds[0], &c, 1), 0);
  ::close(fds[0]);
}

TEST(EventLoop, WatchNeverClosesItsDescriptor) {
  EventLoop loop;
  Pipe p;
  { EventLoop::Watch watch(loop, p.fds[0]); }
  ASSERT_EQ(::write(p.fds[1], "y", 1), 1);
  char c = 0;
  EXPECT_EQ(::read(p.fds[0], &c, 1), 1);
  EXPECT_EQ(c, 'y');
}

TEST(EventLoop, CancelledOrDestroyedWatchesDropTheirHandlers) {
  EventLoop loop;
  Pipe p;
  bool cancelled_ran = false, destroyed_ran = false;
  EventLoop::Watch a(loop, p.fds[0]);
  a.on_readable([&](bool) { cancelled_ran = true; });
  a.cancel();
  EXPECT_FALSE(a.waiting_readable());
  Pipe q;
  {
    EventLoop::Watch b(loop, q.fds[0]);
    b.on_readable([&](bool) { destroyed_ran = true; });
    ASSERT_EQ(::write(q.fds[1], "z", 1), 1);
  }
  ASSERT_EQ(::write(p.fds[1], "z", 1), 1);
  loop.run_until(Clock::now() + 100ms);
  EXPECT_FALSE(cancelled_ran);
  EXPECT_FALSE(destroyed_ran);
}

TEST(EventLoop, TimerFiresAtItsTimeAndCanBeReplacedOrCancelled) {
  EventLoop loop;
  EventLoop::Timer timer(loop);
  std::vector<int> fired;
  const auto t0 = Clock::now();
  timer.at(t0 + 30ms, [&] { fired.push_back(1); });
  timer.at(t0 + 60ms, [&] { fired.push_back(2); }); // replaces the first
  EXPECT_TRUE(timer.pending());
  while (fired.empty() && Clock::now() < t0 + 2s) {
    loop.run_until(t0 + 2s);
  }
  EXPECT_EQ(fired, std::vector<int>{2});
  EXPECT_GE(Clock::now() - t0, 60ms);
  EXPECT_FALSE(timer.pending());
  timer.at(Clock::now() + 10ms, [&] { fired.push_back(3); });
  timer.cancel();
  loop.run_until(Clock::now() + 50ms);
  EXPECT_EQ(fired, std::vector<int>{2});
}

TEST(EventLoop, PostFromAnotherThreadWakesRunAndStopEndsIt) {
  EventLoop loop;
  std::atomic<int> ran{0};
  std::thread runner([&] { loop.run(); });
  for (int i = 0; i < 100; ++i) {
    loop.post([&] { ++ran; });
  }
  loop.post([&] { loop.stop(); });
  runner.join();
  EXPECT_EQ(ran.load(), 100);
  EXPECT_TRUE(loop.stopped());
  EXPECT_EQ(loop.run_until(Clock::now() + 1s), 0u); // returns at once while stopped
}

} // namespace
} // namespace smcp::exec
