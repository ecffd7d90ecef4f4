// Internal to transport/ (the Streamable HTTP transport): one Mcp-Session-Id and what keeps it busy.
#pragma once

#include "transport/http/sse_stream.h"
#include "transport/transport.h"

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace smcp::transport::http {

using Clock = std::chrono::steady_clock;

// Completed POST streams a client may still resume, per session (oldest dropped first).
constexpr std::size_t k_max_retained_streams = 32;

class ReplySink;

struct HttpSession {
  std::string id;
  std::shared_ptr<Endpoint> endpoint;
  std::shared_ptr<SseStream> standalone; // stream 0, the GET stream

  std::mutex mutex; // guards everything below
  Clock::time_point last_used = Clock::now();
  int busy = 0;
  std::atomic<bool> closed{false}; // also read without the mutex by SSE writers
  std::uint64_t next_stream = 1;
  std::map<std::uint64_t, std::shared_ptr<SseStream>> streams; // POST streams still resumable
  std::set<std::uint64_t> lost_streams;                        // dropped with undelivered events
  std::vector<std::weak_ptr<SseStream>> idle_streams;          // resumed complete streams held open
  std::vector<std::weak_ptr<ReplySink>> pending;               // replies still owed

  // A new session with a fresh random id, its GET stream (keeping `history` events) and its
  // protocol endpoint.
  static std::shared_ptr<HttpSession> open(EndpointFactory& factory, std::size_t history);

  // A new POST stream, retained for resumption.
  std::shared_ptr<SseStream> new_stream(std::size_t history);

  // Answers every request still owed with an error saying `why` (the streams carry it, then end),
  // marks the session ended and ends its GET stream; the caller closes the endpoint.
  void end(const std::string& why);
};

// Activity on a session: requests being handled, attached SSE writers and replies still owed keep
// it from idle expiry and from eviction; the last one to end stamps the time.
class Activity {
public:
  explicit Activity(std::shared_ptr<HttpSession> session);
  ~Activity();
  Activity(const Activity&) = delete;
  Activity& operator=(const Activity&) = delete;

private:
  std::shared_ptr<HttpSession> m_session;
};

} // namespace smcp::transport::http
