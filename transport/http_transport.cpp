// Streamable HTTP on an event-driven HTTP/1.1 server (Boost.Asio + Boost.Beast's request parser).
//
// One I/O thread owns every socket: it accepts, reads requests under deadlines that trickled bytes
// do not extend, and writes answers and SSE streams. A connection costs a socket and a buffer, not a
// thread, so half-sent requests cannot hold anything another client needs; at --max-connections
// the connection that waited longest for a complete request (never-authenticated ones first) gives
// way to a new one. Complete requests are handled on a worker pool (the protocol core may take its
// time there); answers go back to the I/O thread, in request order per connection (pipelining).
#include "transport/http_transport.h"

#include "transport/http_request.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <thread>
#include <unordered_set>

namespace smcp::transport {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;
using namespace std::chrono_literals;

// JSON-RPC codes of transport-level errors (the reference SDK uses the same).
constexpr int k_code_transport = -32000;
constexpr int k_code_session_not_found = -32001;
constexpr int k_code_parse_error = -32700;
constexpr int k_code_invalid_request = -32600;

// Completed POST streams a client may still resume, per session (oldest dropped first).
constexpr std::size_t k_max_retained_streams = 32;
// How often a waiting JSON answer checks for shutdown.
constexpr auto k_shutdown_check = 200ms;
constexpr std::size_t k_session_id_bytes = 24;
// After a response with "Connection: close": how long unread request bytes are drained before the
// socket is closed (closing with unread data would reset the connection and lose the response).
constexpr auto k_linger = 2s;
// How long stop() lets open responses flush (e.g. the error answers of cancelled calls).
constexpr auto k_shutdown_flush = 2s;

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

std::string error_body(int code, const std::string& message) {
  json body = {{"jsonrpc", "2.0"}, {"id", nullptr}, {"error", {{"code", code}, {"message", message}}}};
  return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

// A JSON value parsed at the top level only: nested objects and arrays are skipped (bounded memory,
// no deep recursion on hostile input).
std::optional<json> parse_top_level(std::string_view text, std::string* error = nullptr) {
  auto top_level_only = [](int depth, json::parse_event_t event, json&) {
    return !((event == json::parse_event_t::object_start || event == json::parse_event_t::array_start) && depth >= 1);
  };
  try {
    return json::parse(text, top_level_only);
  } catch (const json::exception& e) { // parse_error, and out_of_range for numbers like 1e400
    if (error) {
      std::string what = e.what();
      if (auto pos = what.find("parse error"); pos != std::string::npos) {
        what = what.substr(pos);
      }
      *error = what;
    }
    return std::nullopt;
  }
}

// A batch's elements, each parsed at its own top level (ids are scalars or null).
std::vector<json> messages_in(std::string_view body) {
  std::vector<json> out;
  auto skip_nested = [](int depth, json::parse_event_t event, json&) {
    return !((event == json::parse_event_t::object_start || event == json::parse_event_t::array_start) && depth >= 2);
  };
  try {
    json j = json::parse(body, skip_nested);
    if (j.is_array()) {
      for (auto& m : j) {
        out.push_back(std::move(m));
      }
    } else {
      out.push_back(std::move(j));
    }
  } catch (const json::exception&) {
  }
  return out;
}

// ------------------------------------------------------------------ request body

// A string body that keeps at most `limit` bytes: beyond it the body is counted and discarded, so
// an oversized request can be answered 413 on a connection that stays usable.
struct CappedBody {
  struct value_type {
    std::string data;
    std::uint64_t total = 0;
    std::size_t limit = 0;
    bool oversized = false;
  };

  class reader {
  public:
    template <bool isRequest, class Fields>
    reader(bhttp::header<isRequest, Fields>&, value_type& body) : m_body(body) {}

    void init(const boost::optional<std::uint64_t>& length, beast::error_code& ec) {
      if (length && *length <= m_body.limit) {
        m_body.data.reserve(static_cast<std::size_t>(*length));
      }
      ec = {};
    }

    template <class ConstBufferSequence> std::size_t put(const ConstBufferSequence& buffers, beast::error_code& ec) {
      std::size_t n = 0;
      for (auto b : beast::buffers_range_ref(buffers)) {
        n += b.size();
        if (m_body.oversized) {
          continue;
        }
        if (m_body.data.size() + b.size() > m_body.limit) {
          m_body.oversized = true;
          std::string().swap(m_body.data);
        } else {
          m_body.data.append(static_cast<const char*>(b.data()), b.size());
        }
      }
      m_body.total += n;
      ec = {};
      return n;
    }

    void finish(beast::error_code& ec) { ec = {}; }

  private:
    value_type& m_body;
  };
};

using Parser = bhttp::request_parser<CappedBody>;

std::string_view view(beast::string_view s) {
  return {s.data(), s.size()};
}

void configure(Parser& parser, const http::RequestLimits& limits) {
  parser.header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(limits.max_header_bytes, UINT32_MAX)));
  parser.body_limit(limits.drain_limit);
  parser.get().body().limit = limits.max_body_bytes;
}

// The answer to a request that could not be read: HTTP status and message.
std::pair<int, std::string> read_error_answer(const beast::error_code& ec, const http::RequestLimits& limits) {
  if (ec == bhttp::error::header_limit) {
    return {431, "Request Header Fields Too Large: the request line and headers exceed " +
                     std::to_string(limits.max_header_bytes) + " bytes"};
  }
  if (ec == bhttp::error::body_limit) {
    return {413, "Message too large: the body exceeds the limit of " + std::to_string(limits.max_body_bytes) +
                     " bytes (the server's --max-body-bytes); the connection is closed."};
  }
  if (ec == bhttp::error::bad_content_length) {
    return {400, "Bad Request: invalid Content-Length (it must be a decimal number of bytes)"};
  }
  if (ec == bhttp::error::bad_transfer_encoding) {
    return {400, "Bad Request: invalid Transfer-Encoding (only chunked is supported)"};
  }
  return {400, "Bad Request: malformed HTTP/1.1 request (" + ec.message() + ")"};
}

void fill_parsed(Parser& parser, http::ParsedRequest& out) {
  auto& req = parser.get();
  out.method = std::string(req.method_string());
  out.target = std::string(req.target());
  for (const auto& field : req) {
    out.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  auto& body = req.body();
  out.oversized = body.oversized;
  out.body_bytes = body.total;
  out.body = std::move(body.data);
  out.keep_alive = req.keep_alive();
  out.expect_continue = iequals(view(req[bhttp::field::expect]), "100-continue");
}

// ------------------------------------------------------------------ worker pool

// Handlers of complete requests run here (the protocol core may block, e.g. a JSON-only client
// waiting for a tool call). Grows on demand up to `max` threads, which stay for reuse.
class WorkerPool {
public:
  explicit WorkerPool(std::size_t max_threads) : m_max(std::max<std::size_t>(max_threads, 2)) {}
  ~WorkerPool() { shutdown(); }

  void enqueue(std::function<void()> fn) {
    {
      std::lock_guard lock(m_mutex);
      if (m_shutdown) {
        return;
      }
      m_jobs.push_back(std::move(fn));
      if (m_jobs.size() > m_idle) {
        if (m_threads.size() < m_max) {
          m_threads.emplace_back([this] { work(); });
        } else if (!m_warned) {
          m_warned = true;
          spdlog::warn("http: all {} request handlers are busy; further requests wait (raise --max-connections)",
                       m_max);
        }
      }
    }
    m_cv.notify_one();
  }

  void shutdown() {
    {
      std::lock_guard lock(m_mutex);
      m_shutdown = true;
    }
    m_cv.notify_all();
    for (auto& t : m_threads) {
      if (t.joinable()) {
        t.join();
      }
    }
  }

private:
  void work() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock lock(m_mutex);
        ++m_idle;
        m_cv.wait(lock, [&] { return !m_jobs.empty() || m_shutdown; });
        --m_idle;
        if (m_jobs.empty()) {
          return; // shutdown
        }
        job = std::move(m_jobs.front());
        m_jobs.pop_front();
      }
      job();
    }
  }

  const std::size_t m_max;
  std::mutex m_mutex;
  std::condition_variable m_cv;
  std::deque<std::function<void()>> m_jobs;
  std::vector<std::thread> m_threads;
  std::size_t m_idle = 0;
  bool m_shutdown = false;
  bool m_warned = false;
};

// ------------------------------------------------------------------ SSE streams

// One SSE stream of a session: the events written to it, kept (bounded) so that a client can
// resume with Last-Event-ID after its connection broke. Index 0 is the session's GET stream;
// every POST answered with SSE gets its own. Event ids are "<stream>-<seq>", unique in a session.
// The connection writing it is woken through `notify` (never blocks the protocol core).
class SseStream {
public:
  SseStream(std::uint64_t index, std::size_t history) : m_index(index), m_history(std::max<std::size_t>(history, 1)) {}

  std::uint64_t index() const { return m_index; }

  void push(std::string data, std::optional<long long> retry_ms = std::nullopt) {
    std::function<void()> notify;
    {
      std::lock_guard lock(m_mutex);
      if (m_finished || m_closed) {
        return;
      }
      m_events.push_back({m_next_seq++, std::move(data), retry_ms});
      while (m_events.size() > m_history) {
        if (m_events.front().seq >= m_delivered) {
          ++m_dropped;
        }
        m_events.pop_front();
      }
      notify = m_notify;
    }
    if (notify) {
      notify();
    }
  }

  // No more events: writers end the response once they have sent everything.
  void finish() {
    std::function<void()> notify;
    {
      std::lock_guard lock(m_mutex);
      m_finished = true;
      notify = m_notify;
    }
    if (notify) {
      notify();
    }
  }

  // Ends writers at once (the GET stream of an ended session).
  void close() {
    std::function<void()> notify;
    {
      std::lock_guard lock(m_mutex);
      m_closed = true;
      notify = m_notify;
    }
    if (notify) {
      notify();
    }
  }

  void wake() {
    std::function<void()> notify;
    {
      std::lock_guard lock(m_mutex);
      notify = m_notify;
    }
    if (notify) {
      notify();
    }
  }

