#include "transport/http/sse_stream.h"

#include "transport/http/session.h"

#include <algorithm>
#include <utility>

namespace smcp::transport::http {

SseStream::SseStream(std::uint64_t index, std::size_t history)
    : m_index(index), m_history(std::max<std::size_t>(history, 1)) {}

template <typename Change> void SseStream::change_and_notify(Change change) {
  std::function<void()> notify;
  {
    std::lock_guard lock(m_mutex);
    if (!change()) {
      return;
    }
    notify = m_notify;
  }
  if (notify) {
    notify();
  }
}

void SseStream::push(std::string data, std::optional<long long> retry_ms) {
  change_and_notify([&] {
    if (m_finished || m_closed) {
      return false;
    }
    m_events.push_back({m_next_seq++, std::move(data), retry_ms});
    while (m_events.size() > m_history) {
      m_events.pop_front();
    }
    return true;
  });
}

void SseStream::finish() {
  change_and_notify([&] { return m_finished = true; });
}

void SseStream::close() {
  change_and_notify([&] { return m_closed = true; });
}

void SseStream::wake() {
  change_and_notify([] { return true; });
}

std::uint64_t SseStream::attach(std::function<void()> notify) {
  std::function<void()> previous;
  std::uint64_t generation;
  {
    std::lock_guard lock(m_mutex);
    generation = ++m_generation;
    previous = std::exchange(m_notify, std::move(notify));
  }
  if (previous) {
    previous();
  }
  return generation;
}

void SseStream::detach(std::uint64_t generation) {
  std::lock_guard lock(m_mutex);
  if (generation == m_generation) {
    m_notify = nullptr;
  }
}

bool SseStream::finished_and_delivered() const {
  std::lock_guard lock(m_mutex);
  return m_finished && m_delivered >= m_next_seq;
}

std::uint64_t SseStream::delivered() const {
  std::lock_guard lock(m_mutex);
  return m_delivered;
}

bool SseStream::exhausted_at(std::uint64_t cursor) const {
  std::lock_guard lock(m_mutex);
  return m_finished && cursor >= m_next_seq;
}

bool SseStream::issued(std::uint64_t seq) const {
  std::lock_guard lock(m_mutex);
  return seq < m_next_seq;
}

std::string SseStream::event_id(std::uint64_t seq) const {
  return std::to_string(m_index) + "-" + std::to_string(seq);
}

SseWriter::SseWriter(std::shared_ptr<HttpSession> session, std::shared_ptr<SseStream> stream, std::uint64_t cursor,
                     bool hold_open)
    : m_session(std::move(session)), m_stream(std::move(stream)), m_cursor(cursor), m_hold_open(hold_open) {}

bool SseWriter::pull(std::string& out) {
  SseStream& s = *m_stream;
  std::lock_guard lock(s.m_mutex);
  if (s.m_closed || s.m_generation != m_generation) {
    return true;
  }
  if (m_cursor < s.m_next_seq) {
    for (const auto& event : s.m_events) {
      if (event.seq >= m_cursor) {
        append_event(out, s, event);
      }
    }
    m_cursor = s.m_next_seq;
  }
  m_pulled = m_cursor;
  if (s.m_finished && !m_hold_open) {
    return true;
  }
  // The session ended: nothing more will come to this stream.
  return m_session->closed.load();
}

void SseWriter::written() {
  SseStream& s = *m_stream;
  std::lock_guard lock(s.m_mutex);
  s.m_delivered = std::max(s.m_delivered, m_pulled);
}

void SseWriter::append_event(std::string& out, const SseStream& s, const SseStream::Event& event) {
  out += "id: ";
  out += s.event_id(event.seq);
  out += '\n';
  if (event.retry_ms) {
    out += "retry: " + std::to_string(*event.retry_ms) + "\n";
  }
  if (event.data.empty()) {
    out += "data: \n\n"; // priming event: an id to resume from, no message
    return;
  }
  out += "event: message\n";
  std::size_t start = 0;
  while (start <= event.data.size()) {
    std::size_t nl = event.data.find('\n', start);
    std::size_t end = nl == std::string::npos ? event.data.size() : nl;
    out += "data: ";
    out.append(event.data, start, end - start);
    out += '\n';
    if (nl == std::string::npos) {
      break;
    }
    start = nl + 1;
  }
  out += '\n';
}

} // namespace smcp::transport::http
