#include "transport/http/request_handler.h"

#include "transport/http/jsonrpc.h"
#include "transport/http/reply_sink.h"
#include "transport/http/text.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

namespace smcp::transport::http {

using namespace std::chrono_literals;

namespace {

// How often a waiting JSON answer checks for shutdown.
constexpr auto k_shutdown_check = 200ms;

// Every Accept line counts (a list split over lines is one list, RFC 9110 section 5.3).
Accepts accepts_of(const Request& req) {
  std::optional<std::string> all;
  for (const auto& [name, value] : req.headers) {
    if (iequals(name, "Accept")) {
      all = all ? *all + ", " + value : value;
    }
  }
  return parse_accept(all ? std::optional<std::string_view>(*all) : std::nullopt);
}

// A refused request is a warning at most once a second; the others in between are debug lines,
// counted in the next warning, so that a flood of refused requests does not flood the log.
template <typename... Args> void warn_refusal(spdlog::format_string_t<Args...> fmt, Args&&... args) {
  static std::atomic<std::int64_t> last_ms{0};
  static std::atomic<std::uint64_t> quiet{0};
  const std::int64_t now =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count();
  std::int64_t last = last_ms.load();
  if (now - last >= 1000 && last_ms.compare_exchange_strong(last, now)) {
    if (const std::uint64_t n = quiet.exchange(0)) {
      spdlog::warn("http: {} more request(s) refused in the last second (logged at debug level)", n);
    }
    spdlog::warn(fmt, std::forward<Args>(args)...);
    return;
  }
  ++quiet;
  spdlog::debug(fmt, std::forward<Args>(args)...);
}

} // namespace

RequestHandler::RequestHandler(const HttpOptions& options, EndpointFactory& factory, SessionTable& sessions,
                               const std::atomic<bool>& stopping)
    : m_options(options), m_factory(factory), m_sessions(sessions), m_stopping(stopping) {
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
}

void RequestHandler::handle(const Request& req, Response& res) {
  if (req.method == "HEAD" && req.path == "/healthz") {
    res.set_content("{\"status\":\"ok\"}", "application/json"); // the connection drops the body
  } else if (req.method == "GET") {
    handle_get(req, res);
  } else if (req.method == "OPTIONS") {
    handle_options(req, res);
  } else {
    handle_with_body(req, res);
  }
  // A request refused before it was admitted (path, Host, Origin, token) ends its connection: a
  // client without the token gets one answer per connection, not a pipelined stream of them.
  if (res.status >= 400 && !res.authenticated) {
    res.close = true;
  }
}

void RequestHandler::method_not_allowed(Response& res) const {
  res.set_header("Allow", "GET, POST, DELETE, OPTIONS");
  set_error(res, 405, k_code_transport, "Method Not Allowed: use POST, GET or DELETE on " + m_options.path);
}

bool RequestHandler::admit_head(const Request& head, Response& res) {
  // Only requests with a body come here. The two answered without a token take none: a body on
  // them would be buffered for a client that never authenticated.
  if (((head.method == "GET" || head.method == "HEAD") && head.path == "/healthz") || head.method == "OPTIONS") {
    set_error(res, 400, k_code_transport,
              "Bad Request: " + head.method + " " + head.path.substr(0, 80) + " takes no request body");
    return false;
  }
  if (!at_endpoint(head, res)) {
    return false;
  }
  if (!admit(head, res, true)) {
    return false;
  }
  if (head.method != "POST" && head.method != "GET" && head.method != "DELETE") {
    method_not_allowed(res);
    return false;
  }
  return true;
}

// ------------------------------------------------------------------ checks

bool RequestHandler::at_endpoint(const Request& req, Response& res) const {
  if (req.path != m_options.path) {
    set_error(res, 404, k_code_transport, "Not Found: the MCP endpoint is " + m_options.path);
    return false;
  }
  return true;
}

// Host, Origin and bearer token. Sets the rejection and returns false when the request may not
// proceed; adds CORS headers for an allowed browser origin.
bool RequestHandler::admit(const Request& req, Response& res, bool authenticate) {
  const std::string host = req.header("Host");
  if (!host_allowed(host, m_allowed_hosts, m_bound_to_loopback)) {
    warn_refusal("http: rejected {} {} from {}: Host '{}' not allowed", req.method, req.path, req.remote_addr,
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
    if (!origin_allowed(origin, m_allowed_origins)) {
      warn_refusal("http: rejected {} {} from {}: Origin '{}' not allowed", req.method, req.path, req.remote_addr,
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
    const auto presented = bearer_token(req.header("Authorization"));
    if (!presented || !constant_time_equal(*presented, m_options.bearer_token)) {
      warn_refusal("http: rejected {} {} from {}: {}", req.method, req.path, req.remote_addr,
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

bool RequestHandler::check_protocol_version(const Request& req, Response& res) const {
  if (!req.has_header("MCP-Protocol-Version")) {
    return true; // the spec says: assume 2025-03-26
  }
  const std::string v = req.header("MCP-Protocol-Version");
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
              "Bad Request: unsupported MCP-Protocol-Version '" + v.substr(0, 80) + "'" +
                  (supported.empty() ? std::string() : " (supported: " + supported + ")"));
  }
  return ok;
}

// The session a request names: 400 without Mcp-Session-Id, 404 when unknown or ended.
std::shared_ptr<HttpSession> RequestHandler::find_session(const Request& req, Response& res) {
  if (!req.has_header("Mcp-Session-Id")) {
    set_error(res, 400, k_code_transport,
              "Bad Request: Mcp-Session-Id header is required. Start a session with an initialize request "
              "(without Mcp-Session-Id) and send the id from its Mcp-Session-Id response header.");
    return nullptr;
  }
  const std::string id = req.header("Mcp-Session-Id");
  if (plausible_session_id(id)) {
    if (auto session = m_sessions.find(id)) {
      return session;
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

void RequestHandler::handle_with_body(const Request& req, Response& res) {
  if (!at_endpoint(req, res)) {
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
    method_not_allowed(res);
    return;
  }
  handle_post(req, res);
}

void RequestHandler::handle_post(const Request& req, Response& res) {
  const Accepts accepts = accepts_of(req);
  if (!accepts.json && !accepts.sse) {
    set_error(res, 406, k_code_transport,
              "Not Acceptable: the Accept header must allow application/json and text/event-stream (send "
              "'Accept: application/json, text/event-stream')");
    return;
  }
  if (!is_json_content_type(req.header("Content-Type"))) {
    set_error(res, 415, k_code_transport,
              "Unsupported Media Type: Content-Type must be application/json, got '" +
                  req.header("Content-Type").substr(0, 80) + "'");
    return;
  }
  if (!check_protocol_version(req, res)) {
    return;
  }
  if (req.oversized) {
    answer_oversized(req, res);
    return;
  }
  if (!req.has_header("Mcp-Session-Id")) {
    std::string parse_message;
    switch (classify_body(req.body, parse_message)) {
    case BodyKind::parse_error:
      set_error(res, 400, k_code_parse_error, parse_message);
      return;
    case BodyKind::other:
      find_session(req, res); // the 400 "Mcp-Session-Id header is required"
      return;
    case BodyKind::initialize:
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

void RequestHandler::answer_oversized(const Request& req, Response& res) {
  spdlog::warn("http: refused a {}-byte body from {} (limit {})", req.body_bytes, req.remote_addr,
               m_options.max_body_bytes);
  std::shared_ptr<HttpSession> session;
  if (req.has_header("Mcp-Session-Id")) {
    session = m_sessions.find(req.header("Mcp-Session-Id"));
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
}

void RequestHandler::initialize(const Request& req, Response& res, const Accepts& accepts) {
  if (!m_sessions.reserve(req.remote_addr)) {
    res.set_header("Retry-After", "30");
    set_error(res, 503, k_code_transport,
              "Service Unavailable: too many sessions (" + std::to_string(m_options.max_sessions) +
                  ", the server's --max-sessions), all with a request in flight or an open stream. End "
                  "unused sessions with DELETE, or retry later.");
    return;
  }
  struct Unreserve {
    SessionTable& sessions;
    ~Unreserve() { sessions.unreserve(); }
  } unreserve{m_sessions};

  auto session = HttpSession::open(m_factory, m_options.sse_history);
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
  m_sessions.add(session);
  spdlog::info("http: session {}... opened for {} (protocol {})", session->id.substr(0, 8), req.remote_addr, version);
  res.set_header("Mcp-Session-Id", session->id);
  if (accepts.json) {
    respond_json(res, messages);
  } else {
    respond_sse(res, session, messages);
  }
}

// Hands one POST body to its session's protocol endpoint and answers: 202 when nothing is owed,
// JSON when every answer arrived while receive() ran, otherwise an SSE stream carrying the
// progress and log notifications and then the response (or JSON after waiting, when the client
// does not accept SSE).
void RequestHandler::deliver(const std::shared_ptr<HttpSession>& session, const std::string& body,
                             const Accepts& accepts, Response& res) {
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
    respond_sse(res, session, messages);
    return;
  }
  if (messages.empty() && session->closed.load()) {
    set_error(res, 404, k_code_session_not_found, "Session not found: the session ended while the request ran");
    return;
  }
  respond_json(res, messages);
}

void RequestHandler::respond_json(Response& res, std::vector<std::string>& messages) {
  if (messages.empty()) {
    res.status = 202; // only notifications or responses were posted
    return;
  }
  // Notifications tied to a request precede its response; a JSON answer carries the response.
  std::string& response = messages.back();
  res.status = is_error_without_id(response) ? 400 : 200;
  res.set_content(std::move(response), "application/json");
}

void RequestHandler::respond_sse(Response& res, const std::shared_ptr<HttpSession>& session,
                                 std::vector<std::string>& messages) {
  auto stream = session->new_stream(m_options.sse_history);
  for (auto& m : messages) {
    stream->push(std::move(m));
  }
  stream->finish();
  respond_sse(res, session, stream, 0, false);
}

void RequestHandler::respond_sse(Response& res, const std::shared_ptr<HttpSession>& session,
                                 const std::shared_ptr<SseStream>& stream, std::uint64_t cursor, bool hold_open) {
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

void RequestHandler::handle_get(const Request& req, Response& res) {
  if (req.path == "/healthz") {
    res.set_content("{\"status\":\"ok\"}", "application/json");
    return;
  }
  if (!at_endpoint(req, res) || !admit(req, res, true)) {
    return;
  }
  if (!accepts_of(req).sse) {
    set_error(res, 406, k_code_transport, "Not Acceptable: GET opens an SSE stream; send 'Accept: text/event-stream'");
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
  resume_stream(req, res, session);
}

// A GET with Last-Event-ID: the events after it, then what comes (or an idle open stream when
// that stream is complete).
void RequestHandler::resume_stream(const Request& req, Response& res, const std::shared_ptr<HttpSession>& session) {
  const std::string last = req.header("Last-Event-ID");
  auto parsed = parse_last_event_id(last);
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

void RequestHandler::handle_delete(const Request& req, Response& res) {
  if (!check_protocol_version(req, res)) {
    return;
  }
  auto session = find_session(req, res);
  if (!session) {
    return;
  }
  m_sessions.remove(session->id);
  spdlog::info("http: session {}... ended by the client", session->id.substr(0, 8));
  session->end("the session was ended by the client (DELETE) before this request finished; it was cancelled");
  m_sessions.schedule_close(session);
  res.status = 200;
}

void RequestHandler::handle_options(const Request& req, Response& res) {
  if (!at_endpoint(req, res)) {
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

} // namespace smcp::transport::http