  // A connection takes over the stream; the previous writer is woken and ends. Returns the new
  // writer's generation.
  std::uint64_t attach(std::function<void()> notify) {
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

  void detach(std::uint64_t generation) {
    std::lock_guard lock(m_mutex);
    if (generation == m_generation) {
      m_notify = nullptr;
    }
  }

  bool finished_and_delivered() const {
    std::lock_guard lock(m_mutex);
    return m_finished && m_delivered >= m_next_seq;
  }

  std::uint64_t delivered() const {
    std::lock_guard lock(m_mutex);
    return m_delivered;
  }

  // Whether a writer starting at `cursor` would have nothing to send, ever.
  bool exhausted_at(std::uint64_t cursor) const {
    std::lock_guard lock(m_mutex);
    return m_finished && cursor >= m_next_seq;
  }

  // Whether `seq` names an event this stream has issued.
  bool issued(std::uint64_t seq) const {
    std::lock_guard lock(m_mutex);
    return seq < m_next_seq;
  }

  std::string event_id(std::uint64_t seq) const { return std::to_string(m_index) + "-" + std::to_string(seq); }

private:
  friend class SseWriter;

  struct Event {
    std::uint64_t seq;
    std::string data; // one serialized JSON-RPC message; empty for the priming event
    std::optional<long long> retry_ms;
  };

  const std::uint64_t m_index;
  const std::size_t m_history;
  mutable std::mutex m_mutex;
  std::deque<Event> m_events;
  std::function<void()> m_notify;
  std::uint64_t m_next_seq = 0;
  std::uint64_t m_delivered = 0; // events before this were written to some connection
  std::uint64_t m_dropped = 0;   // undelivered events lost to the history bound
  std::uint64_t m_generation = 0;
  bool m_finished = false;
  bool m_closed = false;
};

// Activity on a session: requests being handled, attached SSE writers and replies still owed keep
// it from idle expiry and from eviction; the last one to end stamps the time.
struct HttpSession;

class Activity {
public:
  explicit Activity(std::shared_ptr<HttpSession> session);
  ~Activity();
  Activity(const Activity&) = delete;
  Activity& operator=(const Activity&) = delete;

private:
  std::shared_ptr<HttpSession> m_session;
};

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

  std::shared_ptr<SseStream> new_stream(std::size_t history) {
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
};

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

// Turns one SSE stream, from `cursor` on, into the bytes of an event-stream response: the I/O thread
// pulls what is new whenever the stream notifies it. The response ends once the stream is finished
// and written (with `hold_open`, not even then: a resumed, already complete stream stays open idle,
// as the reference server does, so that clients do not reconnect in a loop), when another
// connection takes the stream over, or when the session ends.
class SseWriter {
public:
  SseWriter(std::shared_ptr<HttpSession> session, std::shared_ptr<SseStream> stream, std::uint64_t cursor,
            bool hold_open)
      : m_session(std::move(session)), m_stream(std::move(stream)), m_cursor(cursor), m_hold_open(hold_open) {}

  void attach(std::function<void()> notify) { m_generation = m_stream->attach(std::move(notify)); }
  void detach() { m_stream->detach(m_generation); }

  // Appends the events not yet written to `out`; returns true when the response ends after them.
  bool pull(std::string& out) {
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

  // What the last pull() returned reached the socket.
  void written() {
    SseStream& s = *m_stream;
    std::lock_guard lock(s.m_mutex);
    s.m_delivered = std::max(s.m_delivered, m_pulled);
  }

  const std::shared_ptr<SseStream>& stream() const { return m_stream; }

private:
  static void append_event(std::string& out, const SseStream& s, const SseStream::Event& event) {
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

  std::shared_ptr<HttpSession> m_session;
  std::shared_ptr<SseStream> m_stream;
  std::uint64_t m_cursor;
  std::uint64_t m_pulled = 0;
  bool m_hold_open;
  std::uint64_t m_generation = 0;
};

// Where the protocol core answers one POST: messages are collected until the handler decides
// between a JSON answer (everything arrived while receive() ran) and an SSE stream (work goes on
// on a worker thread); after that switch they go to the stream, in the order the core sends them.
// Never blocks the core. When the session ends first (DELETE, eviction, shutdown), abort() answers
// every request of the message still unanswered with an error, so that no stream ends silently.
class ReplySink final : public MessageSink {
public:
  ReplySink(std::shared_ptr<HttpSession> session, std::vector<std::string> request_ids)
      : m_activity(std::make_unique<Activity>(session)), m_unanswered(request_ids.begin(), request_ids.end()) {}

  static std::shared_ptr<ReplySink> create(const std::shared_ptr<HttpSession>& session, std::string_view body) {
    auto sink = std::make_shared<ReplySink>(session, http::request_ids(body));
    std::lock_guard lock(session->mutex);
    std::erase_if(session->pending, [](const auto& w) { return w.expired(); });
    session->pending.push_back(sink);
    return sink;
  }

  void send(std::string message) override {
    std::lock_guard lock(m_mutex);
    if (m_ended) {
      return;
    }
    if (!m_unanswered.empty()) {
      if (auto id = http::response_id(message)) {
        m_unanswered.erase(*id);
      }
    }
    if (m_stream) {
      m_stream->push(std::move(message));
    } else {
      m_messages.push_back(std::move(message));
    }
  }

  void end() override {
    {
      std::lock_guard lock(m_mutex);
      if (m_ended) {
        return;
      }
      m_ended = true;
      if (m_stream) {
        m_stream->finish();
      }
      m_activity.reset();
    }
    m_cv.notify_all();
  }

  void abort(const std::string& why) {
    {
      std::lock_guard lock(m_mutex);
      if (m_ended) {
        return;
      }
      for (const auto& id : m_unanswered) {
        json error = {{"jsonrpc", "2.0"},
                      {"id", json::parse(id, nullptr, false)},
                      {"error", {{"code", k_code_transport}, {"message", why}}}};
        std::string message = error.dump(-1, ' ', false, json::error_handler_t::replace);
        if (m_stream) {
          m_stream->push(std::move(message));
        } else {
          m_messages.push_back(std::move(message));
        }
      }
      m_unanswered.clear();
      m_ended = true;
      if (m_stream) {
        m_stream->finish();
      }
      m_activity.reset();
    }
    m_cv.notify_all();
  }

  std::mutex m_mutex;
  std::condition_variable m_cv;
  std::vector<std::string> m_messages;
  std::shared_ptr<SseStream> m_stream;
  bool m_ended = false;

private:
  std::unique_ptr<Activity> m_activity;
  std::set<std::string> m_unanswered; // serialized ids of the requests without a response yet
};

// Server-initiated messages not tied to a request go to the session's GET stream (kept, bounded,
// until a GET connection takes them).
class UnsolicitedSink final : public MessageSink {
public:
  explicit UnsolicitedSink(std::weak_ptr<SseStream> stream) : m_stream(std::move(stream)) {}
  void send(std::string message) override {
    if (auto stream = m_stream.lock()) {
      stream->push(std::move(message));
    }
  }

private:
  std::weak_ptr<SseStream> m_stream;
};

// ------------------------------------------------------------------ requests and responses

struct Request : http::ParsedRequest {
  std::string path;
  std::string remote_addr;
  unsigned version = 11; // 10 or 11
};

struct Response {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string content_type;
  std::string body;
  // Non-null: a text/event-stream response written from this writer until it ends.
  std::shared_ptr<SseWriter> sse;
  std::function<void()> on_stream_end; // once, when the stream response ends (or never starts)
  bool close = false;                  // close the connection after this response
  bool authenticated = false;          // the request passed the bearer-token check
  bool keep_alive = true;              // set with `wire`
  std::string wire;                    // a plain answer as sent: status line, headers, body

  void set_header(const std::string& name, std::string value) {
    for (auto& [k, v] : headers) {
      if (iequals(k, name)) {
        v = std::move(value);
        return;
      }
    }
    headers.emplace_back(name, std::move(value));
  }
  bool has_header(const std::string& name) const {
    return std::any_of(headers.begin(), headers.end(), [&](const auto& h) { return iequals(h.first, name); });
  }
  void set_content(std::string b, std::string type) {
    body = std::move(b);
    content_type = std::move(type);
  }
};

void set_error(Response& res, int status, int code, const std::string& message) {
  res.status = status;
  res.set_content(error_body(code, message), "application/json");
}

std::string reason_phrase(int status) {
  auto phrase = bhttp::obsolete_reason(bhttp::int_to_status(static_cast<unsigned>(status)));
  return phrase.empty() ? std::string("Unknown") : std::string(phrase);
}

std::string header_value(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c != '\r' && c != '\n') {
      out += c;
    }
  }
  return out;
}

// Status line and headers. `chunked`: the body follows in chunks (SSE); else Content-Length.
std::string serialize_head(const Response& res, bool chunked, bool keep_alive, unsigned version) {
  std::string out = "HTTP/1.1 " + std::to_string(res.status) + " " + reason_phrase(res.status) + "\r\n";
  for (const auto& [k, v] : res.headers) {
    out += k + ": " + header_value(v) + "\r\n";
  }
  if (res.sse) {
    out += "Content-Type: text/event-stream\r\n";
    if (chunked) {
      out += "Transfer-Encoding: chunked\r\n";
    }
  } else {
    if (!res.content_type.empty()) {
      out += "Content-Type: " + res.content_type + "\r\n";
    }
    if (res.status != 204 && res.status != 304) {
      out += "Content-Length: " + std::to_string(res.body.size()) + "\r\n";
    }
  }
  if (!keep_alive) {
    out += "Connection: close\r\n";
  } else if (version == 10) {
    out += "Connection: keep-alive\r\n";
  }
  out += "\r\n";
  return out;
}

std::string chunk(std::string_view data) {
  char size[32];
  std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  std::string out(size);
  out.append(data);
  out += "\r\n";
  return out;
}

std::string random_session_id() {
  unsigned char bytes[k_session_id_bytes];
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

std::string url_host(const std::string& host) {
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

} // namespace

// ------------------------------------------------------------------ pure request functions

namespace http {

std::size_t drain_limit_for(std::size_t max_body_bytes) {
  return std::max<std::size_t>(2 * max_body_bytes, max_body_bytes + 1024 * 1024);
}

std::string ParsedRequest::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (iequals(k, name)) {
      return v;
    }
  }
  return "";
}

bool ParsedRequest::has_header(std::string_view name) const {
  return std::any_of(headers.begin(), headers.end(), [&](const auto& h) { return iequals(h.first, name); });
}

ParsedRequest parse_request(std::string_view bytes, const RequestLimits& limits) {
  ParsedRequest out;
  Parser parser;
  configure(parser, limits);
  parser.eager(true);
  std::size_t used = 0;
  beast::error_code ec;
  while (!parser.is_done()) {
    std::size_t n = parser.put(asio::buffer(bytes.data() + used, bytes.size() - used), ec);
    used += n;
    if (ec == bhttp::error::need_more) {
      ec = {};
      if (n == 0 || used >= bytes.size()) {
        out.outcome = ParsedRequest::Outcome::incomplete;
        return out;
      }
      continue;
    }
    if (ec) {
      auto [status, message] = read_error_answer(ec, limits);
      out.outcome = ParsedRequest::Outcome::error;
      out.status = status;
      out.error = message;
      return out;
    }
    if (n == 0) {
      out.outcome = ParsedRequest::Outcome::incomplete;
      return out;
    }
  }
  fill_parsed(parser, out);
  out.outcome = ParsedRequest::Outcome::complete;
  out.consumed = used;
  return out;
}

std::string target_path(std::string_view target) {
  if (target.empty() || target.front() != '/') {
    return "";
  }
  return std::string(target.substr(0, target.find_first_of("?#")));
}

Accepts parse_accept(std::optional<std::string_view> header_value) {
  if (!header_value) {
    return {true, true};
  }
  Accepts a;
  std::string header = lower(*header_value);
  std::size_t start = 0;
  while (start <= header.size()) {
    std::size_t comma = header.find(',', start);
    std::string_view item(header.data() + start, (comma == std::string::npos ? header.size() : comma) - start);
    start = comma == std::string::npos ? header.size() + 1 : comma + 1;
    std::size_t semi = item.find(';');
    std::string_view media = trim(item.substr(0, semi));
    bool excluded = false;
    while (semi != std::string_view::npos) {
      std::size_t next = item.find(';', semi + 1);
      std::string_view param = trim(item.substr(semi + 1, next == std::string_view::npos ? next : next - semi - 1));
      if (param.size() >= 2 && param.substr(0, 2) == "q=") {
        std::string_view q = param.substr(2);
        excluded = !q.empty() && q.find_first_not_of("0.") == std::string_view::npos;
      }
      semi = next;
    }
    if (excluded) {
      continue;
    }
    if (media == "*/*") {
      a.json = a.sse = true;
    } else if (media == "application/*" || media == "application/json") {
      a.json = true;
    } else if (media == "text/*" || media == "text/event-stream") {
      a.sse = true;
    }
  }
  return a;
}

bool is_json_content_type(std::string_view content_type) {
  std::string type = lower(content_type);
  return trim(std::string_view(type).substr(0, type.find(';'))) == "application/json";
}

std::string authority_name(std::string_view authority) {
  std::string_view name = authority, port;
  if (!authority.empty() && authority.front() == '[') {
    auto close = authority.find(']');
    if (close == std::string_view::npos) {
      return "";
    }
    name = authority.substr(0, close + 1);
    port = authority.substr(close + 1);
  } else if (auto colon = authority.find(':'); colon != std::string_view::npos) {
    name = authority.substr(0, colon);
    port = authority.substr(colon);
  }
  if (!port.empty() &&
      (port.front() != ':' || port.size() > 6 || port.find_first_not_of("0123456789", 1) != std::string_view::npos)) {
    return "";
  }
  return lower(name);
}

bool is_loopback_name(std::string_view name) {
  if (name == "localhost" || name == "[::1]" || name == "::1") {
    return true;
  }
  // 127.0.0.0/8 as a dotted quad.
  if (name.substr(0, 4) != "127.") {
    return false;
  }
  int dots = 0;
  for (char c : name) {
    if (c == '.') {
      ++dots;
    } else if (!std::isdigit(static_cast<unsigned char>(c))) {
      return false;
    }
  }
  return dots == 3;
}

bool host_allowed(std::string_view host, const std::set<std::string>& allowed, bool bound_to_loopback) {
  if (host.empty()) {
    return false;
  }
  const std::string name = authority_name(host);
  if (is_loopback_name(name)) {
    return true;
  }
  if (allowed.count(lower(host)) || (!name.empty() && allowed.count(name))) {
    return true;
  }
  // Beyond loopback every request carries the token; without --allow-host any name is served.
  return !bound_to_loopback && allowed.empty();
}

bool origin_allowed(std::string_view origin, const std::set<std::string>& allowed) {
  std::string o = lower(origin);
  while (!o.empty() && o.back() == '/') {
    o.pop_back();
  }
  if (allowed.count(o)) {
    return true;
  }
  for (const char* scheme : {"http://", "https://"}) {
    std::string_view prefix(scheme);
    if (o.rfind(prefix, 0) == 0) {
      std::string_view authority = std::string_view(o).substr(prefix.size());
      if (authority.find_first_of("/@") != std::string_view::npos) {
        return false;
      }
      return is_loopback_name(authority_name(authority));
    }
  }
  return false; // "null", other schemes
}

bool constant_time_equal(std::string_view presented, std::string_view expected) {
  unsigned char diff = presented.size() == expected.size() ? 0 : 1;
  if (expected.empty()) {
    return false;
  }
  for (std::size_t i = 0; i < presented.size(); ++i) {
    diff |= static_cast<unsigned char>(presented[i] ^ expected[i % expected.size()]);
  }
  return diff == 0;
}

std::optional<std::string> bearer_token(std::string_view authorization) {
  if (authorization.size() <= 7 || !iequals(authorization.substr(0, 7), "bearer ")) {
    return std::nullopt;
  }
  return std::string(trim(authorization.substr(7)));
}

bool looks_like_version(std::string_view v) {
  if (v.size() != 10 || v[4] != '-' || v[7] != '-') {
    return false;
  }
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i != 4 && i != 7 && !std::isdigit(static_cast<unsigned char>(v[i]))) {
      return false;
    }
  }
  return true;
}

