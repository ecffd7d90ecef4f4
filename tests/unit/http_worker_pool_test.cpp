// The HTTP server's handler threads (transport/http/worker_pool.h): they grow with a burst of
// requests and end again once idle, so a burst (e.g. refused requests from clients without the
// token) does not keep hundreds of threads for good.
#include "transport/http/worker_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace smcp::transport::http {
namespace {

using namespace std::chrono_literals;

TEST(HttpWorkerPool, GrowsForABurstAndShrinksWhenIdle) {
  WorkerPool pool(64, 200ms);
  std::mutex mutex;
  std::condition_variable cv;
  bool release = false;
  std::atomic<int> running{0};
  std::atomic<int> done{0};
  for (int i = 0; i < 10; ++i) {
    pool.enqueue([&] {
      ++running;
      std::unique_lock lock(mutex);
      cv.wait(lock, [&] { return release; });
      ++done;
    });
  }
  for (int i = 0; i < 500 && running.load() < 10; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(running.load(), 10) << "ten blocking jobs run at once";
  EXPECT_EQ(pool.threads(), 10u);
  {
    std::lock_guard lock(mutex);
    release = true;
  }
  cv.notify_all();
  for (int i = 0; i < 300 && pool.threads() > 2; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(done.load(), 10);
  EXPECT_EQ(pool.threads(), 2u) << "idle threads beyond two end";
  // The pool still works after shrinking, and the ended threads were joined (no leak at exit).
  std::atomic<int> after{0};
  for (int i = 0; i < 5; ++i) {
    pool.enqueue([&] { ++after; });
  }
  for (int i = 0; i < 300 && after.load() < 5; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(after.load(), 5);
  pool.shutdown();
}

// A light steady load after a burst does not keep the burst's threads: the most recently idle
// thread takes each job, so the others reach their idle end. (Handing jobs out in turn kept every
// thread busy once per idle period, so all stayed.)
TEST(HttpWorkerPool, ALightSteadyLoadAfterABurstKeepsOnlyTheThreadsItNeeds) {
  WorkerPool pool(64, 300ms);
  std::mutex mutex;
  std::condition_variable cv;
  bool release = false;
  std::atomic<int> running{0};
  for (int i = 0; i < 10; ++i) {
    pool.enqueue([&] {
      ++running;
      std::unique_lock lock(mutex);
      cv.wait(lock, [&] { return release; });
    });
  }
  for (int i = 0; i < 500 && running.load() < 10; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_EQ(pool.threads(), 10u);
  {
    std::lock_guard lock(mutex);
    release = true;
  }
  cv.notify_all();
  std::atomic<int> done{0};
  for (int i = 0; i < 60; ++i) { // one short job every 20 ms for 1.2 s: 15 per idle period
    pool.enqueue([&] { ++done; });
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_LE(pool.threads(), 3u) << "a trickle kept the burst's threads alive";
  EXPECT_EQ(done.load(), 60);
  pool.shutdown();
}

} // namespace
} // namespace smcp::transport::http
