#include "transport/http/session.h"

#include "transport/http/reply_sink.h"
#include "transport/http_request.h"

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <sys/random.h>

namespace smcp::transport::http {

namespace {

std::string random_session_id() {
  unsigned char bytes[session_id_bytes];
  std::size_t got = 0;
  while (got < sizeof bytes) {
    ssize_t n = ::getrandom(bytes + got, sizeof bytes - got, 0);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      throw std::runtime_error(std::string("getrandom failed: ") + std::strerror(errno));
    }
    got += static_cast<std::size_t>(n);
  }
  static const char* hex = "0123456789abcdef";
  std::string id;
  id.reserve(2 * sizeof bytes);
  for (unsigned char b : bytes) {
    id.push_back(hex[b >> 4]);
    id.push_back(hex[b & 15]);
  }
  return id;
}

} // namespace

std::shared_ptr<HttpSession> HttpSession::open(EndpointFactory& factory, std::size_t history) {
  auto session = std::make_shared<HttpSession>();
  session->id = random_session_id();
  session->standalone = std::make_shared<SseStream>(0, history);
  session->endpoint = factory.open(std::make_shared<UnsolicitedSink>(session->standalone));
  return session;
}

std::shared_ptr<SseStream> HttpSession::new_stream(std::size_t history) {
  std::lock_guard lock(mutex);
  auto stream = std::make_shared<SseStream>(next_stream++, history);
  streams.emplace(stream->index(), stream);
  while (streams.size() > k_max_retained_streams) {
    // Oldest first; a stream with a live writer or owed events is "lost" to a later resume.
    auto oldest = streams.begin();
    if (!oldest->second->finished_and_delivered()) {
      lost_streams.insert(oldest->first);
    }
    streams.erase(oldest);
  }
  return stream;
}

void HttpSession::end(const std::string& why) {
  std::vector<std::shared_ptr<ReplySink>> owed;
  {
    std::lock_guard lock(mutex);
    for (auto& w : pending) {
      if (auto sink = w.lock()) {
        owed.push_back(std::move(sink));
      }
    }
    pending.clear();
  }
  for (auto& sink : owed) {
    sink->abort(why);
  }
  std::vector<std::shared_ptr<SseStream>> open;
  {
    std::lock_guard lock(mutex);
    closed = true;
    for (auto& [index, s] : streams) {
      open.push_back(s);
    }
    for (auto& w : idle_streams) {
      if (auto s = w.lock()) {
        open.push_back(std::move(s));
      }
    }
  }
  standalone->close();
  for (auto& s : open) {
    s->wake(); // writers see the session ended once they have written what is left
  }
}

Activity::Activity(std::shared_ptr<HttpSession> session) : m_session(std::move(session)) {
  std::lock_guard lock(m_session->mutex);
  ++m_session->busy;
  m_session->last_used = Clock::now();
}

Activity::~Activity() {
  std::lock_guard lock(m_session->mutex);
  --m_session->busy;
  m_session->last_used = Clock::now();
}

} // namespace smcp::transport::http
