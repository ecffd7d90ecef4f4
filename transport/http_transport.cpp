#include "transport/http_transport.h"

#include <httplib.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <condition_variable>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <sys/random.h>
#include <sys/socket.h>
#include <thread>

#if defined(__SANITIZE_THREAD__)
// libcpp-httplib is a prebuilt library without ThreadSanitizer instrumentation: TSan does not see
// its synchronisation (e.g. the guard of a function-local static that two SSE streams ending at
// once initialise) and reports races on the memory it passes to send()/memcpy(). Ignore the
// intercepted calls made from inside it; every access made by our (instrumented) code still counts.
extern "C" const char* __tsan_default_suppressions() {
  return "called_from_lib:libcpp-httplib.so\n";
}
#endif

namespace smcp::transport {

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
// How often a waiting SSE writer checks that its client is still connected.
constexpr auto k_liveness_check = 1s;
// How often a waiting JSON answer checks for shutdown.
constexpr auto k_shutdown_check = 200ms;
constexpr std::size_t k_session_id_bytes = 24;

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
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

void set_error(httplib::Response& res, int status, int code, const std::string& message) {
  res.status = status;
  res.set_content(error_body(code, message), "application/json");
}

// Which of our two answer formats a request's Accept header allows (RFC 9110 media ranges; a
// missing header accepts anything; q=0 excludes).
struct Accepts {
  bool json = false;
  bool sse = false;
};

Accepts parse_accept(const httplib::Request& req) {
  if (!req.has_header("Accept")) {
    return {true, true};
  }
  Accepts a;
  std::string header = lower(req.get_header_value("Accept"));
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

bool is_json_content_type(const httplib::Request& req) {
  std::string type = lower(req.get_header_value("Content-Type"));
  return trim(std::string_view(type).substr(0, type.find(';'))) == "application/json";
}

// The name part of a Host header or of an origin's authority ("name[:port]"), lower-cased; IPv6
// keeps its brackets. Empty when the authority is malformed (e.g. a port that is not a number).
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

bool is_loopback_name(const std::string& name) {
  if (name == "localhost" || name == "[::1]" || name == "::1") {
    return true;
  }
  // 127.0.0.0/8 as a dotted quad.
  if (name.rfind("127.", 0) != 0) {
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

// Equal-length-independent comparison whose time depends only on the presented value's length.
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

bool looks_like_version(const std::string& v) {
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

// What a session-less POST carries: only an initialize request may create a session.
enum class BodyKind { initialize, parse_error, other };

BodyKind classify_body(const std::string& body, std::string& parse_message) {
  // Keep only the top level: nested objects and arrays are skipped while parsing (bounded memory,
  // no deep recursion on hostile input).
  auto top_level_only = [](int depth, json::parse_event_t event, json&) {
    return !((event == json::parse_event_t::object_start || event == json::parse_event_t::array_start) && depth >= 1);
  };
  json message;
  try {
    message = json::parse(body, top_level_only);
  } catch (const json::parse_error& e) {
    std::string what = e.what();
    if (auto pos = what.find("parse error"); pos != std::string::npos) {
      what = what.substr(pos);
    }
    parse_message = "Parse error: " + what;
    return BodyKind::parse_error;
  }
  if (message.is_object()) {
    auto method = message.find("method");
    if (method != message.end() && method->is_string() && *method == "initialize" && message.contains("id")) {
      return BodyKind::initialize;
    }
  }
  return BodyKind::other;
}

// A JSON-RPC error answering no request id (parse error, invalid request): the HTTP status is 400.
bool is_error_without_id(const std::string& message) {
  if (message.size() > 64 * 1024 || message.find("\"error\"") == std::string::npos) {
    return false;
  }
  try {
    json j = json::parse(message);
    return j.is_object() && j.contains("error") && j.contains("id") && j["id"].is_null();
  } catch (const json::exception&) {
    return false;
  }
}

// httplib's pool has a fixed size, and every open connection or SSE stream holds a worker for as
// long as it lasts; this queue grows on demand up to `max` threads so that long tool calls and
// open streams never starve short requests. Threads stay for reuse until shutdown.
class ElasticTaskQueue final : public httplib::TaskQueue {
public:
  explicit ElasticTaskQueue(std::size_t max_threads) : m_max(std::max<std::size_t>(max_threads, 2)) {}

  void enqueue(std::function<void()> fn) override {
    {
      std::lock_guard lock(m_mutex);
      m_jobs.push_back(std::move(fn));
      if (m_jobs.size() > m_idle) {
        if (m_threads.size() < m_max) {
          m_threads.emplace_back([this] { work(); });
        } else if (!m_warned) {
          m_warned = true;
          spdlog::warn("http: all {} worker threads are busy (open connections and SSE streams); new connections "
                       "wait until one ends (raise --max-connections)",
                       m_max);
        }
      }
    }
    m_cv.notify_one();
  }

  void shutdown() override {
    {
      std::lock_guard lock(m_mutex);
      m_shutdown = true;
    }
    m_cv.notify_all();
    for (auto& t : m_threads) {
      t.join();
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

// One SSE stream of a session: the events written to it, kept (bounded) so that a client can
// resume with Last-Event-ID after its connection broke. Index 0 is the session's GET stream;
// every POST answered with SSE gets its own. Event ids are "<stream>-<seq>", unique in a session.
class SseStream {
public:
  SseStream(std::uint64_t index, std::size_t history) : m_index(index), m_history(std::max<std::size_t>(history, 1)) {}

  std::uint64_t index() const { return m_index; }

  void push(std::string data, std::optional<long long> retry_ms = std::nullopt) {
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
    }
    m_cv.notify_all();
  }

  // No more events: writers end the response once they have sent everything.
  void finish() {
    {
      std::lock_guard lock(m_mutex);
      m_finished = true;
    }
    m_cv.notify_all();
  }

  // The session ended (or the server stops): writers end at once.
  void close() {
    {
      std::lock_guard lock(m_mutex);
      m_closed = true;
    }
    m_cv.notify_all();
  }

  void wake() { m_cv.notify_all(); }

  // A new connection takes over the stream; a previous writer ends. Returns its generation.
  std::uint64_t attach() {
    std::uint64_t generation;
    {
      std::lock_guard lock(m_mutex);
      generation = ++m_generation;
    }
    m_cv.notify_all();
    return generation;
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
  std::condition_variable m_cv;
  std::deque<Event> m_events;
  std::uint64_t m_next_seq = 0;
  std::uint64_t m_delivered = 0; // events before this were written to some connection
  std::uint64_t m_dropped = 0;   // undelivered events lost to the history bound
  std::uint64_t m_generation = 0;
  bool m_finished = false;
  bool m_closed = false;
};

// Activity on a session: requests being handled, attached SSE writers and replies still owed keep
// it from idle expiry; the last one to end stamps the time.
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

// Writes one SSE stream to one HTTP connection, from `cursor` on: events as they come, a comment
// line when idle (detecting a vanished client), and the end of the response once the stream is
// finished (or, with `hold_open`, not even then: a resumed, already complete stream stays open
// idle, as the reference server does, so that clients do not reconnect in a loop).
class SseWriter {
public:
  SseWriter(std::shared_ptr<HttpSession> session, std::shared_ptr<SseStream> stream, std::uint64_t cursor,
            bool hold_open, std::chrono::milliseconds keepalive, const std::atomic<bool>& stopping)
      : m_session(std::move(session)), m_stream(std::move(stream)), m_cursor(cursor), m_hold_open(hold_open),
        m_keepalive(keepalive), m_stopping(stopping), m_generation(m_stream->attach()), m_last_write(Clock::now()) {}

  // One step of httplib's content provider: blocks until there is something to write.
  bool step(httplib::DataSink& sink) {
    SseStream& s = *m_stream;
    std::unique_lock lock(s.m_mutex);
    for (;;) {
      if (m_stopping.load() || s.m_closed || m_session->closed.load() || s.m_generation != m_generation) {
        lock.unlock();
        sink.done();
        return true;
      }
      if (m_cursor < s.m_next_seq) {
        std::string out;
        for (const auto& event : s.m_events) {
          if (event.seq >= m_cursor) {
            append_event(out, s, event);
          }
        }
        m_cursor = s.m_next_seq;
        lock.unlock();
        if (!sink.write(out.data(), out.size())) {
          return false;
        }
        m_last_write = Clock::now();
        lock.lock();
        s.m_delivered = std::max(s.m_delivered, m_cursor);
        return true;
      }
      if (s.m_finished && !m_hold_open) {
        lock.unlock();
        sink.done();
        return true;
      }
      auto now = Clock::now();
      auto keepalive_at = m_last_write + m_keepalive;
      if (now >= keepalive_at) {
        lock.unlock();
        static const std::string comment = ": keepalive\n\n";
        if (!sink.write(comment.data(), comment.size())) {
          return false;
        }
        m_last_write = Clock::now();
        return true;
      }
      auto wait = std::min<Clock::duration>(keepalive_at - now, k_liveness_check);
      if (s.m_cv.wait_for(lock, wait) == std::cv_status::timeout) {
        lock.unlock();
        if (!sink.is_writable()) {
          return false; // the client went away
        }
        lock.lock();
      }
    }
  }

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
  bool m_hold_open;
  std::chrono::milliseconds m_keepalive;
  const std::atomic<bool>& m_stopping;
  std::uint64_t m_generation;
  Clock::time_point m_last_write;
};

// Where the protocol core answers one POST: messages are collected until the handler decides
// between a JSON answer (everything arrived while receive() ran) and an SSE stream (work goes on
// on a worker thread); after that switch they go to the stream. Never blocks the core.
class ReplySink final : public MessageSink {
public:
  explicit ReplySink(std::shared_ptr<HttpSession> session) : m_activity(std::make_unique<Activity>(session)) {}

  void send(std::string message) override {
    std::lock_guard lock(m_mutex);
    if (m_stream) {
      m_stream->push(std::move(message));
    } else {
      m_messages.push_back(std::move(message));
    }
  }

  void end() override {
    {
      std::lock_guard lock(m_mutex);
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

std::string url_host(const std::string& host) {
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

} // namespace

bool is_loopback_host(const std::string& host) {
  std::string name = lower(host);
  if (name.size() > 2 && name.front() == '[' && name.back() == ']') {
    name = name.substr(1, name.size() - 2);
  }
  return is_loopback_name(name);
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
  return "";
}

class HttpTransport::Impl {
public:
  Impl(HttpOptions options, EndpointFactory& factory) : m_options(std::move(options)), m_factory(factory) {
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
    setup_server();
  }

  ~Impl() {
    stop();
    if (m_reaper.joinable()) {
      m_reaper.join();
    }
  }

  void bind() {
    if (m_port >= 0) {
      return;
    }
    if (auto err = validate_http_options(m_options); !err.empty()) {
      throw std::runtime_error(err);
    }
    int port = m_options.port == 0 ? m_server.bind_to_any_port(m_options.host)
                                   : (m_server.bind_to_port(m_options.host, m_options.port) ? m_options.port : -1);
    if (port < 0) {
      throw std::runtime_error("cannot listen on " + m_options.host + ":" + std::to_string(m_options.port) + ": " +
                               std::strerror(errno) +
                               " (is another server using the port? choose another with --http HOST:PORT, or :0)");
    }
    // httplib listens with a backlog of 5, which drops connections when many clients connect at once.
    if (m_listen_fd >= 0) {
      ::listen(m_listen_fd, SOMAXCONN);
    }
    m_port = port;
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
    m_reaper = std::thread([this] { reap_loop(); });
    {
      std::lock_guard lock(m_run_mutex);
      m_listening = !m_stopping.load();
    }
    if (m_listening) {
      m_server.listen_after_bind();
    }
    {
      std::lock_guard lock(m_run_mutex);
      m_listening = false;
    }
    stop();
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
      end_session(*s);
      s->endpoint->close();
    }
    drain_close_queue();
    spdlog::info("http: stopped ({} session(s) ended)", sessions.size());
    return 0;
  }

  void stop() {
    if (m_stopping.exchange(true)) {
      return;
    }
    wake_all_streams();
    {
      std::lock_guard lock(m_close_mutex); // the reaper sees m_stopping or gets the notification
    }
    m_reaper_cv.notify_all();
    // listen_after_bind() may be about to start: stop it once it runs.
    for (;;) {
      {
        std::lock_guard lock(m_run_mutex);
        if (!m_listening || m_server.is_running()) {
          break;
        }
      }
      std::this_thread::sleep_for(1ms);
    }
    m_server.stop();
  }

  std::size_t session_count() const {
    std::lock_guard lock(m_sessions_mutex);
    return m_sessions.size();
  }

private:
  // ------------------------------------------------------------------ setup
  void setup_server() {
    m_server.new_task_queue = [this] { return new ElasticTaskQueue(m_options.max_connections); };
    m_server.set_socket_options([this](socket_t sock) {
      int yes = 1;
      ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
      m_listen_fd = sock;
    });
    m_server.set_tcp_nodelay(true);
    m_server.set_keep_alive_max_count(100000);
    m_server.set_keep_alive_timeout(5);
    m_server.set_read_timeout(30, 0);
    m_server.set_write_timeout(10, 0);
    m_server.set_payload_max_length(m_options.max_body_bytes);

    auto with_body = [this](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader) {
      handle_with_body(req, res, &reader);
    };
    auto without_body = [this](const httplib::Request& req, httplib::Response& res) {
      handle_with_body(req, res, nullptr);
    };
    m_server.Post(".*", with_body);
    m_server.Post(".*", without_body);
    m_server.Delete(".*", with_body);
    m_server.Delete(".*", without_body);
    m_server.Put(".*", with_body);
    m_server.Put(".*", without_body);
    m_server.Patch(".*", with_body);
    m_server.Patch(".*", without_body);
    m_server.Get(".*", [this](const httplib::Request& req, httplib::Response& res) { handle_get(req, res); });
    m_server.Options(".*", [this](const httplib::Request& req, httplib::Response& res) { handle_options(req, res); });

    // Answers httplib produces itself (malformed request line, oversized headers, ...) get a
    // JSON-RPC error body too.
    httplib::Server::HandlerWithResponse on_error = [](const httplib::Request& req, httplib::Response& res) {
      if (res.body.empty() && !res.content_provider_) {
        res.set_content(error_body(k_code_transport, "HTTP " + std::to_string(res.status) +
                                                         ": the server could not "
                                                         "process this " +
                                                         req.method + " request"),
                        "application/json");
      }
      return httplib::Server::HandlerResponse::Handled;
    };
    m_server.set_error_handler(on_error);
    m_server.set_exception_handler([](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
      std::string what = "unknown error";
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
      }
      spdlog::error("http: {} {} failed: {}", req.method, req.path, what);
      set_error(res, 500, k_code_transport, "Internal error: " + what);
    });
    m_server.set_logger([](const httplib::Request& req, const httplib::Response& res) {
      spdlog::debug("http: {} {} -> {} ({} {})", req.method, req.path, res.status, req.remote_addr, req.remote_port);
    });
  }

  // ------------------------------------------------------------------ checks
  // Host, Origin and bearer token. Sets the rejection and returns false when the request may not
  // proceed; adds CORS headers for an allowed browser origin.
  bool admit(const httplib::Request& req, httplib::Response& res, bool authenticate) {
    const std::string host = req.get_header_value("Host");
    if (!host_allowed(host)) {
      spdlog::warn("http: rejected {} {} from {}: Host '{}' not allowed", req.method, req.path, req.remote_addr, host);
      set_error(res, 403, k_code_transport,
                "Forbidden: Host header '" + host +
                    "' is not allowed (DNS rebinding protection). This server answers to localhost, 127.0.0.1 and "
                    "[::1]" +
                    (m_allowed_hosts.empty() ? std::string() : " and the names given with --allow-host") +
                    "; add a name with --allow-host NAME.");
      return false;
    }
    if (req.has_header("Origin")) {
      const std::string origin = req.get_header_value("Origin");
      if (!origin_allowed(origin)) {
        spdlog::warn("http: rejected {} {} from {}: Origin '{}' not allowed", req.method, req.path, req.remote_addr,
                     origin);
        set_error(res, 403, k_code_transport,
                  "Forbidden: Origin '" + origin +
                      "' is not allowed. Browser pages may call this server only from http(s)://localhost, "
                      "127.0.0.1 or [::1], or from an origin given with --allow-origin.");
        return false;
      }
      res.set_header("Access-Control-Allow-Origin", origin);
      res.set_header("Access-Control-Expose-Headers", "Mcp-Session-Id, MCP-Protocol-Version");
      res.set_header("Vary", "Origin");
    }
    if (authenticate && !m_options.bearer_token.empty()) {
      const std::string auth = req.get_header_value("Authorization");
      const bool has_bearer = auth.size() > 7 && lower(auth.substr(0, 7)) == "bearer ";
      const std::string presented = has_bearer ? std::string(trim(std::string_view(auth).substr(7))) : std::string();
      if (!has_bearer || !constant_time_equal(presented, m_options.bearer_token)) {
        spdlog::warn("http: rejected {} {} from {}: {}", req.method, req.path, req.remote_addr,
                     has_bearer ? "wrong bearer token" : "no bearer token");
        res.set_header("WWW-Authenticate", has_bearer ? "Bearer realm=\"sandbox-mcp\", error=\"invalid_token\""
                                                      : "Bearer realm=\"sandbox-mcp\"");
        set_error(res, 401, k_code_transport,
                  has_bearer ? "Unauthorized: the bearer token is not valid for this server"
                             : "Unauthorized: this server requires 'Authorization: Bearer TOKEN' (the token given to "
                               "the server with --auth-token-file or SANDBOX_MCP_HTTP_TOKEN)");
        return false;
      }
    }
    return true;
  }

  bool host_allowed(const std::string& host) const {
    if (host.empty()) {
      return false;
    }
    const std::string name = authority_name(host);
    if (is_loopback_name(name)) {
      return true;
    }
    if (m_allowed_hosts.count(lower(host)) || m_allowed_hosts.count(name)) {
      return true;
    }
    // Beyond loopback every request carries the token; without --allow-host any name is served.
    return !m_bound_to_loopback && m_allowed_hosts.empty();
  }

  bool origin_allowed(const std::string& origin) const {
    std::string o = lower(origin);
    while (!o.empty() && o.back() == '/') {
      o.pop_back();
    }
    if (m_allowed_origins.count(o)) {
      return true;
    }
    for (const char* scheme : {"http://", "https://"}) {
      std::string_view prefix(scheme);
      if (o.rfind(prefix, 0) == 0) {
        std::string_view authority = std::string_view(o).substr(prefix.size());
        if (authority.find('/') != std::string_view::npos) {
          return false;
        }
        return is_loopback_name(authority_name(authority));
      }
    }
    return false; // "null", other schemes
  }

  bool check_protocol_version(const httplib::Request& req, httplib::Response& res) const {
    if (!req.has_header("MCP-Protocol-Version")) {
      return true; // the spec says: assume 2025-03-26
    }
    const std::string v = req.get_header_value("MCP-Protocol-Version");
    bool ok = m_options.protocol_versions.empty()
                  ? looks_like_version(v)
                  : std::find(m_options.protocol_versions.begin(), m_options.protocol_versions.end(), v) !=
                        m_options.protocol_versions.end();
    if (!ok) {
      std::string supported;
      for (const auto& s : m_options.protocol_versions) {
        supported += (supported.empty() ? "" : ", ") + s;
      }
      set_error(res, 400, k_code_transport,
                "Bad Request: unsupported MCP-Protocol-Version '" + v + "'" +
                    (supported.empty() ? std::string() : " (supported: " + supported + ")"));
    }
    return ok;
  }

  // The session a request names: 400 without Mcp-Session-Id, 404 when unknown or ended.
  std::shared_ptr<HttpSession> find_session(const httplib::Request& req, httplib::Response& res) {
    if (!req.has_header("Mcp-Session-Id")) {
      set_error(res, 400, k_code_transport,
                "Bad Request: Mcp-Session-Id header is required. Start a session with an initialize request "
                "(without Mcp-Session-Id) and send the id from its Mcp-Session-Id response header.");
      return nullptr;
    }
    const std::string id = req.get_header_value("Mcp-Session-Id");
    {
      std::lock_guard lock(m_sessions_mutex);
      if (auto it = m_sessions.find(id); it != m_sessions.end()) {
        return it->second;
      }
    }
    set_error(res, 404, k_code_session_not_found,
              "Session not found: Mcp-Session-Id '" + id.substr(0, 80) +
                  "' is unknown or has ended (deleted, idle for more than " +
                  std::to_string(m_options.session_idle_timeout.count()) +
                  " s, or the server restarted). Send a new initialize request without Mcp-Session-Id.");
    return nullptr;
  }

  // ------------------------------------------------------------------ handlers
  void handle_with_body(const httplib::Request& req, httplib::Response& res, const httplib::ContentReader* reader) {
    const bool mcp = req.path == m_options.path;
    const Accepts accepts = parse_accept(req);
    const bool keep = mcp && req.method == "POST";

    // Read (or drain) the body within the limit. A body over the limit is read to its end and
    // discarded, so that the connection stays usable.
    std::string body;
    std::size_t total = 0;
    bool oversized = false;
    bool read_ok = true;
    if (reader) {
      read_ok = (*reader)([&](const char* data, std::size_t n) {
        total += n;
        if (keep && !oversized) {
          if (body.size() + n > m_options.max_body_bytes) {
            oversized = true;
            body.clear();
            body.shrink_to_fit();
          } else {
            body.append(data, n);
          }
        }
        return true;
      });
      if (!read_ok && res.status == 413) {
        oversized = true;
        total = static_cast<std::size_t>(req.get_header_value<std::uint64_t>("Content-Length"));
        read_ok = true;
      }
      res.status = -1;
    }

    if (!mcp) {
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
    if (!accepts.json && !accepts.sse) {
      set_error(res, 406, k_code_transport,
                "Not Acceptable: the Accept header must allow application/json and text/event-stream (send "
                "'Accept: application/json, text/event-stream')");
      return;
    }
    if (!is_json_content_type(req)) {
      set_error(res, 415, k_code_transport,
                "Unsupported Media Type: Content-Type must be application/json, got '" +
                    req.get_header_value("Content-Type") + "'");
      return;
    }
    if (!read_ok) {
      set_error(res, 400, k_code_transport, "Bad Request: the request body could not be read");
      return;
    }
    if (!check_protocol_version(req, res)) {
      return;
    }
    if (oversized) {
      spdlog::warn("http: refused a {}-byte body from {} (limit {})", total, req.remote_addr, m_options.max_body_bytes);
      std::shared_ptr<HttpSession> session;
      if (req.has_header("Mcp-Session-Id")) {
        std::lock_guard lock(m_sessions_mutex);
        if (auto it = m_sessions.find(req.get_header_value("Mcp-Session-Id")); it != m_sessions.end()) {
          session = it->second;
        }
      }
      if (session) {
        // The protocol core words the answer, as for stdio.
        auto sink = std::make_shared<ReplySink>(session);
        session->endpoint->receive_oversized(total, m_options.max_body_bytes, sink);
        std::lock_guard lock(sink->m_mutex);
        if (!sink->m_messages.empty()) {
          res.status = 413;
          res.set_content(sink->m_messages.back(), "application/json");
          return;
        }
      }
      set_error(res, 413, k_code_invalid_request,
                "Message too large: " + std::to_string(total) + " bytes exceeds the limit of " +
                    std::to_string(m_options.max_body_bytes) +
                    " bytes; the message was discarded. Send smaller requests (the server's --max-body-bytes).");
      return;
    }

    if (!req.has_header("Mcp-Session-Id")) {
      std::string parse_message;
      switch (classify_body(body, parse_message)) {
      case BodyKind::parse_error:
        set_error(res, 400, k_code_parse_error, parse_message);
        return;
      case BodyKind::other:
        find_session(req, res); // the 400 "Mcp-Session-Id header is required"
        return;
      case BodyKind::initialize:
        initialize(req, res, body, accepts);
        return;
      }
    }
    auto session = find_session(req, res);
    if (!session) {
      return;
    }
    res.set_header("Mcp-Session-Id", session->id);
    deliver(session, body, accepts, res);
  }

  void initialize(const httplib::Request& req, httplib::Response& res, const std::string& body,
                  const Accepts& accepts) {
    {
      std::lock_guard lock(m_sessions_mutex);
      if (m_sessions.size() + m_creating >= m_options.max_sessions) {
        spdlog::warn("http: refused a new session from {}: {} sessions open (limit {})", req.remote_addr,
                     m_sessions.size(), m_options.max_sessions);
        res.set_header("Retry-After", "30");
        set_error(res, 503, k_code_transport,
                  "Service Unavailable: too many sessions (" + std::to_string(m_options.max_sessions) +
                      ", the server's --max-sessions). End unused sessions with DELETE, or wait for idle ones to "
                      "expire (" +
                      std::to_string(m_options.session_idle_timeout.count()) + " s).");
        return;
      }
      ++m_creating;
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

    auto sink = std::make_shared<ReplySink>(session);
    session->endpoint->receive(body, sink);
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
  void deliver(const std::shared_ptr<HttpSession>& session, const std::string& body, const Accepts& accepts,
               httplib::Response& res) {
    Activity activity(session);
    auto sink = std::make_shared<ReplySink>(session);
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

  static void respond_json(httplib::Response& res, std::vector<std::string>& messages) {
    if (messages.empty()) {
      res.status = 202; // only notifications or responses were posted
      return;
    }
    // Notifications tied to a request precede its response; a JSON answer carries the response.
    std::string& response = messages.back();
    res.status = is_error_without_id(response) ? 400 : 200;
    res.set_content(std::move(response), "application/json");
  }

  void respond_sse(httplib::Response& res, const std::shared_ptr<HttpSession>& session,
                   const std::shared_ptr<SseStream>& stream, std::uint64_t cursor, bool hold_open) {
    res.status = 200;
    res.set_header("Cache-Control", "no-cache, no-transform");
    res.set_header("X-Accel-Buffering", "no"); // nginx: do not buffer the stream
    if (!res.has_header("Mcp-Session-Id")) {
      res.set_header("Mcp-Session-Id", session->id);
    }
    auto writer = std::make_shared<SseWriter>(session, stream, cursor, hold_open, m_options.sse_keepalive, m_stopping);
    auto activity = std::make_shared<Activity>(session);
    ++m_open_streams;
    res.set_chunked_content_provider(
        "text/event-stream", [writer](std::size_t, httplib::DataSink& sink) { return writer->step(sink); },
        [this, session, stream, activity](bool) mutable {
          --m_open_streams;
          // A POST stream whose every event reached the client is not needed for resumption.
          if (stream->index() != 0 && stream->finished_and_delivered()) {
            std::lock_guard lock(session->mutex);
            session->streams.erase(stream->index());
          }
          activity.reset();
        });
  }

  void handle_get(const httplib::Request& req, httplib::Response& res) {
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
    if (!parse_accept(req).sse) {
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
                    "); the server keeps worker threads for other requests (raise --max-connections)");
      return;
    }
    if (!req.has_header("Last-Event-ID")) {
      // The session's stream for server-initiated messages; a new GET takes it over.
      respond_sse(res, session, session->standalone, session->standalone->delivered(), false);
      return;
    }
    const std::string last = req.get_header_value("Last-Event-ID");
    std::uint64_t index = 0, seq = 0;
    {
      auto dash = last.find('-');
      const std::string a = last.substr(0, dash), b = dash == std::string::npos ? "" : last.substr(dash + 1);
      bool numeric = !a.empty() && !b.empty() && a.size() < 19 && b.size() < 19 &&
                     a.find_first_not_of("0123456789") == std::string::npos &&
                     b.find_first_not_of("0123456789") == std::string::npos;
      if (!numeric) {
        set_error(res, 400, k_code_transport,
                  "Bad Request: Last-Event-ID '" + last.substr(0, 80) + "' is not an event id of this server");
        return;
      }
      index = std::stoull(a);
      seq = std::stoull(b);
    }
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
      respond_sse(res, session, stream, 0, true);
      return;
    }
    spdlog::debug("http: session {}... resumes stream {} after event {}", session->id.substr(0, 8), index, seq);
    respond_sse(res, session, stream, seq + 1, stream->exhausted_at(seq + 1));
  }

  void handle_delete(const httplib::Request& req, httplib::Response& res) {
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
    end_session(*session);
    schedule_close(session);
    res.status = 200;
  }

  void handle_options(const httplib::Request& req, httplib::Response& res) {
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
  // Marks the session ended and ends its streams; the endpoint is closed by the caller.
  static void end_session(HttpSession& session) {
    std::vector<std::shared_ptr<SseStream>> streams;
    {
      std::lock_guard lock(session.mutex);
      session.closed = true;
      streams.push_back(session.standalone);
      for (auto& [index, s] : session.streams) {
        streams.push_back(s);
      }
    }
    for (auto& s : streams) {
      s->close();
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
        end_session(*s);
        s->endpoint->close();
      }
    }
  }

  void wake_all_streams() {
    std::lock_guard lock(m_sessions_mutex);
    for (auto& [id, session] : m_sessions) {
      std::lock_guard slock(session->mutex);
      session->standalone->wake();
      for (auto& [index, s] : session->streams) {
        s->wake();
      }
    }
  }

  HttpOptions m_options;
  EndpointFactory& m_factory;
  bool m_bound_to_loopback = true;
  std::set<std::string> m_allowed_origins;
  std::set<std::string> m_allowed_hosts;

  httplib::Server m_server;
  int m_listen_fd = -1;
  int m_port = -1;
  std::atomic<bool> m_stopping{false};
  std::mutex m_run_mutex;
  bool m_listening = false;

  mutable std::mutex m_sessions_mutex;
  std::map<std::string, std::shared_ptr<HttpSession>> m_sessions;
  std::size_t m_creating = 0;
  std::atomic<std::size_t> m_open_streams{0};

  std::thread m_reaper;
  std::mutex m_close_mutex;
  std::condition_variable m_reaper_cv;
  std::deque<std::shared_ptr<HttpSession>> m_close_queue;
};

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
