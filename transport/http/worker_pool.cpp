#include "transport/http/worker_pool.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace smcp::transport::http {

WorkerPool::WorkerPool(std::size_t max_threads) : m_max(std::max<std::size_t>(max_threads, 2)) {}

WorkerPool::~WorkerPool() {
  shutdown();
}

void WorkerPool::enqueue(std::function<void()> fn) {
  {
    std::lock_guard lock(m_mutex);
    if (m_shutdown) {
      return;
    }
    m_jobs.push_back(std::move(fn));
    if (m_jobs.size() > m_idle) {
      if (m_threads.size() < m_max) {
        m_threads.emplace_back([this] { work(); });
      } else if (!m_warned) {
        m_warned = true;
        spdlog::warn("http: all {} request handlers are busy; further requests wait (raise --max-connections)", m_max);
      }
    }
  }
  m_cv.notify_one();
}

void WorkerPool::shutdown() {
  {
    std::lock_guard lock(m_mutex);
    m_shutdown = true;
  }
  m_cv.notify_all();
  for (auto& t : m_threads) {
    if (t.joinable()) {
      t.join();
    }
  }
}

void WorkerPool::work() {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock lock(m_mutex);
      ++m_idle;
      m_cv.wait(lock, [&] { return !m_jobs.empty() || m_shutdown; });
      --m_idle;
      if (m_jobs.empty()) {
        return; // shutdown
      }
      job = std::move(m_jobs.front());
      m_jobs.pop_front();
    }
    job();
  }
}

} // namespace smcp::transport::http
