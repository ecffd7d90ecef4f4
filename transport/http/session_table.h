// Internal to transport/ (the Streamable HTTP transport): the open sessions, their bound
// (least-recently-used eviction), their idle expiry, and the thread that closes ended ones.
#pragma once

#include "transport/http/session.h"
#include "transport/http_transport.h"

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace smcp::transport::http {

class SessionTable {
public:
  // `stopping` ends the reaper thread (with wake_reaper()).
  SessionTable(const HttpOptions& options, const std::atomic<bool>& stopping);
  SessionTable(const SessionTable&) = delete;
  SessionTable& operator=(const SessionTable&) = delete;

  std::size_t size() const;
  // The open session with this id; null when none.
  std::shared_ptr<HttpSession> find(const std::string& id) const;
  std::vector<std::shared_ptr<HttpSession>> all() const;
  // Removes every session and returns them (shutdown).
  std::vector<std::shared_ptr<HttpSession>> take_all();

  // Makes room for one session that is about to be created for `remote_addr`: at max_sessions the
  // least recently used idle session is ended (and closed on the reaper). False when every session
  // is in use. Each true is followed by one unreserve(), after add() or when creation failed.
  bool reserve(const std::string& remote_addr);
  void unreserve();
  void add(std::shared_ptr<HttpSession> session);
  void remove(const std::string& id);

  // Closing an endpoint waits for its cancelled tool calls; the reaper thread does it.
  void schedule_close(std::shared_ptr<HttpSession> session);
  void drain_close_queue();

  // The reaper closes scheduled sessions and expires idle ones until `stopping`.
  void start_reaper();
  void wake_reaper();
  void join_reaper();

private:
  void reap_loop();
  void expire_idle_sessions();
  std::vector<std::shared_ptr<HttpSession>> all_locked() const;
  // Called with m_mutex held; null when every session is in use.
  std::shared_ptr<HttpSession> least_recently_used_idle_session();

  const HttpOptions& m_options;
  const std::atomic<bool>& m_stopping;

  mutable std::mutex m_mutex;
  std::map<std::string, std::shared_ptr<HttpSession>> m_sessions;
  std::size_t m_creating = 0;

  std::thread m_reaper;
  std::mutex m_close_mutex;
  std::condition_variable m_reaper_cv;
  std::deque<std::shared_ptr<HttpSession>> m_close_queue;
};

} // namespace smcp::transport::http
