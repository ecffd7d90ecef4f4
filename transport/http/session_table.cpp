#include "transport/http/session_table.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace smcp::transport::http {

using namespace std::chrono_literals;

SessionTable::SessionTable(const HttpOptions& options, const std::atomic<bool>& stopping)
    : m_options(options), m_stopping(stopping) {}

std::size_t SessionTable::size() const {
  std::lock_guard lock(m_mutex);
  return m_sessions.size();
}

std::shared_ptr<HttpSession> SessionTable::find(const std::string& id) const {
  std::lock_guard lock(m_mutex);
  auto it = m_sessions.find(id);
  return it == m_sessions.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<HttpSession>> SessionTable::all() const {
  std::lock_guard lock(m_mutex);
  return all_locked();
}

std::vector<std::shared_ptr<HttpSession>> SessionTable::take_all() {
  std::lock_guard lock(m_mutex);
  auto out = all_locked();
  m_sessions.clear();
  return out;
}

std::vector<std::shared_ptr<HttpSession>> SessionTable::all_locked() const {
  std::vector<std::shared_ptr<HttpSession>> out;
  for (auto& [id, s] : m_sessions) {
    out.push_back(s);
  }
  return out;
}

std::shared_ptr<HttpSession> SessionTable::least_recently_used_idle_session() {
  std::shared_ptr<HttpSession> lru;
  Clock::time_point oldest = Clock::time_point::max();
  for (auto& [id, s] : m_sessions) {
    std::lock_guard slock(s->mutex);
    if (s->busy == 0 && s->last_used < oldest) {
      oldest = s->last_used;
      lru = s;
    }
  }
  return lru;
}

bool SessionTable::reserve(const std::string& remote_addr) {
  std::shared_ptr<HttpSession> evicted;
  std::size_t open = 0;
  {
    std::lock_guard lock(m_mutex);
    open = m_sessions.size();
    if (m_sessions.size() + m_creating >= m_options.max_sessions) {
      evicted = least_recently_used_idle_session();
      if (!evicted) {
        spdlog::warn("http: refused a new session from {}: {} sessions open (limit {}), all of them in use",
                     remote_addr, m_sessions.size(), m_options.max_sessions);
        return false;
      }
      m_sessions.erase(evicted->id);
    }
    ++m_creating;
  }
  if (evicted) {
    long long idle_s;
    {
      std::lock_guard slock(evicted->mutex);
      idle_s = std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - evicted->last_used).count();
    }
    spdlog::info("http: session {}... evicted (least recently used, idle {} s) to admit a new session from {}: "
                 "{} sessions open (--max-sessions {})",
                 evicted->id.substr(0, 8), idle_s, remote_addr, open, m_options.max_sessions);
    evicted->end("the session was evicted to admit a new one (--max-sessions reached)");
    schedule_close(evicted);
  }
  return true;
}

void SessionTable::unreserve() {
  std::lock_guard lock(m_mutex);
  --m_creating;
}

void SessionTable::add(std::shared_ptr<HttpSession> session) {
  std::lock_guard lock(m_mutex);
  auto id = session->id;
  m_sessions.emplace(std::move(id), std::move(session));
}

void SessionTable::remove(const std::string& id) {
  std::lock_guard lock(m_mutex);
  m_sessions.erase(id);
}

void SessionTable::schedule_close(std::shared_ptr<HttpSession> session) {
  {
    std::lock_guard lock(m_close_mutex);
    m_close_queue.push_back(std::move(session));
  }
  m_reaper_cv.notify_all();
}

void SessionTable::drain_close_queue() {
  for (;;) {
    std::shared_ptr<HttpSession> session;
    {
      std::lock_guard lock(m_close_mutex);
      if (m_close_queue.empty()) {
        return;
      }
      session = std::move(m_close_queue.front());
      m_close_queue.pop_front();
    }
    session->endpoint->close();
  }
}

void SessionTable::start_reaper() {
  m_reaper = std::thread([this] { reap_loop(); });
}

void SessionTable::wake_reaper() {
  {
    std::lock_guard lock(m_close_mutex); // the reaper sees m_stopping or gets the notification
  }
  m_reaper_cv.notify_all();
}

void SessionTable::join_reaper() {
  m_reaper_cv.notify_all();
  if (m_reaper.joinable()) {
    m_reaper.join();
  }
}

void SessionTable::reap_loop() {
  const auto period = std::clamp<std::chrono::milliseconds>(
      std::chrono::duration_cast<std::chrono::milliseconds>(m_options.session_idle_timeout) / 10, 100ms, 5000ms);
  while (!m_stopping.load()) {
    {
      std::unique_lock lock(m_close_mutex);
      m_reaper_cv.wait_for(lock, period, [&] { return m_stopping.load() || !m_close_queue.empty(); });
    }
    drain_close_queue();
    expire_idle_sessions();
  }
  drain_close_queue();
}

void SessionTable::expire_idle_sessions() {
  std::vector<std::shared_ptr<HttpSession>> expired;
  const auto now = Clock::now();
  {
    std::lock_guard lock(m_mutex);
    for (auto it = m_sessions.begin(); it != m_sessions.end();) {
      bool idle;
      {
        std::lock_guard slock(it->second->mutex);
        idle = it->second->busy == 0 && now - it->second->last_used > m_options.session_idle_timeout;
      }
      if (idle) {
        expired.push_back(it->second);
        it = m_sessions.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& s : expired) {
    spdlog::info("http: session {}... expired after {} s without requests", s->id.substr(0, 8),
                 m_options.session_idle_timeout.count());
    s->end("the session expired");
    s->endpoint->close();
  }
}

} // namespace smcp::transport::http
