// Internal to transport/ (the Streamable HTTP transport): where the protocol core answers a POST,
// and where it sends messages of its own.
#pragma once

#include "transport/http/session.h"
#include "transport/transport.h"

#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace smcp::transport::http {

// Where the protocol core answers one POST: messages are collected until the handler decides
// between a JSON answer (everything arrived while receive() ran) and an SSE stream (work goes on
// on a worker thread); after that switch they go to the stream, in the order the core sends them.
// Never blocks the core. When the session ends first (DELETE, eviction, shutdown), abort() answers
// every request of the message still unanswered with an error, so that no stream ends silently.
class ReplySink final : public MessageSink {
public:
  ReplySink(std::shared_ptr<HttpSession> session, std::vector<std::string> request_ids);

  // A sink for the requests of `body`, registered with the session as a reply still owed.
  static std::shared_ptr<ReplySink> create(const std::shared_ptr<HttpSession>& session, std::string_view body);

  void send(std::string message) override;
  void end() override;
  void abort(const std::string& why);

  // Guarded by m_mutex; m_cv is notified when m_ended becomes true.
  std::mutex m_mutex;
  std::condition_variable m_cv;
  std::vector<std::string> m_messages; // collected until m_stream is set
  std::shared_ptr<SseStream> m_stream;
  bool m_ended = false;

private:
  // With m_mutex held: to the stream once there is one, else collected.
  void queue(std::string message);
  // With m_mutex held: no more messages; the stream finishes, the session's activity ends.
  void end_locked();

  std::unique_ptr<Activity> m_activity;
  std::set<std::string> m_unanswered; // serialized ids of the requests without a response yet
};

// Server-initiated messages not tied to a request go to the session's GET stream (kept, bounded,
// until a GET connection takes them).
class UnsolicitedSink final : public MessageSink {
public:
  explicit UnsolicitedSink(std::weak_ptr<SseStream> stream) : m_stream(std::move(stream)) {}
  void send(std::string message) override;

private:
  std::weak_ptr<SseStream> m_stream;
};

} // namespace smcp::transport::http
