// Internal to transport/ (the Streamable HTTP transport): the SSE streams of a session, kept for
// replay after Last-Event-ID, and the writer that turns one into the bytes of a response.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

namespace smcp::transport::http {

struct HttpSession;

// One SSE stream of a session: the events written to it, kept (bounded) so that a client can
// resume with Last-Event-ID after its connection broke. Index 0 is the session's GET stream;
// every POST answered with SSE gets its own. Event ids are "<stream>-<seq>", unique in a session.
// The connection writing it is woken through `notify` (never blocks the protocol core).
class SseStream {
public:
  SseStream(std::uint64_t index, std::size_t history);

  std::uint64_t index() const { return m_index; }

  // Appends an event; an empty `data` is the priming event (an id to resume from, no message).
  void push(std::string data, std::optional<long long> retry_ms = std::nullopt);
  // No more events: writers end the response once they have sent everything.
  void finish();
  // Ends writers at once (the GET stream of an ended session).
  void close();
  // Lets the writer look again (e.g. at its session having ended).
  void wake();

  // A connection takes over the stream; the previous writer is woken and ends. Returns the new
  // writer's generation.
  std::uint64_t attach(std::function<void()> notify);
  void detach(std::uint64_t generation);

  bool finished_and_delivered() const;
  std::uint64_t delivered() const;
  // Whether a writer starting at `cursor` would have nothing to send, ever.
  bool exhausted_at(std::uint64_t cursor) const;
  // Whether `seq` names an event this stream has issued.
  bool issued(std::uint64_t seq) const;

  std::string event_id(std::uint64_t seq) const;

private:
  friend class SseWriter;

  struct Event {
    std::uint64_t seq;
    std::string data; // one serialized JSON-RPC message; empty for the priming event
    std::optional<long long> retry_ms;
  };

  // Runs `change` under the lock, then wakes the writer (outside the lock).
  template <typename Change> void change_and_notify(Change change);

  const std::uint64_t m_index;
  const std::size_t m_history;
  mutable std::mutex m_mutex;
  std::deque<Event> m_events;
  std::function<void()> m_notify;
  std::uint64_t m_next_seq = 0;
  std::uint64_t m_delivered = 0; // events before this were written to some connection
  std::uint64_t m_generation = 0;
  bool m_finished = false;
  bool m_closed = false;
};

// Turns one SSE stream, from `cursor` on, into the bytes of an event-stream response: the I/O thread
// pulls what is new whenever the stream notifies it. The response ends once the stream is finished
// and written (with `hold_open`, not even then: a resumed, already complete stream stays open idle,
// as the reference server does, so that clients do not reconnect in a loop), when another
// connection takes the stream over, or when the session ends.
class SseWriter {
public:
  SseWriter(std::shared_ptr<HttpSession> session, std::shared_ptr<SseStream> stream, std::uint64_t cursor,
            bool hold_open);

  void attach(std::function<void()> notify) { m_generation = m_stream->attach(std::move(notify)); }
  void detach() { m_stream->detach(m_generation); }

  // Appends the events not yet written to `out`; returns true when the response ends after them.
  bool pull(std::string& out);
  // What the last pull() returned reached the socket.
  void written();

private:
  static void append_event(std::string& out, const SseStream& s, const SseStream::Event& event);

  std::shared_ptr<HttpSession> m_session;
  std::shared_ptr<SseStream> m_stream;
  std::uint64_t m_cursor;
  std::uint64_t m_pulled = 0;
  bool m_hold_open;
  std::uint64_t m_generation = 0;
};

} // namespace smcp::transport::http
