// Internal to transport/ (the Streamable HTTP transport): the threads that run request handlers.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace smcp::transport::http {

// Handlers of complete requests run here (the protocol core may block, e.g. a JSON-only client
// waiting for a tool call). Grows on demand up to `max` threads, which stay for reuse.
class WorkerPool {
public:
  explicit WorkerPool(std::size_t max_threads);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  void enqueue(std::function<void()> fn);
  // Runs the queued jobs, then joins every thread; later jobs are dropped.
  void shutdown();

private:
  void work();

  const std::size_t m_max;
  std::mutex m_mutex;
  std::condition_variable m_cv;
  std::deque<std::function<void()>> m_jobs;
  std::vector<std::thread> m_threads;
  std::size_t m_idle = 0;
  bool m_shutdown = false;
  bool m_warned = false;
};

} // namespace smcp::transport::http