bool plausible_session_id(std::string_view id) {
  return id.size() == 2 * k_session_id_bytes && id.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

std::optional<std::pair<std::uint64_t, std::uint64_t>> parse_last_event_id(std::string_view id) {
  auto dash = id.find('-');
  if (dash == std::string_view::npos) {
    return std::nullopt;
  }
  std::string_view a = id.substr(0, dash), b = id.substr(dash + 1);
  auto number = [](std::string_view s) -> std::optional<std::uint64_t> {
    if (s.empty() || s.size() > 18 || s.find_first_not_of("0123456789") != std::string_view::npos) {
      return std::nullopt;
    }
    return std::stoull(std::string(s));
  };
  auto x = number(a), y = number(b);
  if (!x || !y) {
    return std::nullopt;
  }
  return std::make_pair(*x, *y);
}

BodyKind classify_body(std::string_view body, std::string& parse_message) {
  std::string error;
  auto message = parse_top_level(body, &error);
  if (!message) {
    parse_message = "Parse error: " + error;
    return BodyKind::parse_error;
  }
  if (message->is_object()) {
    auto method = message->find("method");
    if (method != message->end() && method->is_string() && *method == "initialize" && message->contains("id")) {
      return BodyKind::initialize;
    }
  }
  return BodyKind::other;
}

std::vector<std::string> request_ids(std::string_view body) {
  std::vector<std::string> ids;
  for (const auto& m : messages_in(body)) {
    if (m.is_object() && m.contains("method") && m.contains("id")) {
      const json& id = m["id"];
      if (id.is_string() || id.is_number()) {
        ids.push_back(id.dump(-1, ' ', false, json::error_handler_t::replace));
      }
    }
    if (ids.size() >= 1024) {
      break;
    }
  }
  return ids;
}

std::optional<std::string> response_id(std::string_view message) {
  if (message.find("\"id\"") == std::string_view::npos) {
    return std::nullopt;
  }
  // Top-level keys are noted as they are parsed; nested values (a result, params) are skipped.
  bool answer = false, request = false;
  auto callback = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::key && depth == 1 && parsed.is_string()) {
      const auto& key = parsed.get_ref<const std::string&>();
      answer = answer || key == "result" || key == "error";
      request = request || key == "method";
    }
    return !((event == json::parse_event_t::object_start || event == json::parse_event_t::array_start) && depth >= 1);
  };
  json m;
  try {
    m = json::parse(message, callback);
  } catch (const json::exception&) {
    return std::nullopt;
  }
  if (!m.is_object() || !answer || request || !m.contains("id")) {
    return std::nullopt;
  }
  return m["id"].dump(-1, ' ', false, json::error_handler_t::replace);
}

bool is_error_without_id(std::string_view message) {
  if (message.size() > 64 * 1024 || message.find("\"error\"") == std::string_view::npos) {
    return false;
  }
  try {
    json j = json::parse(message);
    return j.is_object() && j.contains("error") && j.contains("id") && j["id"].is_null();
  } catch (const json::exception&) {
    return false;
  }
}

} // namespace http

bool is_loopback_host(const std::string& host) {
  std::string name = lower(host);
  if (name.size() > 2 && name.front() == '[' && name.back() == ']') {
    name = name.substr(1, name.size() - 2);
  }
  return http::is_loopback_name(name);
}

void parse_listen_address(const std::string& spec, std::string& host, int& port) {
  std::string h, p;
  if (!spec.empty() && spec.front() == '[') {
    auto close = spec.find(']');
    if (close == std::string::npos || close + 1 >= spec.size() || spec[close + 1] != ':') {
      throw std::invalid_argument("--http '" + spec + "': expected [IPV6]:PORT, e.g. [::1]:8765");
    }
    h = spec.substr(1, close - 1);
    p = spec.substr(close + 2);
  } else {
    auto colon = spec.rfind(':');
    if (colon == std::string::npos) {
      throw std::invalid_argument("--http '" + spec + "': expected HOST:PORT, e.g. 127.0.0.1:8765");
    }
    h = spec.substr(0, colon);
    p = spec.substr(colon + 1);
    if (h.find(':') != std::string::npos) {
      throw std::invalid_argument("--http '" + spec + "': put IPv6 addresses in brackets, e.g. [::1]:8765");
    }
  }
  if (p.empty() || p.size() > 5 || p.find_first_not_of("0123456789") != std::string::npos || std::stoi(p) > 65535) {
    throw std::invalid_argument("--http '" + spec + "': PORT must be a number from 0 to 65535 (0: any free port)");
  }
  host = h.empty() ? "127.0.0.1" : h;
  port = std::stoi(p);
}

