#include "mcp-server/app/signals.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <csignal>
#include <pthread.h>
#include <thread>

namespace smcp::app {

namespace {

sigset_t termination_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  return set;
}

} // namespace

void block_termination_signals() {
  sigset_t set = termination_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int run_until_signal(const std::function<int()>& run, const std::function<void()>& stop) {
  std::atomic<bool> done{false};
  std::thread waiter([&] {
    sigset_t set = termination_signals();
    int sig = 0;
    sigwait(&set, &sig);
    if (!done) {
      spdlog::info("{} received, shutting down", sig == SIGINT ? "SIGINT" : sig == SIGHUP ? "SIGHUP" : "SIGTERM");
      stop();
    }
  });
  int rc = run();
  done = true;
  // Ends the waiter (blocked in sigwait for exactly these signals) if no signal came.
  pthread_kill(waiter.native_handle(), SIGTERM); // NOLINT(bugprone-bad-signal-to-kill-thread)
  waiter.join();
  return rc;
}

} // namespace smcp::app
