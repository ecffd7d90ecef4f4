#include "transport/http/reply_sink.h"

#include "transport/http/jsonrpc.h"
#include "transport/http_request.h"

namespace smcp::transport::http {

ReplySink::ReplySink(std::shared_ptr<HttpSession> session, std::vector<std::string> request_ids)
    : m_activity(std::make_unique<Activity>(session)), m_unanswered(request_ids.begin(), request_ids.end()) {}

std::shared_ptr<ReplySink> ReplySink::create(const std::shared_ptr<HttpSession>& session, std::string_view body) {
  auto sink = std::make_shared<ReplySink>(session, request_ids(body));
  std::lock_guard lock(session->mutex);
  std::erase_if(session->pending, [](const auto& w) { return w.expired(); });
  session->pending.push_back(sink);
  return sink;
}

void ReplySink::send(std::string message) {
  std::lock_guard lock(m_mutex);
  if (m_ended) {
    return;
  }
  if (!m_unanswered.empty()) {
    if (auto id = response_id(message)) {
      m_unanswered.erase(*id);
    }
  }
  queue(std::move(message));
}

void ReplySink::end() {
  {
    std::lock_guard lock(m_mutex);
    if (m_ended) {
      return;
    }
    end_locked();
  }
  m_cv.notify_all();
}

void ReplySink::abort(const std::string& why) {
  {
    std::lock_guard lock(m_mutex);
    if (m_ended) {
      return;
    }
    for (const auto& id : m_unanswered) {
      queue(error_message(k_code_transport, why, id));
    }
    m_unanswered.clear();
    end_locked();
  }
  m_cv.notify_all();
}

void ReplySink::queue(std::string message) {
  if (m_stream) {
    m_stream->push(std::move(message));
  } else {
    m_messages.push_back(std::move(message));
  }
}

void ReplySink::end_locked() {
  m_ended = true;
  if (m_stream) {
    m_stream->finish();
  }
  m_activity.reset();
}

void UnsolicitedSink::send(std::string message) {
  if (auto stream = m_stream.lock()) {
    stream->push(std::move(message));
  }
}

} // namespace smcp::transport::http