std::string validate_http_options(const HttpOptions& options) {
  if (!is_loopback_host(options.host) && options.bearer_token.empty()) {
    return "refusing to serve HTTP on " + options.host +
           " without authentication: an address beyond loopback needs a bearer token. Put a long random token "
           "in a file and pass --auth-token-file FILE (or set SANDBOX_MCP_HTTP_TOKEN), e.g. `openssl rand -hex 32 "
           "> ~/.config/sandbox-mcp/token`; clients then send 'Authorization: Bearer TOKEN'. Or bind 127.0.0.1.";
  }
  if (!options.bearer_token.empty() && options.bearer_token.size() < 16) {
    return "the bearer token is too short (" + std::to_string(options.bearer_token.size()) +
           " characters); use at least 16 random characters, e.g. `openssl rand -hex 32`";
  }
  for (char c : options.bearer_token) {
    if (c < 0x21 || c > 0x7e) {
      return "the bearer token must be visible ASCII without spaces (as sent in an Authorization header)";
    }
  }
  if (options.max_sessions == 0 || options.max_body_bytes == 0 || options.max_connections < 2) {
    return "--max-sessions and --max-body-bytes must be positive, --max-connections at least 2";
  }
  if (options.path.empty() || options.path.front() != '/') {
    return "the endpoint path must start with '/'";
  }
  if (options.header_timeout.count() <= 0 || options.body_timeout.count() <= 0 || options.write_timeout.count() <= 0) {
    return "the HTTP header, body and write timeouts must be positive";
  }
  return "";
}

class HttpTransport::Impl {
  class Connection;

public:
  Impl(HttpOptions options, EndpointFactory& factory)
      : m_options(std::move(options)), m_factory(factory), m_pool(m_options.max_connections), m_acceptor(m_io),
        m_accept_pause(m_io), m_shutdown_timer(m_io) {
    // A write to a socket whose client left must fail with EPIPE, not end the process.
    std::signal(SIGPIPE, SIG_IGN);
    m_bound_to_loopback = is_loopback_host(m_options.host);
    for (const auto& o : m_options.allowed_origins) {
      std::string origin = lower(o);
      while (!origin.empty() && origin.back() == '/') {
        origin.pop_back();
      }
      m_allowed_origins.insert(origin);
    }
    for (const auto& h : m_options.allowed_hosts) {
      m_allowed_hosts.insert(lower(h));
    }
    m_limits.max_body_bytes = m_options.max_body_bytes;
    m_limits.drain_limit = http::drain_limit_for(m_options.max_body_bytes);
  }

  ~Impl() {
    stop();
    if (m_reaper.joinable()) {
      m_reaper.join();
    }
    m_pool.shutdown();
  }

  void bind() {
    if (m_port >= 0) {
      return;
    }
    if (auto err = validate_http_options(m_options); !err.empty()) {
      throw std::runtime_error(err);
    }
    raise_fd_limit();
    auto fail = [&](const std::string& why) {
      return std::runtime_error("cannot listen on " + m_options.host + ":" + std::to_string(m_options.port) + ": " +
                                why +
                                " (is another server using the port? choose another with --http HOST:PORT, or :0)");
    };
    boost::system::error_code ec;
    tcp::resolver resolver(m_io);
    auto results = resolver.resolve(m_options.host, std::to_string(m_options.port),
                                    tcp::resolver::passive | tcp::resolver::numeric_service, ec);
    if (ec || results.empty()) {
      throw fail(ec ? ec.message() : "the address does not resolve");
    }
    const tcp::endpoint endpoint = results.begin()->endpoint();
    m_acceptor.open(endpoint.protocol(), ec);
    if (!ec) {
      m_acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
      m_acceptor.bind(endpoint, ec);
    }
    if (!ec) {
      m_acceptor.listen(SOMAXCONN, ec);
    }
    if (ec) {
      boost::system::error_code ignored;
      m_acceptor.close(ignored);
      throw fail(ec.message());
    }
    m_port = m_acceptor.local_endpoint().port();
    spdlog::info("http: listening on http://{}:{}{} ({}; {} sessions max, idle expiry {}s, body limit {} bytes, "
                 "{} connections max)",
                 url_host(m_options.host), m_port, m_options.path,
                 m_options.bearer_token.empty() ? "no authentication (loopback only)" : "bearer token required",
                 m_options.max_sessions, m_options.session_idle_timeout.count(), m_options.max_body_bytes,
                 m_options.max_connections);
  }

  int port() const { return m_port; }

  int run() {
    bind();
    bool stopped;
    {
      std::lock_guard lock(m_run_mutex);
      stopped = m_stopping.load();
      m_running = !stopped;
    }
    if (stopped) {
      return finish_run();
    }
    m_reaper = std::thread([this] { reap_loop(); });
    m_work.emplace(m_io.get_executor());
    accept();
    m_io.run();
    return finish_run();
  }

  void stop() {
    if (m_stopping.exchange(true)) {
      return;
    }
    {
      std::lock_guard lock(m_close_mutex); // the reaper sees m_stopping or gets the notification
    }
    m_reaper_cv.notify_all();
    std::lock_guard lock(m_run_mutex);
    if (m_running) {
      asio::post(m_io, [this] { begin_shutdown(); });
    }
  }

