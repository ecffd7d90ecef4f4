// Internal to transport/ (the Streamable HTTP transport): the threads that run request handlers.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace smcp::transport::http {

// Handlers of complete requests run here (the protocol core may block, e.g. a JSON-only client
// waiting for a tool call). Grows on demand up to `max` threads; a thread idle for `idle_exit`
// ends (two always stay), so that a burst does not keep hundreds of threads for good. The most
// recently idle thread takes the next job, so a light steady load keeps only the threads it needs.
class WorkerPool {
public:
  explicit WorkerPool(std::size_t max_threads, std::chrono::milliseconds idle_exit = std::chrono::seconds(60));
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  void enqueue(std::function<void()> fn);
  // Threads alive now (not counting those that ended for idleness).
  std::size_t threads();
  // Runs the queued jobs, then joins every thread; later jobs are dropped.
  void shutdown();

private:
  void work();
  // Joins the threads that ended for idleness (under m_mutex).
  void reap();

  const std::size_t m_max;
  const std::chrono::milliseconds m_idle_exit;
  std::mutex m_mutex;
  // An idle thread, waiting; the most recently idle is woken first (a stack).
  struct Waiter {
    std::condition_variable cv;
    bool woken = false;
  };
  std::vector<Waiter*> m_waiters;
  std::deque<std::function<void()>> m_jobs;
  std::vector<std::thread> m_threads;
  std::vector<std::thread::id> m_ended; // idle threads that returned, to be joined
  bool m_shutdown = false;
  bool m_warned = false;
};

} // namespace smcp::transport::http
