// The one event-loop mechanism of the execution layer: waiting on file descriptors, timers and
// work posted from other threads, on one thread. Boost.Asio's io_context underneath (epoll), behind
// this small interface so that only event_loop.cpp includes Asio.
//
// Two ways to use it:
// - a loop thread (the SSH pool): run() until stop(), everything else arrives through post(),
//   watches and timers;
// - a caller's own thread waiting for a child's pipes (LocalHost, run_process): run_until(deadline)
//   runs ready handlers and returns when one ran or the deadline passed.
#pragma once

#include <chrono>
#include <functional>
#include <memory>

namespace smcp::exec {

class EventLoop {
public:
  using Clock = std::chrono::steady_clock;

  EventLoop();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Runs handlers until stop() is called (work may be added while it runs).
  void run();
  // Runs the handlers that are ready, waiting until `deadline` for the first one; returns how many
  // ran (0: the deadline passed, or the loop was stopped).
  std::size_t run_until(Clock::time_point deadline);
  // Makes run() return; run_until() returns at once while stopped. Any thread.
  void stop();
  bool stopped() const;
  // Runs `fn` on the loop's thread, soon. Any thread.
  void post(std::function<void()> fn);

  class Watch;
  class Timer;

private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

// Watches and timers are used on the loop's thread (or while the loop is not running).
//
// Waits for a file descriptor to become readable or writable, level-triggered: a wait armed while
// the descriptor is ready completes at once (Asio re-arms its edge-triggered epoll registration
// with EPOLL_CTL_MOD for every wait, which reports readiness that is already there). The descriptor is not owned: it is
// never closed here, and must stay open while the Watch exists (destroy the Watch first). Asio puts it in non-blocking
// mode: reads and writes on it may fail with EAGAIN.
class EventLoop::Watch {
public:
  Watch(EventLoop& loop, int fd);
  ~Watch();
  Watch(const Watch&) = delete;
  Watch& operator=(const Watch&) = delete;

  int fd() const;
  // `fn(ok)` runs once on the loop's thread when the descriptor is ready (for read: data, end of
  // file or an error is waiting; ok = false when the reactor reported an error on the descriptor).
  // A second wait in the same direction while one is pending is ignored. A cancelled wait, or one
  // whose Watch was destroyed, never runs its handler.
  void on_readable(std::function<void(bool ok)> fn);
  void on_writable(std::function<void(bool ok)> fn);
  bool waiting_readable() const;
  bool waiting_writable() const;
  // Cancels pending waits (their handlers are dropped).
  void cancel();

private:
  struct Impl;
  std::shared_ptr<Impl> m_impl; // shared with pending handlers, which check it is still alive
};

// A one-shot timer; setting it again replaces the pending expiry.
class EventLoop::Timer {
public:
  explicit Timer(EventLoop& loop);
  ~Timer();
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  // `fn` runs on the loop's thread at `when` (not when cancelled or replaced first).
  void at(Clock::time_point when, std::function<void()> fn);
  void cancel();
  bool pending() const;

private:
  struct Impl;
  std::shared_ptr<Impl> m_impl; // shared with pending handlers, which check it is still alive
};

} // namespace smcp::exec