  std::size_t session_count() const {
    std::lock_guard lock(m_sessions_mutex);
    return m_sessions.size();
  }

private:
  // ------------------------------------------------------------------ I/O: accept, shutdown
  static void raise_fd_limit() {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
      limit.rlim_cur = limit.rlim_max;
      ::setrlimit(RLIMIT_NOFILE, &limit);
    }
  }

  void accept() {
    m_acceptor.async_accept([this](boost::system::error_code ec, tcp::socket socket) {
      if (!m_acceptor.is_open() || ec == asio::error::operation_aborted) {
        return;
      }
      if (ec) {
        // EMFILE and the like: wait a little instead of spinning.
        warn_rate_limited(m_last_accept_warning, "http: accept failed: {} (open connections: {}); retrying",
                          ec.message(), m_connections.size());
        m_accept_pause.expires_after(100ms);
        m_accept_pause.async_wait([this](boost::system::error_code e) {
          if (!e) {
            accept();
          }
        });
        return;
      }
      on_accepted(std::move(socket));
      accept();
    });
  }

  template <typename... Args>
  static void warn_rate_limited(Clock::time_point& last, spdlog::format_string_t<Args...> fmt, Args&&... args) {
    auto now = Clock::now();
    if (now - last >= 10s) {
      last = now;
      spdlog::warn(fmt, std::forward<Args>(args)...);
    }
  }

  void on_accepted(tcp::socket socket);
  void close_all_connections();

  void begin_shutdown();

  void forget(const std::shared_ptr<Connection>& c) {
    m_connections.erase(c);
    if (m_stopping.load() && m_connections.empty()) {
      m_shutdown_timer.cancel();
    }
  }

  int finish_run() {
    {
      std::lock_guard lock(m_run_mutex);
      m_running = false;
    }
    close_all_connections(); // the I/O thread has returned: no handler runs concurrently
    m_reaper_cv.notify_all();
    if (m_reaper.joinable()) {
      m_reaper.join();
    }
    // End every session: in-flight tool calls are cancelled.
    std::vector<std::shared_ptr<HttpSession>> sessions;
    {
      std::lock_guard lock(m_sessions_mutex);
      for (auto& [id, s] : m_sessions) {
        sessions.push_back(s);
      }
      m_sessions.clear();
    }
    for (auto& s : sessions) {
      end_session(*s, "the server is shutting down; the request was cancelled");
      s->endpoint->close();
    }
    drain_close_queue();
    m_pool.shutdown();
    spdlog::info("http: stopped ({} session(s) ended)", sessions.size());
    return 0;
  }

  // ------------------------------------------------------------------ checks
  // Host, Origin and bearer token. Sets the rejection and returns false when the request may not
  // proceed; adds CORS headers for an allowed browser origin.
  bool admit(const Request& req, Response& res, bool authenticate) {
    const std::string host = req.header("Host");
    if (!http::host_allowed(host, m_allowed_hosts, m_bound_to_loopback)) {
      spdlog::warn("http: rejected {} {} from {}: Host '{}' not allowed", req.method, req.path, req.remote_addr,
                   host.substr(0, 200));
      set_error(res, 403, k_code_transport,
                "Forbidden: Host header '" + host.substr(0, 200) +
                    "' is not allowed (DNS rebinding protection). This server answers to localhost, 127.0.0.1 and "
                    "[::1]" +
                    (m_allowed_hosts.empty() ? std::string() : " and the names given with --allow-host") +
                    "; add a name with --allow-host NAME.");
      return false;
    }
    if (req.has_header("Origin")) {
      const std::string origin = req.header("Origin");
      if (!http::origin_allowed(origin, m_allowed_origins)) {
        spdlog::warn("http: rejected {} {} from {}: Origin '{}' not allowed", req.method, req.path, req.remote_addr,
                     origin.substr(0, 200));
        set_error(res, 403, k_code_transport,
                  "Forbidden: Origin '" + origin.substr(0, 200) +
                      "' is not allowed. Browser pages may call this server only from http(s)://localhost, "
                      "127.0.0.1 or [::1], or from an origin given with --allow-origin.");
        return false;
      }
      res.set_header("Access-Control-Allow-Origin", origin);
      res.set_header("Access-Control-Expose-Headers", "Mcp-Session-Id, MCP-Protocol-Version");
      res.set_header("Vary", "Origin");
    }
    if (authenticate && !m_options.bearer_token.empty()) {
      const auto presented = http::bearer_token(req.header("Authorization"));
      if (!presented || !http::constant_time_equal(*presented, m_options.bearer_token)) {
        spdlog::warn("http: rejected {} {} from {}: {}", req.method, req.path, req.remote_addr,
                     presented ? "wrong bearer token" : "no bearer token");
        res.set_header("WWW-Authenticate", presented ? "Bearer realm=\"sandbox-mcp\", error=\"invalid_token\""
                                                     : "Bearer realm=\"sandbox-mcp\"");
        set_error(res, 401, k_code_transport,
                  presented ? "Unauthorized: the bearer token is not valid for this server"
                            : "Unauthorized: this server requires 'Authorization: Bearer TOKEN' (the token given to "
                              "the server with --auth-token-file or SANDBOX_MCP_HTTP_TOKEN)");
        return false;
      }
    }
    res.authenticated = authenticate;
    return true;
  }

  bool check_protocol_version(const Request& req, Response& res) const {
    if (!req.has_header("MCP-Protocol-Version")) {
      return true; // the spec says: assume 2025-03-26
    }
    const std::string v = req.header("MCP-Protocol-Version");
    bool ok = m_options.protocol_versions.empty()
                  ? http::looks_like_version(v)
                  : std::find(m_options.protocol_versions.begin(), m_options.protocol_versions.end(), v) !=
                        m_options.protocol_versions.end();
    if (!ok) {
      std::string supported;
      for (const auto& s : m_options.protocol_versions) {
        supported += (supported.empty() ? "" : ", ") + s;
      }
      set_error(res, 400, k_code_transport,
                "Bad Request: unsupported MCP-Protocol-Version '" + v.substr(0, 80) + "'" +
                    (supported.empty() ? std::string() : " (supported: " + supported + ")"));
    }
    return ok;
  }

  // The session a request names: 400 without Mcp-Session-Id, 404 when unknown or ended.
  std::shared_ptr<HttpSession> find_session(const Request& req, Response& res) {
    if (!req.has_header("Mcp-Session-Id")) {
      set_error(res, 400, k_code_transport,
                "Bad Request: Mcp-Session-Id header is required. Start a session with an initialize request "
                "(without Mcp-Session-Id) and send the id from its Mcp-Session-Id response header.");
      return nullptr;
    }
    const std::string id = req.header("Mcp-Session-Id");
    if (http::plausible_session_id(id)) {
      std::lock_guard lock(m_sessions_mutex);
      if (auto it = m_sessions.find(id); it != m_sessions.end()) {
        return it->second;
      }
    }
    set_error(res, 404, k_code_session_not_found,
              "Session not found: Mcp-Session-Id '" + id.substr(0, 80) +
                  "' is unknown or has ended (deleted, idle for more than " +
                  std::to_string(m_options.session_idle_timeout.count()) +
                  " s, evicted as the least recently used when --max-sessions was reached, or the server "
                  "restarted). Send a new initialize request without Mcp-Session-Id.");
    return nullptr;
  }

  // ------------------------------------------------------------------ handlers (worker threads)
  void handle(const Request& req, Response& res) {
    if (req.method == "GET") {
      handle_get(req, res);
    } else if (req.method == "OPTIONS") {
      handle_options(req, res);
    } else {
      handle_with_body(req, res);
    }
  }

  void handle_with_body(const Request& req, Response& res) {
    if (req.path != m_options.path) {
      set_error(res, 404, k_code_transport, "Not Found: the MCP endpoint is " + m_options.path);
      return;
    }
    if (!admit(req, res, true)) {
      return;
    }
    if (req.method == "DELETE") {
      handle_delete(req, res);
      return;
    }
    if (req.method != "POST") {
      res.set_header("Allow", "GET, POST, DELETE, OPTIONS");
      set_error(res, 405, k_code_transport, "Method Not Allowed: use POST, GET or DELETE on " + m_options.path);
      return;
    }
    const http::Accepts accepts = http::parse_accept(
        req.has_header("Accept") ? std::optional<std::string_view>(req.header("Accept")) : std::nullopt);
    if (!accepts.json && !accepts.sse) {
      set_error(res, 406, k_code_transport,
                "Not Acceptable: the Accept header must allow application/json and text/event-stream (send "
                "'Accept: application/json, text/event-stream')");
      return;
    }
    if (!http::is_json_content_type(req.header("Content-Type"))) {
      set_error(res, 415, k_code_transport,
                "Unsupported Media Type: Content-Type must be application/json, got '" +
                    req.header("Content-Type").substr(0, 80) + "'");
      return;
    }
    if (!check_protocol_version(req, res)) {
      return;
    }
    if (req.oversized) {
      spdlog::warn("http: refused a {}-byte body from {} (limit {})", req.body_bytes, req.remote_addr,
                   m_options.max_body_bytes);
      std::shared_ptr<HttpSession> session;
      if (req.has_header("Mcp-Session-Id")) {
        std::lock_guard lock(m_sessions_mutex);
        if (auto it = m_sessions.find(req.header("Mcp-Session-Id")); it != m_sessions.end()) {
          session = it->second;
        }
      }
      if (session) {
        // The protocol core words the answer, as for stdio.
        auto sink = std::make_shared<ReplySink>(session, std::vector<std::string>());
        session->endpoint->receive_oversized(static_cast<std::size_t>(req.body_bytes), m_options.max_body_bytes, sink);
        std::lock_guard lock(sink->m_mutex);
        if (!sink->m_messages.empty()) {
          res.status = 413;
          res.set_content(sink->m_messages.back(), "application/json");
          return;
        }
      }
      set_error(res, 413, k_code_invalid_request,
                "Message too large: " + std::to_string(req.body_bytes) + " bytes exceeds the limit of " +
                    std::to_string(m_options.max_body_bytes) +
                    " bytes; the message was discarded. Send smaller requests (the server's --max-body-bytes).");
      return;
    }

    if (!req.has_header("Mcp-Session-Id")) {
      std::string parse_message;
      switch (http::classify_body(req.body, parse_message)) {
      case http::BodyKind::parse_error:
        set_error(res, 400, k_code_parse_error, parse_message);
        return;
      case http::BodyKind::other:
        find_session(req, res); // the 400 "Mcp-Session-Id header is required"
        return;
      case http::BodyKind::initialize:
        initialize(req, res, accepts);
        return;
      }
    }
    auto session = find_session(req, res);
    if (!session) {
      return;
    }
    res.set_header("Mcp-Session-Id", session->id);
    deliver(session, req.body, accepts, res);
  }

  // The least recently used session that is idle (no request in flight, no open stream, no reply
  // owed); null when every session is in use. Called with m_sessions_mutex held.
  std::shared_ptr<HttpSession> least_recently_used_idle_session() {
    std::shared_ptr<HttpSession> lru;
    Clock::time_point oldest = Clock::time_point::max();
    for (auto& [id, s] : m_sessions) {
      std::lock_guard slock(s->mutex);
      if (s->busy == 0 && s->last_used < oldest) {
        oldest = s->last_used;
        lru = s;
      }
    }
    return lru;
  }

  void initialize(const Request& req, Response& res, const http::Accepts& accepts) {
    std::shared_ptr<HttpSession> evicted;
    std::size_t open = 0;
    {
      std::lock_guard lock(m_sessions_mutex);
      open = m_sessions.size();
      if (m_sessions.size() + m_creating >= m_options.max_sessions) {
        evicted = least_recently_used_idle_session();
        if (!evicted) {
          spdlog::warn("http: refused a new session from {}: {} sessions open (limit {}), all of them in use",
                       req.remote_addr, m_sessions.size(), m_options.max_sessions);
          res.set_header("Retry-After", "30");
          set_error(res, 503, k_code_transport,
                    "Service Unavailable: too many sessions (" + std::to_string(m_options.max_sessions) +
                        ", the server's --max-sessions), all with a request in flight or an open stream. End "
                        "unused sessions with DELETE, or retry later.");
          return;
        }
        m_sessions.erase(evicted->id);
      }
      ++m_creating;
    }
    if (evicted) {
      long long idle_s;
      {
        std::lock_guard slock(evicted->mutex);
        idle_s = std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - evicted->last_used).count();
      }
      spdlog::info("http: session {}... evicted (least recently used, idle {} s) to admit a new session from {}: "
                   "{} sessions open (--max-sessions {})",
                   evicted->id.substr(0, 8), idle_s, req.remote_addr, open, m_options.max_sessions);
      end_session(*evicted, "the session was evicted to admit a new one (--max-sessions reached)");
      schedule_close(evicted);
    }
    struct Uncreate {
      Impl& impl;
      ~Uncreate() {
        std::lock_guard lock(impl.m_sessions_mutex);
        --impl.m_creating;
      }
    } uncreate{*this};

    auto session = std::make_shared<HttpSession>();
    session->id = random_session_id();
    session->standalone = std::make_shared<SseStream>(0, m_options.sse_history);
    session->endpoint = m_factory.open(std::make_shared<UnsolicitedSink>(session->standalone));

    auto sink = ReplySink::create(session, req.body);
    session->endpoint->receive(req.body, sink);
    std::vector<std::string> messages;
    {
      std::unique_lock lock(sink->m_mutex);
      // initialize is answered while receive() runs; wait briefly in case a core answers later.
      sink->m_cv.wait_for(lock, 10s, [&] { return sink->m_ended || m_stopping.load(); });
      messages = std::move(sink->m_messages);
    }
    const std::string version = session->endpoint->protocol_version();
    if (version.empty() || messages.empty()) {
      // Initialization failed (bad params): answer the error, keep no session.
      session->endpoint->close();
      respond_json(res, messages);
      return;
    }
    {
      std::lock_guard lock(m_sessions_mutex);
      m_sessions.emplace(session->id, session);
    }
    spdlog::info("http: session {}... opened for {} (protocol {})", session->id.substr(0, 8), req.remote_addr, version);
    res.set_header("Mcp-Session-Id", session->id);
    if (accepts.json) {
      respond_json(res, messages);
    } else {
      auto stream = session->new_stream(m_options.sse_history);
      for (auto& m : messages) {
        stream->push(std::move(m));
      }
      stream->finish();
      respond_sse(res, session, stream, 0, false);
    }
  }

  // Hands one POST body to its session's protocol endpoint and answers: 202 when nothing is owed,
  // JSON when every answer arrived while receive() ran, otherwise an SSE stream carrying the
  // progress and log notifications and then the response (or JSON after waiting, when the client
  // does not accept SSE).
  void deliver(const std::shared_ptr<HttpSession>& session, const std::string& body, const http::Accepts& accepts,
               Response& res) {
    Activity activity(session);
    auto sink = ReplySink::create(session, body);
    session->endpoint->receive(body, sink);

    std::unique_lock lock(sink->m_mutex);
    if (!sink->m_ended && accepts.sse) {
      auto stream = session->new_stream(m_options.sse_history);
      if (session->endpoint->protocol_version() >= "2025-11-25") {
        stream->push(std::string(), m_options.sse_retry.count()); // priming event: resumable from here
      }
      for (auto& m : sink->m_messages) {
        stream->push(std::move(m));
      }
      sink->m_messages.clear();
      sink->m_stream = stream;
      lock.unlock();
      respond_sse(res, session, stream, 0, false);
      return;
    }
    while (!sink->m_ended && !m_stopping.load()) {
      sink->m_cv.wait_for(lock, k_shutdown_check);
    }
    if (!sink->m_ended) {
      set_error(res, 503, k_code_transport, "Service Unavailable: the server is shutting down");
      return;
    }
    std::vector<std::string> messages = std::move(sink->m_messages);
    lock.unlock();
    if (!accepts.json && !messages.empty()) {
      auto stream = session->new_stream(m_options.sse_history);
      for (auto& m : messages) {
        stream->push(std::move(m));
      }
      stream->finish();
      respond_sse(res, session, stream, 0, false);
      return;
    }
    if (messages.empty() && session->closed.load()) {
      set_error(res, 404, k_code_session_not_found, "Session not found: the session ended while the request ran");
      return;
    }
    respond_json(res, messages);
  }

  static void respond_json(Response& res, std::vector<std::string>& messages) {
    if (messages.empty()) {
      res.status = 202; // only notifications or responses were posted
      return;
    }
    // Notifications tied to a request precede its response; a JSON answer carries the response.
    std::string& response = messages.back();
    res.status = http::is_error_without_id(response) ? 400 : 200;
    res.set_content(std::move(response), "application/json");
  }

  void respond_sse(Response& res, const std::shared_ptr<HttpSession>& session, const std::shared_ptr<SseStream>& stream,
                   std::uint64_t cursor, bool hold_open) {
    res.status = 200;
    res.set_header("Cache-Control", "no-cache, no-transform");
    res.set_header("X-Accel-Buffering", "no"); // nginx: do not buffer the stream
    if (!res.has_header("Mcp-Session-Id")) {
      res.set_header("Mcp-Session-Id", session->id);
    }
    res.sse = std::make_shared<SseWriter>(session, stream, cursor, hold_open);
    auto activity = std::make_shared<Activity>(session);
    ++m_open_streams;
    res.on_stream_end = [this, session, stream, activity]() mutable {
      --m_open_streams;
      // A POST stream whose every event reached the client is not needed for resumption.
      if (stream->index() != 0 && stream->finished_and_delivered()) {
        std::lock_guard lock(session->mutex);
        session->streams.erase(stream->index());
      }
      activity.reset();
    };
  }

  void handle_get(const Request& req, Response& res) {
    if (req.path == "/healthz") {
      res.set_content("{\"status\":\"ok\"}", "application/json");
      return;
    }
    if (req.path != m_options.path) {
      set_error(res, 404, k_code_transport, "Not Found: the MCP endpoint is " + m_options.path);
      return;
    }
    if (!admit(req, res, true)) {
      return;
    }
    if (!http::parse_accept(req.has_header("Accept") ? std::optional<std::string_view>(req.header("Accept"))
                                                     : std::nullopt)
             .sse) {
      set_error(res, 406, k_code_transport,
                "Not Acceptable: GET opens an SSE stream; send 'Accept: text/event-stream'");
      return;
    }
    if (!check_protocol_version(req, res)) {
      return;
    }
    auto session = find_session(req, res);
    if (!session) {
      return;
    }
    if (m_open_streams.load() >= m_options.max_connections * 3 / 4) {
      res.set_header("Retry-After", "30");
      set_error(res, 503, k_code_transport,
                "Service Unavailable: too many open SSE streams (" + std::to_string(m_open_streams.load()) +
                    "); the server keeps connections for other requests (raise --max-connections)");
      return;
    }
    if (!req.has_header("Last-Event-ID")) {
      // The session's stream for server-initiated messages; a new GET takes it over.
      respond_sse(res, session, session->standalone, session->standalone->delivered(), false);
      return;
    }
    const std::string last = req.header("Last-Event-ID");
    auto parsed = http::parse_last_event_id(last);
    if (!parsed) {
      set_error(res, 400, k_code_transport,
                "Bad Request: Last-Event-ID '" + last.substr(0, 80) + "' is not an event id of this server");
      return;
    }
    const auto [index, seq] = *parsed;
    std::shared_ptr<SseStream> stream;
    bool completed = false, lost = false;
    {
      std::lock_guard lock(session->mutex);
      if (index == 0) {
        stream = session->standalone;
      } else if (auto it = session->streams.find(index); it != session->streams.end()) {
        stream = it->second;
      } else if (session->lost_streams.count(index)) {
        lost = true;
      } else if (index < session->next_stream) {
        completed = true;
      }
    }
    if (lost || (!stream && !completed) || (stream && !stream->issued(seq))) {
      set_error(res, 400, k_code_transport,
                lost ? "Bad Request: the events after Last-Event-ID '" + last + "' are no longer kept"
                     : "Bad Request: Last-Event-ID '" + last.substr(0, 80) + "' is not an event of this session");
      return;
    }
    if (completed) {
      // Everything of that stream was delivered: nothing to replay, nothing will come. The response
      // stays open (idle) rather than ending at once, which clients would answer by reconnecting.
      stream = std::make_shared<SseStream>(index, 1);
      stream->finish();
      {
        std::lock_guard lock(session->mutex);
        std::erase_if(session->idle_streams, [](const auto& w) { return w.expired(); });
        session->idle_streams.push_back(stream);
      }
      respond_sse(res, session, stream, 0, true);
      return;
    }
    spdlog::debug("http: session {}... resumes stream {} after event {}", session->id.substr(0, 8), index, seq);
    respond_sse(res, session, stream, seq + 1, stream->exhausted_at(seq + 1));
  }

  void handle_delete(const Request& req, Response& res) {
    if (!check_protocol_version(req, res)) {
      return;
    }
    auto session = find_session(req, res);
    if (!session) {
      return;
    }
    {
      std::lock_guard lock(m_sessions_mutex);
      m_sessions.erase(session->id);
    }
    spdlog::info("http: session {}... ended by the client", session->id.substr(0, 8));
    end_session(*session, "the session was ended by the client (DELETE) before this request finished; it was "
                          "cancelled");
    schedule_close(session);
    res.status = 200;
  }

  void handle_options(const Request& req, Response& res) {
    if (req.path != m_options.path) {
      set_error(res, 404, k_code_transport, "Not Found: the MCP endpoint is " + m_options.path);
      return;
    }
    if (!admit(req, res, false)) { // browsers send no credentials on a preflight
      return;
    }
    res.status = 204;
    res.set_header("Allow", "GET, POST, DELETE, OPTIONS");
    if (req.has_header("Origin")) {
      res.set_header("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS");
      res.set_header("Access-Control-Allow-Headers",
                     "Content-Type, Accept, Authorization, Mcp-Session-Id, MCP-Protocol-Version, Last-Event-ID");
      res.set_header("Access-Control-Max-Age", "600");
    }
  }

  // ------------------------------------------------------------------ session ends
  // Answers every request still owed with an error saying `why` (the streams carry it, then end),
  // marks the session ended and ends its GET stream; the endpoint is closed by the caller.
  static void end_session(HttpSession& session, const std::string& why) {
    std::vector<std::shared_ptr<ReplySink>> pending;
    {
      std::lock_guard lock(session.mutex);
      for (auto& w : session.pending) {
        if (auto sink = w.lock()) {
          pending.push_back(std::move(sink));
        }
      }
      session.pending.clear();
    }
    for (auto& sink : pending) {
      sink->abort(why);
    }
    std::vector<std::shared_ptr<SseStream>> streams;
    {
      std::lock_guard lock(session.mutex);
      session.closed = true;
      for (auto& [index, s] : session.streams) {
        streams.push_back(s);
      }
      for (auto& w : session.idle_streams) {
        if (auto s = w.lock()) {
          streams.push_back(std::move(s));
        }
      }
    }
    session.standalone->close();
    for (auto& s : streams) {
      s->wake(); // writers see the session ended once they have written what is left
    }
  }

  // Closing an endpoint waits for its cancelled tool calls; the reaper thread does it.
  void schedule_close(std::shared_ptr<HttpSession> session) {
    {
      std::lock_guard lock(m_close_mutex);
      m_close_queue.push_back(std::move(session));
    }
    m_reaper_cv.notify_all();
  }

  void drain_close_queue() {
    for (;;) {
      std::shared_ptr<HttpSession> session;
      {
        std::lock_guard lock(m_close_mutex);
        if (m_close_queue.empty()) {
          return;
        }
        session = std::move(m_close_queue.front());
        m_close_queue.pop_front();
      }
      session->endpoint->close();
    }
  }

  void reap_loop() {
    const auto period = std::clamp<std::chrono::milliseconds>(
        std::chrono::duration_cast<std::chrono::milliseconds>(m_options.session_idle_timeout) / 10, 100ms, 5000ms);
    while (!m_stopping.load()) {
      {
        std::unique_lock lock(m_close_mutex);
        m_reaper_cv.wait_for(lock, period, [&] { return m_stopping.load() || !m_close_queue.empty(); });
      }
      drain_close_queue();
      std::vector<std::shared_ptr<HttpSession>> expired;
      const auto now = Clock::now();
      {
        std::lock_guard lock(m_sessions_mutex);
        for (auto it = m_sessions.begin(); it != m_sessions.end();) {
          bool idle;
          {
            std::lock_guard slock(it->second->mutex);
            idle = it->second->busy == 0 && now - it->second->last_used > m_options.session_idle_timeout;
          }
          if (idle) {
            expired.push_back(it->second);
            it = m_sessions.erase(it);
          } else {
            ++it;
          }
        }
      }
      for (auto& s : expired) {
        spdlog::info("http: session {}... expired after {} s without requests", s->id.substr(0, 8),
                     m_options.session_idle_timeout.count());
        end_session(*s, "the session expired");
        s->endpoint->close();
      }
    }
    drain_close_queue();
  }

  std::vector<std::shared_ptr<HttpSession>> all_sessions() const {
    std::lock_guard lock(m_sessions_mutex);
    std::vector<std::shared_ptr<HttpSession>> out;
    for (auto& [id, s] : m_sessions) {
      out.push_back(s);
    }
    return out;
  }

  HttpOptions m_options;
  EndpointFactory& m_factory;
  bool m_bound_to_loopback = true;
  std::set<std::string> m_allowed_origins;
  std::set<std::string> m_allowed_hosts;
  http::RequestLimits m_limits;

  int m_port = -1;
  std::atomic<bool> m_stopping{false};
  std::mutex m_run_mutex;
  bool m_running = false;

  mutable std::mutex m_sessions_mutex;
  std::map<std::string, std::shared_ptr<HttpSession>> m_sessions;
  std::size_t m_creating = 0;
  std::atomic<std::size_t> m_open_streams{0};

  std::thread m_reaper;
  std::mutex m_close_mutex;
  std::condition_variable m_reaper_cv;
  std::deque<std::shared_ptr<HttpSession>> m_close_queue;

  WorkerPool m_pool;

  // I/O thread only. The io_context is declared after everything its pending handlers may touch
  // and before the I/O objects (destroyed first).
  std::unordered_set<std::shared_ptr<Connection>> m_connections;
  Clock::time_point m_last_accept_warning{};
  Clock::time_point m_last_evict_warning{};
  asio::io_context m_io{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> m_work;
  tcp::acceptor m_acceptor;
  asio::steady_timer m_accept_pause;
  asio::steady_timer m_shutdown_timer;
};

