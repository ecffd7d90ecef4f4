#include "transport/memory_transport.h"

namespace smcp::transport {

class MemoryConnection::Sink final : public MessageSink {
public:
  void send(std::string message) override {
    {
      std::lock_guard lock(m_mutex);
      m_queue.push_back(std::move(message));
    }
    m_cv.notify_all();
  }
  void end() override {
    std::lock_guard lock(m_mutex);
    ++m_ends;
  }

  std::optional<std::string> next(std::chrono::milliseconds timeout) {
    std::unique_lock lock(m_mutex);
    if (!m_cv.wait_for(lock, timeout, [&] { return !m_queue.empty(); })) {
      return std::nullopt;
    }
    std::string m = std::move(m_queue.front());
    m_queue.pop_front();
    return m;
  }
  std::size_t pending() const {
    std::lock_guard lock(m_mutex);
    return m_queue.size();
  }
  std::size_t ends() const {
    std::lock_guard lock(m_mutex);
    return m_ends;
  }

private:
  mutable std::mutex m_mutex;
  std::condition_variable m_cv;
  std::deque<std::string> m_queue;
  std::size_t m_ends = 0;
};

MemoryConnection::MemoryConnection(EndpointFactory& factory)
    : m_sink(std::make_shared<Sink>()), m_endpoint(factory.open(m_sink)) {}

MemoryConnection::~MemoryConnection() {
  close();
}

void MemoryConnection::send(std::string_view raw) {
  m_endpoint->receive(raw, m_sink);
}

void MemoryConnection::send_oversized(std::size_t bytes, std::size_t limit) {
  m_endpoint->receive_oversized(bytes, limit, m_sink);
}

std::optional<std::string> MemoryConnection::next(std::chrono::milliseconds timeout) {
  return m_sink->next(timeout);
}

std::size_t MemoryConnection::pending() const {
  return m_sink->pending();
}

std::size_t MemoryConnection::ends() const {
  return m_sink->ends();
}

void MemoryConnection::close() {
  if (!m_closed) {
    m_closed = true;
    m_endpoint->close();
  }
}

} // namespace smcp::transport
