#include "mcp-server/app/logging.h"

#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

namespace smcp::app {

namespace {

thread_local bool t_forwarding = false; // set on the forwarder's thread

mcp::LogLevel mcp_level(spdlog::level::level_enum level) {
  switch (level) {
  case spdlog::level::trace:
  case spdlog::level::debug:
    return mcp::LogLevel::debug;
  case spdlog::level::info:
    return mcp::LogLevel::info;
  case spdlog::level::warn:
    return mcp::LogLevel::warning;
  case spdlog::level::err:
    return mcp::LogLevel::error;
  default:
    return mcp::LogLevel::critical;
  }
}

// Queues log records and delivers them to the server's sessions from one thread. The queue is
// bounded: under a flood, the oldest records are dropped rather than memory grown.
class Forwarder {
public:
  static Forwarder& instance() {
    static Forwarder* f = new Forwarder(); // never destroyed: loggers may log during exit
    return *f;
  }

  void set_server(std::shared_ptr<mcp::Server> server) {
    std::lock_guard lock(m_mutex);
    m_server = server;
    m_active = server != nullptr;
    if (server && !m_thread.joinable()) {
      m_thread = std::thread([this] { run(); });
      m_thread.detach();
    }
  }

  void push(mcp::LogLevel level, std::string text) {
    if (t_forwarding) {
      return;
    }
    std::lock_guard lock(m_mutex);
    if (!m_active) {
      return;
    }
    if (m_queue.size() >= k_max_queue) {
      m_queue.pop_front();
    }
    m_queue.emplace_back(level, std::move(text));
    m_cv.notify_one();
  }

private:
  static constexpr std::size_t k_max_queue = 1000;

  void run() {
    t_forwarding = true;
    std::unique_lock lock(m_mutex);
    for (;;) {
      m_cv.wait(lock, [&] { return !m_queue.empty(); });
      auto [level, text] = std::move(m_queue.front());
      m_queue.pop_front();
      auto server = m_server.lock();
      lock.unlock();
      if (server) {
        server->broadcast_log(level, "sandbox-mcp", text);
      }
      server.reset();
      lock.lock();
    }
  }

  std::mutex m_mutex;
  std::condition_variable m_cv;
  std::deque<std::pair<mcp::LogLevel, std::string>> m_queue;
  std::weak_ptr<mcp::Server> m_server;
  bool m_active = false;
  std::thread m_thread;
};

class ForwardSink final : public spdlog::sinks::base_sink<std::mutex> {
protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    Forwarder::instance().push(mcp_level(msg.level), std::string(msg.payload.data(), msg.payload.size()));
  }
  void flush_() override {}
};

} // namespace

void setup_logging(const std::string& stderr_level) {
  auto to_stderr = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  const auto level = spdlog::level::from_str(stderr_level);
  to_stderr->set_level(level);
  auto forward = std::make_shared<ForwardSink>();
  const auto forward_level = std::min(level, spdlog::level::info);
  forward->set_level(forward_level);
  auto logger = std::make_shared<spdlog::logger>("sandbox-mcp", spdlog::sinks_init_list{to_stderr, forward});
  logger->set_level(forward_level);
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%^%l%$] %v");
  spdlog::flush_on(spdlog::level::info);
}

void forward_logs_to(std::shared_ptr<mcp::Server> server) {
  Forwarder::instance().set_server(std::move(server));
}

} // namespace smcp::app