// ------------------------------------------------------------------ one HTTP/1.1 connection
// Lives on the I/O thread. Reads one request at a time (pipelined bytes wait in the buffer), under
// a header deadline counted from when the connection began waiting for the request and a body
// deadline counted from the end of the headers: trickled bytes extend neither. A complete request
// goes to the worker pool; its answer is written, and only then is the next request read, so
// answers leave in request order.
class HttpTransport::Impl::Connection : public std::enable_shared_from_this<Connection> {
public:
  enum class State { head, body, handling, writing, streaming, lingering, closed };

  Connection(Impl& impl, tcp::socket socket)
      : m_impl(impl), m_socket(std::move(socket)), m_deadline(m_socket.get_executor()),
        m_keepalive(m_socket.get_executor()), m_buffer(impl.m_limits.max_header_bytes + 64 * 1024) {
    boost::system::error_code ec;
    auto remote = m_socket.remote_endpoint(ec);
    m_remote = ec ? std::string("?") : remote.address().to_string();
  }

  void start() { read_next(); }

  // At --max-connections: a connection waiting for (the rest of) a request may give way.
  bool evictable() const { return m_state == State::head || (m_state == State::body && !m_trusted); }
  bool trusted() const { return m_trusted; }
  Clock::time_point waiting_since() const { return m_wait_started; }
  const std::string& remote() const { return m_remote; }
  State state() const { return m_state; }

