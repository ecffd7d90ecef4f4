// Protocol versions, serialization, and the Server: it opens a Session per client (session.h),
// counts their worker threads and passes resource changes and log messages to them.
#include "mcp-server/core/protocol.h"

#include "mcp-server/core/session.h"

namespace smcp::mcp {

const std::vector<std::string>& supported_protocol_versions() {
  static const std::vector<std::string> versions = {"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"};
  return versions;
}

bool is_supported_protocol_version(std::string_view version) {
  for (const auto& v : supported_protocol_versions()) {
    if (v == version) {
      return true;
    }
  }
  return false;
}

std::string serialize(const json& message) {
  return message.dump(-1, ' ', false, json::error_handler_t::replace);
}

Server::Server(ServerOptions options, std::shared_ptr<const ToolRegistry> tools,
               std::shared_ptr<ResourceProvider> resources)
    : m_options(std::move(options)), m_tools(std::move(tools)), m_resources(std::move(resources)) {}

std::shared_ptr<transport::Endpoint> Server::open(std::shared_ptr<transport::MessageSink> unsolicited) {
  auto session = std::make_shared<detail::Session>(shared_from_this(), std::move(unsolicited));
  std::lock_guard lock(m_sessions_mutex);
  std::erase_if(m_sessions, [](const auto& w) { return w.expired(); });
  m_sessions.push_back(session);
  return session;
}

void Server::worker_started() {
  std::lock_guard lock(m_workers_mutex);
  ++m_workers;
}

void Server::worker_finished() {
  std::lock_guard lock(m_workers_mutex);
  --m_workers;
  m_workers_idle.notify_all();
}

bool Server::wait_idle(std::chrono::milliseconds timeout) {
  std::unique_lock lock(m_workers_mutex);
  return m_workers_idle.wait_for(lock, timeout, [&] { return m_workers == 0; });
}

std::vector<std::shared_ptr<ResourceSubscriber>> Server::live_sessions() {
  std::vector<std::shared_ptr<ResourceSubscriber>> live;
  std::lock_guard lock(m_sessions_mutex);
  for (const auto& w : m_sessions) {
    if (auto s = w.lock()) {
      live.push_back(std::move(s));
    }
  }
  return live;
}

void Server::broadcast_log(LogLevel level, const std::string& logger, const std::string& text) {
  for (auto& s : live_sessions()) {
    s->server_log(level, logger, text);
  }
}

void Server::notify_resource_updated(const std::string& uri) {
  for (auto& s : live_sessions()) {
    s->resource_updated(uri);
  }
}

} // namespace smcp::mcp
