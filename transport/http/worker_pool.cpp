#include "transport/http/worker_pool.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace smcp::transport::http {

namespace {
constexpr std::size_t k_always = 2; // threads that never end for idleness
} // namespace

WorkerPool::WorkerPool(std::size_t max_threads, std::chrono::milliseconds idle_exit)
    : m_max(std::max<std::size_t>(max_threads, k_always)), m_idle_exit(idle_exit) {}

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
    reap();
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

std::size_t WorkerPool::threads() {
  std::lock_guard lock(m_mutex);
  return m_threads.size() - m_ended.size();
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

void WorkerPool::reap() {
  for (const auto id : m_ended) {
    auto it = std::find_if(m_threads.begin(), m_threads.end(), [&](const std::thread& t) { return t.get_id() == id; });
    if (it != m_threads.end()) {
      it->join(); // it returned right after adding itself, under this lock
      m_threads.erase(it);
    }
  }
  m_ended.clear();
}

void WorkerPool::work() {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock lock(m_mutex);
      ++m_idle;
      const bool woken = m_cv.wait_for(lock, m_idle_exit, [&] { return !m_jobs.empty() || m_shutdown; });
      --m_idle;
      if (!woken && m_threads.size() - m_ended.size() > k_always) {
        m_ended.push_back(std::this_thread::get_id()); // joined by the next enqueue or shutdown
        return;
      }
      if (m_jobs.empty()) {
        if (m_shutdown) {
          return;
        }
        continue;
      }
      job = std::move(m_jobs.front());
      m_jobs.pop_front();
    }
    job();
  }
}

} // namespace smcp::transport::http