  // Answers 503 and closes (used right after accept, for a connection over the limit).
  void refuse() {
    Response res;
    res.set_header("Retry-After", "5");
    set_error(res, 503, k_code_transport,
              "Service Unavailable: too many open connections (the server's --max-connections), all busy with "
              "requests or streams; retry shortly");
    res.close = true;
    m_state = State::writing;
    write(serialize_head(res, false, false, 11) + res.body, [self = shared_from_this()] { self->linger(); });
  }

  // Closes at once (eviction, shutdown, errors).
  void close() {
    if (m_state == State::closed) {
      return;
    }
    m_state = State::closed;
    {
      boost::system::error_code ec;
      std::lock_guard lock(m_fd_mutex);
      m_fd_closed = true;
      m_socket.shutdown(tcp::socket::shutdown_both, ec);
      m_socket.close(ec);
    }
    m_deadline.cancel();
    m_keepalive.cancel();
    end_stream_bookkeeping();
    m_impl.forget(shared_from_this());
  }

  // Shutdown: idle and half-read connections close now; answers and streams finish first.
  void on_shutdown() {
    if (m_state == State::head || m_state == State::body) {
      close();
    } else if (m_state == State::streaming) {
      pump();
    }
  }

private:
  void read_next() {
    if (m_impl.m_stopping.load()) {
      linger();
      return;
    }
    m_state = State::head;
    m_wait_started = Clock::now();
    m_parser.emplace();
    configure(*m_parser, m_impl.m_limits);
    arm(m_impl.m_options.header_timeout);
    bhttp::async_read_header(m_socket, m_buffer, *m_parser,
                             [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_head(ec); });
  }

  void on_head(beast::error_code ec) {
    if (m_state != State::head) {
      return;
    }
    if (ec) {
      on_read_error(ec);
      return;
    }
    m_state = State::body;
    arm(m_impl.m_options.body_timeout);
    auto read_body = [self = shared_from_this()] {
      bhttp::async_read(self->m_socket, self->m_buffer, *self->m_parser,
                        [self](beast::error_code e, std::size_t) { self->on_body(e); });
    };
    if (iequals(view(m_parser->get()[bhttp::field::expect]), "100-continue") && !m_parser->is_done()) {
      static const std::string continue_100 = "HTTP/1.1 100 Continue\r\n\r\n";
      asio::async_write(m_socket, asio::buffer(continue_100),
                        [self = shared_from_this(), read_body](boost::system::error_code e, std::size_t) {
                          if (self->m_state != State::body) {
                            return;
                          }
                          if (e) {
                            self->close();
                            return;
                          }
                          read_body();
                        });
      return;
    }
    read_body();
  }

  void on_body(beast::error_code ec) {
    if (m_state != State::body) {
      return;
    }
    if (ec) {
      on_read_error(ec);
      return;
    }
    disarm();
    auto req = std::make_shared<Request>();
    fill_parsed(*m_parser, *req);
    req->version = m_parser->get().version() == 10 ? 10 : 11;
    m_parser.reset();
    req->path = http::target_path(req->target);
    req->remote_addr = m_remote;
    m_state = State::handling;
    auto self = shared_from_this();
    m_impl.m_pool.enqueue([self, req] {
      auto res = std::make_shared<Response>();
      try {
        self->m_impl.handle(*req, *res);
      } catch (const std::exception& e) {
        spdlog::error("http: {} {} failed: {}", req->method, req->path, e.what());
        *res = Response();
        set_error(*res, 500, k_code_transport, std::string("Internal error: ") + e.what());
      }
      spdlog::debug("http: {} {} -> {} ({})", req->method, req->path, res->status, req->remote_addr);
      // A plain answer leaves from this thread at once (no wait for the I/O thread to be
      // scheduled); what the socket does not take now, the I/O thread writes.
      std::size_t sent = 0;
      if (!res->sse) {
        res->keep_alive = req->keep_alive && !res->close && !self->m_impl.m_stopping.load();
        res->wire = serialize_head(*res, false, res->keep_alive, req->version) + res->body;
        sent = self->send_from_worker(res->wire);
      }
      asio::post(self->m_socket.get_executor(), [self, req, res, sent] { self->on_handled(*req, *res, sent); });
    });
  }

  // Worker thread, while the I/O thread leaves the socket alone (state handling: no read or
  // write pending); close() takes the same lock, so the descriptor cannot be closed (and reused)
  // under this write.
  std::size_t send_from_worker(const std::string& bytes) {
    std::lock_guard lock(m_fd_mutex);
    if (m_fd_closed) {
      return 0;
    }
    std::size_t sent = 0;
    while (sent < bytes.size()) {
      ssize_t n =
          ::send(m_socket.native_handle(), bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n <= 0) {
        if (n < 0 && errno == EINTR) {
          continue;
        }
        break; // full (the I/O thread goes on) or failed (its write fails too)
      }
      sent += static_cast<std::size_t>(n);
    }
    return sent;
  }

  void on_read_error(const beast::error_code& ec) {
    disarm();
    if (ec == bhttp::error::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset ||
        ec == asio::error::operation_aborted || ec == bhttp::error::partial_message) {
      close();
      return;
    }
    auto [status, message] = read_error_answer(ec, m_impl.m_limits);
    spdlog::debug("http: unreadable request from {}: {} -> {}", m_remote, ec.message(), status);
    respond_error_and_close(status, message);
  }

  void respond_error_and_close(int status, const std::string& message) {
    Response res;
    set_error(res, status, k_code_transport, message);
    m_state = State::writing;
    beast::error_code ignored;
    m_socket.cancel(ignored); // a pending read ends (its handler sees the state changed)
    write(serialize_head(res, false, false, 11) + res.body, [self = shared_from_this()] { self->linger(); });
  }

  void on_handled(const Request& req, Response& res, std::size_t sent) {
    if (m_state != State::handling) {
      if (res.on_stream_end) {
        res.on_stream_end();
      }
      return;
    }
    m_trusted = m_trusted || res.authenticated;
    if (!res.sse) {
      const bool keep = res.keep_alive && !m_impl.m_stopping.load();
      m_state = State::writing;
      auto next = [self = shared_from_this(), keep] {
        if (keep) {
          self->read_next();
        } else {
          self->linger();
        }
      };
      if (sent >= res.wire.size()) {
        next();
      } else {
        write(res.wire.substr(sent), std::move(next));
      }
      return;
    }
    const bool keep = req.keep_alive && !res.close && !m_impl.m_stopping.load() &&
                      req.version != 10; // a 1.0 stream ends with the connection
    m_keep_alive = keep;
    m_chunked = req.version != 10;
    m_state = State::writing;
    m_sse = res.sse;
    m_on_stream_end = std::move(res.on_stream_end);
    write(serialize_head(res, m_chunked, keep, req.version), [self = shared_from_this()] { self->start_stream(); });
  }

