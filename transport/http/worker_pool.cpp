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
    if (!m_waiters.empty()) {
      // The most recently idle thread takes it: under a light load the same few threads serve,
      // and the others reach their idle end.
      Waiter* w = m_waiters.back();
      m_waiters.pop_back();
      w->woken = true;
      w->cv.notify_one();
    } else if (m_threads.size() < m_max) {
      m_threads.emplace_back([this] { work(); });
    } else if (!m_warned) {
      m_warned = true;
      spdlog::warn("http: all {} request handlers are busy; further requests wait (raise --max-connections)", m_max);
    }
  }
}

std::size_t WorkerPool::threads() {
  std::lock_guard lock(m_mutex);
  return m_threads.size() - m_ended.size();
}

void WorkerPool::shutdown() {
  {
    std::lock_guard lock(m_mutex);
    m_shutdown = true;
    for (Waiter* w : m_waiters) {
      w->cv.notify_one();
    }
  }
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
      while (m_jobs.empty() && !m_shutdown) {
        Waiter w;
        m_waiters.push_back(&w);
        const bool woken = w.cv.wait_for(lock, m_idle_exit, [&] { return w.woken || m_shutdown; });
        if (!w.woken) {
          std::erase(m_waiters, &w);
        }
        if (!woken && m_jobs.empty() && m_threads.size() - m_ended.size() > k_always) {
          m_ended.push_back(std::this_thread::get_id()); // joined by the next enqueue or shutdown
          return;
        }
      }
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