  // ------------------------------------------------------------------ SSE
  void start_stream() {
    m_state = State::streaming;
    m_last_write = Clock::now();
    std::weak_ptr<Connection> weak = weak_from_this();
    m_sse->attach([weak] {
      if (auto self = weak.lock()) {
        self->schedule_pump();
      }
    });
    watch_peer();
    arm_keepalive();
    pump();
  }

  // From any thread: the stream has news.
  void schedule_pump() {
    if (!m_pump_posted.exchange(true)) {
      asio::post(m_socket.get_executor(), [self = shared_from_this()] {
        self->m_pump_posted = false;
        self->pump();
      });
    }
  }

  void pump() {
    if (m_state != State::streaming || m_writing) {
      return;
    }
    std::string events;
    const bool done = m_sse->pull(events);
    std::string out;
    if (!events.empty()) {
      out = m_chunked ? chunk(events) : events;
    }
    if (done && m_chunked) {
      out += "0\r\n\r\n";
    }
    if (out.empty()) {
      if (done) {
        end_stream();
      }
      return;
    }
    const bool had_events = !events.empty();
    write(std::move(out), [self = shared_from_this(), done, had_events] {
      if (had_events) {
        self->m_sse->written();
      }
      self->m_last_write = Clock::now();
      if (done) {
        self->end_stream();
      } else {
        self->m_state = State::streaming;
        self->pump();
      }
    });
    m_state = State::streaming; // write() marked it writing; a stream keeps its own state
  }

  void end_stream() {
    ++m_watch_generation;
    beast::error_code ignored;
    m_socket.cancel(ignored); // the peer watch
    m_keepalive.cancel();
    end_stream_bookkeeping();
    if (m_keep_alive && m_chunked && !m_impl.m_stopping.load()) {
      read_next();
    } else {
      linger();
    }
  }

  void end_stream_bookkeeping() {
    if (m_sse) {
      m_sse->detach();
      m_sse.reset();
    }
    if (auto done = std::move(m_on_stream_end)) {
      m_on_stream_end = nullptr;
      done();
    }
  }

  // A client that goes away during a stream is noticed at once (not at the next keepalive).
  void watch_peer() {
    m_socket.async_wait(tcp::socket::wait_read,
                        [self = shared_from_this(), generation = m_watch_generation](boost::system::error_code ec) {
                          if (ec || generation != self->m_watch_generation || self->m_state != State::streaming) {
                            return;
                          }
                          char c;
                          ssize_t n = ::recv(self->m_socket.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
                          if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
                            self->close(); // the client left
                          } else if (n < 0) {
                            self->watch_peer();
                          }
                          // n > 0: a pipelined request; it is read after the stream.
                        });
  }

  void arm_keepalive() {
    m_keepalive.expires_after(m_impl.m_options.sse_keepalive);
    m_keepalive.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (ec || self->m_state != State::streaming) {
        return;
      }
      if (!self->m_writing && Clock::now() - self->m_last_write >= self->m_impl.m_options.sse_keepalive - 50ms) {
        static const std::string comment = ": keepalive\n\n";
        self->write(self->m_chunked ? chunk(comment) : comment, [self] {
          self->m_last_write = Clock::now();
          self->m_state = State::streaming;
          self->pump();
        });
        self->m_state = State::streaming;
      }
      self->arm_keepalive();
    });
  }

  // ------------------------------------------------------------------ writing, deadlines, closing
  void write(std::string data, std::function<void()> then) {
    m_out = std::move(data);
    m_writing = true;
    if (m_state != State::streaming) {
      m_state = State::writing;
    }
    arm(m_impl.m_options.write_timeout);
    asio::async_write(m_socket, asio::buffer(m_out),
                      [self = shared_from_this(), then = std::move(then)](boost::system::error_code ec, std::size_t) {
                        self->m_writing = false;
                        if (self->m_state == State::closed) {
                          return;
                        }
                        self->disarm();
                        if (ec) {
                          self->close();
                          return;
                        }
                        then();
                      });
  }

  void arm(std::chrono::milliseconds timeout) {
    ++m_deadline_generation;
    m_deadline.expires_after(timeout);
    m_deadline.async_wait(
        [self = shared_from_this(), generation = m_deadline_generation](boost::system::error_code ec) {
          if (!ec && generation == self->m_deadline_generation) {
            self->on_deadline();
          }
        });
  }

  void disarm() {
    ++m_deadline_generation;
    m_deadline.cancel();
  }

  void on_deadline() {
    const auto seconds = [](std::chrono::milliseconds d) { return std::to_string((d.count() + 999) / 1000); };
    switch (m_state) {
    case State::head:
      if (m_parser && (m_parser->got_some() || m_buffer.size() > 0)) {
        spdlog::debug("http: request headers from {} incomplete after {} s; closing", m_remote,
                      seconds(m_impl.m_options.header_timeout));
        respond_error_and_close(408, "Request Timeout: the request headers did not arrive within " +
                                         seconds(m_impl.m_options.header_timeout) + " s");
      } else {
        close(); // an idle keep-alive connection
      }
      return;
    case State::body:
      spdlog::debug("http: request body from {} incomplete after {} s; closing", m_remote,
                    seconds(m_impl.m_options.body_timeout));
      respond_error_and_close(408, "Request Timeout: the request body did not arrive within " +
                                       seconds(m_impl.m_options.body_timeout) + " s");
      return;
    case State::handling:
      return;
    default:
      close(); // a write that does not progress, or a linger that lasts too long
    }
  }

  // After the last response: no more sending; unread request bytes are drained (briefly) so that
  // the close does not reset the connection before the client read the answer.
  void linger() {
    if (m_state == State::closed) {
      return;
    }
    m_state = State::lingering;
    boost::system::error_code ec;
    m_socket.shutdown(tcp::socket::shutdown_send, ec);
    arm(std::chrono::duration_cast<std::chrono::milliseconds>(k_linger));
    drain();
  }

  void drain() {
    m_socket.async_read_some(asio::buffer(m_drain),
                             [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                               if (self->m_state != State::lingering) {
                                 return;
                               }
                               if (ec) {
                                 self->close();
                                 return;
                               }
                               self->drain();
                             });
  }

  Impl& m_impl;
  tcp::socket m_socket;
  asio::steady_timer m_deadline;
  asio::steady_timer m_keepalive;
  beast::flat_buffer m_buffer;
  std::optional<Parser> m_parser;
  State m_state = State::head;
  Clock::time_point m_wait_started = Clock::now();
  std::string m_remote;
  bool m_trusted = false; // a request on this connection passed authentication
  bool m_keep_alive = true;
  bool m_chunked = true;
  std::string m_out;
  bool m_writing = false;
  std::uint64_t m_deadline_generation = 0;
  std::uint64_t m_watch_generation = 0;
  std::shared_ptr<SseWriter> m_sse;
  std::function<void()> m_on_stream_end;
  std::atomic<bool> m_pump_posted{false};
  Clock::time_point m_last_write;
  std::array<char, 4096> m_drain{};
  std::mutex m_fd_mutex; // see send_from_worker()
  bool m_fd_closed = false;
};

void HttpTransport::Impl::on_accepted(tcp::socket socket) {
  boost::system::error_code ec;
  socket.set_option(tcp::no_delay(true), ec);
  if (m_stopping.load()) {
    socket.close(ec);
    return;
  }
  if (m_connections.size() >= m_options.max_connections) {
    // Make room: the connection that has waited longest for a complete request gives way, one that
    // never authenticated first. Connections busy with a request or a stream are never closed.
    std::shared_ptr<Connection> victim;
    for (const auto& c : m_connections) {
      if (!c->evictable()) {
        continue;
      }
      if (!victim || std::make_pair(c->trusted(), c->waiting_since()) <
                         std::make_pair(victim->trusted(), victim->waiting_since())) {
        victim = c;
      }
    }
    if (!victim) {
      warn_rate_limited(m_last_evict_warning,
                        "http: {} connections open (--max-connections), all busy with requests or streams; refusing "
                        "new connections with 503",
                        m_connections.size());
      std::make_shared<Connection>(*this, std::move(socket))->refuse();
      return;
    }
    warn_rate_limited(m_last_evict_warning,
                      "http: {} connections open (--max-connections); closing the ones that wait longest for a "
                      "complete request (e.g. from {}) to admit new ones",
                      m_connections.size(), victim->remote());
    spdlog::debug("http: closed a connection from {} that waited for a request for {} ms ({})", victim->remote(),
                  std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - victim->waiting_since()).count(),
                  victim->trusted() ? "authenticated before" : "never authenticated");
    victim->close();
  }
  auto connection = std::make_shared<Connection>(*this, std::move(socket));
  m_connections.insert(connection);
  connection->start();
}

void HttpTransport::Impl::close_all_connections() {
  std::vector<std::shared_ptr<Connection>> left(m_connections.begin(), m_connections.end());
  for (auto& c : left) {
    c->close();
  }
  m_connections.clear();
}

void HttpTransport::Impl::begin_shutdown() {
  boost::system::error_code ec;
  m_acceptor.close(ec);
  m_accept_pause.cancel();
  // Requests in flight are answered with an error; streams carry it, then end.
  for (auto& s : all_sessions()) {
    end_session(*s, "the server is shutting down; the request was cancelled");
  }
  std::vector<std::shared_ptr<Connection>> connections(m_connections.begin(), m_connections.end());
  for (auto& c : connections) {
    c->on_shutdown();
  }
  m_work.reset();
  if (!m_connections.empty()) {
    m_shutdown_timer.expires_after(k_shutdown_flush);
    m_shutdown_timer.async_wait([this](boost::system::error_code e) {
      if (e) {
        return;
      }
      close_all_connections();
      m_io.stop();
    });
  }
}

HttpTransport::HttpTransport(HttpOptions options, EndpointFactory& factory)
    : m_impl(std::make_unique<Impl>(std::move(options), factory)) {}

HttpTransport::~HttpTransport() = default;

void HttpTransport::bind() {
  m_impl->bind();
}
int HttpTransport::port() const {
  return m_impl->port();
}
int HttpTransport::run() {
  return m_impl->run();
}
void HttpTransport::stop() {
  m_impl->stop();
}
std::size_t HttpTransport::session_count() const {
  return m_impl->session_count();
}

} // namespace smcp::transport
