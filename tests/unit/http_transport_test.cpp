// The Streamable HTTP transport in-process, with a scripted protocol endpoint behind the
// EndpointFactory seam: what the real core cannot be made to do on demand (server-initiated
// messages on the GET stream, a reply that floods a client that went away, answers held until the
// test releases them) and the transport's own bookkeeping (endpoints closed on DELETE, idle expiry
// and stop). Plus the option helpers.
#include "tests/support/raw_http.h"
#include "transport/http_request.h"
#include "transport/http_transport.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <condition_variable>
#include <mutex>
#include <thread>

namespace smcp::transport {
namespace {

using namespace smcp::testing::http;

// Answers initialize and any request with {}; "emit" notifications send a server-initiated message;
// "held" requests are answered from another thread once the test calls release(), after
// `notifications` progress notifications.
class ScriptedEndpoint final : public Endpoint {
public:
  explicit ScriptedEndpoint(std::shared_ptr<MessageSink> unsolicited) : m_unsolicited(std::move(unsolicited)) {}
  ~ScriptedEndpoint() override {
    if (m_worker.joinable()) {
      if (m_worker.get_id() == std::this_thread::get_id()) {
        m_worker.detach(); // the worker dropped the last reference (its reply sink held the session)
      } else {
        m_worker.join();
      }
    }
  }

  void receive(std::string_view raw, std::shared_ptr<MessageSink> reply) override {
    json m = json::parse(raw, nullptr, false);
    if (m.is_discarded() || !m.is_object()) {
      reply->send(R"({"error":{"code":-32700,"message":"Parse error"},"id":null,"jsonrpc":"2.0"})");
      reply->end();
      return;
    }
    const std::string method = m.value("method", "");
    if (!m.contains("id")) {
      if (method == "emit") {
        m_unsolicited->send(
            json({{"jsonrpc", "2.0"}, {"method", "notifications/message"}, {"params", m["params"]}}).dump());
      }
      reply->end();
      return;
    }
    if (method == "initialize") {
      {
        std::lock_guard lock(m_mutex);
        m_version = m["params"].value("protocolVersion", "2025-11-25");
      }
      reply->send(json({{"jsonrpc", "2.0"}, {"id", m["id"]}, {"result", {{"protocolVersion", m_version}}}}).dump());
      reply->end();
      return;
    }
    if (method == "held") {
      const int notifications = m["params"].value("notifications", 0);
      m_worker = std::thread([this, reply, id = m["id"], notifications] {
        {
          std::unique_lock lock(m_mutex);
          m_cv.wait(lock, [&] { return m_released || m_closed; });
        }
        auto start = std::chrono::steady_clock::now();
        for (int i = 0; i < notifications; ++i) {
          reply->send(json({{"jsonrpc", "2.0"},
                            {"method", "notifications/progress"},
                            {"params", {{"progressToken", 1}, {"progress", i}}}})
                          .dump());
        }
        reply->send(json({{"jsonrpc", "2.0"}, {"id", id}, {"result", {{"done", true}}}}).dump());
        reply->end();
        std::lock_guard lock(m_mutex);
        m_send_time = std::chrono::steady_clock::now() - start;
        m_answered = true;
        m_cv.notify_all();
      });
      return;
    }
    reply->send(json({{"jsonrpc", "2.0"}, {"id", m["id"]}, {"result", json::object()}}).dump());
    reply->end();
  }

  void receive_oversized(std::size_t, std::size_t, std::shared_ptr<MessageSink> reply) override {
    reply->send(R"({"error":{"code":-32600,"message":"too large"},"id":null,"jsonrpc":"2.0"})");
    reply->end();
  }

  std::string protocol_version() const override {
    std::lock_guard lock(m_mutex);
    return m_version;
  }

  void close() override {
    std::lock_guard lock(m_mutex);
    m_closed = true;
    m_cv.notify_all();
  }

  void release() {
    std::lock_guard lock(m_mutex);
    m_released = true;
    m_cv.notify_all();
  }

  // Waits until the held request was answered; returns how long its sends took.
  std::chrono::steady_clock::duration wait_answered() {
    std::unique_lock lock(m_mutex);
    m_cv.wait_for(lock, 10s, [&] { return m_answered; });
    return m_send_time;
  }

  bool closed() const {
    std::lock_guard lock(m_mutex);
    return m_closed;
  }

private:
  std::shared_ptr<MessageSink> m_unsolicited;
  mutable std::mutex m_mutex;
  std::condition_variable m_cv;
  std::string m_version;
  bool m_released = false;
  bool m_answered = false;
  bool m_closed = false;
  std::chrono::steady_clock::duration m_send_time{};
  std::thread m_worker;
};

class ScriptedFactory final : public EndpointFactory {
public:
  std::shared_ptr<Endpoint> open(std::shared_ptr<MessageSink> unsolicited) override {
    auto e = std::make_shared<ScriptedEndpoint>(std::move(unsolicited));
    std::lock_guard lock(m_mutex);
    m_endpoints.push_back(e);
    return e;
  }
  std::shared_ptr<ScriptedEndpoint> last() {
    std::lock_guard lock(m_mutex);
    return m_endpoints.empty() ? nullptr : m_endpoints.back();
  }
  std::vector<std::shared_ptr<ScriptedEndpoint>> all() {
    std::lock_guard lock(m_mutex);
    return m_endpoints;
  }

private:
  std::mutex m_mutex;
  std::vector<std::shared_ptr<ScriptedEndpoint>> m_endpoints;
};

class HttpTransportTest : public ::testing::Test {
protected:
  void start(HttpOptions options = {}) {
    options.host = "127.0.0.1";
    options.port = 0;
    m_transport = std::make_unique<HttpTransport>(options, m_factory);
    m_transport->bind();
    m_port = m_transport->port();
    m_thread = std::thread([this] { m_rc = m_transport->run(); });
  }
  void TearDown() override {
    if (m_transport) {
      m_transport->stop();
      m_thread.join();
    }
  }

  bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout = 5s) {
    auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      if (condition()) {
        return true;
      }
      std::this_thread::sleep_for(20ms);
    }
    return condition();
  }

  // The transport still serves: a request on `session` is answered.
  void expect_serving_scripted(const std::string& session) {
    Response r = post(m_port, session, {{"jsonrpc", "2.0"}, {"id", 99}, {"method", "ping"}});
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.json_body()["id"], 99) << r.body;
  }

  ScriptedFactory m_factory;
  std::unique_ptr<HttpTransport> m_transport;
  std::thread m_thread;
  int m_port = 0;
  int m_rc = -1;
};

Headers get_headers(const std::string& session, const std::string& last_event_id = "") {
  Headers h = {{"Accept", "text/event-stream"}, {"Mcp-Session-Id", session}};
  if (!last_event_id.empty()) {
    h.emplace_back("Last-Event-ID", last_event_id);
  }
  return h;
}

json emit(int n) {
  return {{"jsonrpc", "2.0"}, {"method", "emit"}, {"params", {{"n", n}}}};
}

TEST_F(HttpTransportTest, ServerInitiatedMessagesGoToTheGetStreamAndAreResumable) {
  start();
  const std::string session = open_session(m_port);

  // Sent while no GET stream is open: kept for the next one.
  ASSERT_EQ(post(m_port, session, emit(0)).status, 202);
  Connection stream(m_port);
  stream.send("GET", "/mcp", get_headers(session), "");
  Response head = stream.read_head();
  ASSERT_EQ(head.status, 200);
  EXPECT_EQ(head.header("Content-Type"), "text/event-stream");
  std::string body;
  ASSERT_TRUE(stream.read_body_until(body, [](const std::string& b) { return parse_sse(b).size() >= 1; }));
  // Sent while it is open: delivered live.
  ASSERT_EQ(post(m_port, session, emit(1)).status, 202);
  ASSERT_TRUE(stream.read_body_until(body, [](const std::string& b) { return parse_sse(b).size() >= 2; }));
  auto events = parse_sse(body);
  EXPECT_EQ(events[0].id, "0-0");
  EXPECT_EQ(json::parse(events[0].data)["params"]["n"], 0);
  EXPECT_EQ(events[1].id, "0-1");
  EXPECT_EQ(json::parse(events[1].data)["params"]["n"], 1);
  stream.close();

  // After a disconnect: one more message, then a reconnect with Last-Event-ID 0-0 replays 0-1 and 0-2.
  ASSERT_EQ(post(m_port, session, emit(2)).status, 202);
  Connection resumed(m_port);
  resumed.send("GET", "/mcp", get_headers(session, "0-0"), "");
  ASSERT_EQ(resumed.read_head().status, 200);
  std::string replay;
  ASSERT_TRUE(resumed.read_body_until(replay, [](const std::string& b) { return parse_sse(b).size() >= 2; }));
  auto again = parse_sse(replay);
  EXPECT_EQ(again[0].id, "0-1");
  EXPECT_EQ(again[1].id, "0-2");
  EXPECT_EQ(json::parse(again[1].data)["params"]["n"], 2);
}

TEST_F(HttpTransportTest, AClientThatLeftNeverBlocksTheProtocolCore) {
  HttpOptions options;
  options.sse_history = 64;
  start(options);
  const std::string session = open_session(m_port);
  std::string priming_id;
  {
    Connection c(m_port);
    c.send("POST", "/mcp", mcp_headers(session),
           json({{"jsonrpc", "2.0"}, {"id", 5}, {"method", "held"}, {"params", {{"notifications", 20000}}}}).dump());
    Response head = c.read_head();
    ASSERT_EQ(head.status, 200);
    ASSERT_EQ(head.header("Content-Type"), "text/event-stream");
    std::string body;
    ASSERT_TRUE(c.read_body_until(body, [](const std::string& b) { return !parse_sse(b).empty(); }));
    priming_id = parse_sse(body).front().id;
  } // the client leaves
  auto endpoint = m_factory.last();
  endpoint->release();
  // 20,000 notifications and the response are accepted without waiting for any client.
  EXPECT_LT(endpoint->wait_answered(), 2s);
  // The response is still there for a resuming client (the oldest notifications were dropped).
  Connection resumed(m_port);
  resumed.send("GET", "/mcp", get_headers(session, priming_id), "");
  Response r = resumed.read_response();
  ASSERT_EQ(r.status, 200);
  auto events = parse_sse(r.body);
  ASSERT_FALSE(events.empty());
  EXPECT_LE(events.size(), 64u);
  EXPECT_EQ(json::parse(events.back().data)["result"]["done"], true);
}

TEST_F(HttpTransportTest, EndpointsAreClosedOnDeleteIdleExpiryAndStop) {
  HttpOptions options;
  options.session_idle_timeout = 1s;
  start(options);
  const std::string deleted = open_session(m_port);
  auto deleted_endpoint = m_factory.last();
  ASSERT_EQ(m_transport->session_count(), 1u);
  ASSERT_EQ(request(m_port, "DELETE", {{"Mcp-Session-Id", deleted}}).status, 200);
  EXPECT_TRUE(eventually([&] { return deleted_endpoint->closed(); }));
  EXPECT_EQ(m_transport->session_count(), 0u);

  open_session(m_port);
  auto idle_endpoint = m_factory.last();
  EXPECT_TRUE(eventually([&] { return idle_endpoint->closed(); }, 5s)) << "idle for more than 1 s";
  EXPECT_EQ(m_transport->session_count(), 0u);

  // A session with an open GET stream is in use: it does not expire, and stop() ends it.
  const std::string busy = open_session(m_port);
  auto busy_endpoint = m_factory.last();
  Connection stream(m_port);
  stream.send("GET", "/mcp", get_headers(busy), "");
  ASSERT_EQ(stream.read_head().status, 200);
  std::this_thread::sleep_for(2500ms);
  EXPECT_FALSE(busy_endpoint->closed());
  EXPECT_EQ(m_transport->session_count(), 1u);
  m_transport->stop();
  m_thread.join();
  m_transport.reset();
  EXPECT_EQ(m_rc, 0);
  EXPECT_TRUE(busy_endpoint->closed());
  EXPECT_TRUE(stream.closed_by_peer(2s));
}

TEST_F(HttpTransportTest, StopBeforeRunReturnsAtOnce) {
  HttpOptions options;
  options.port = 0;
  HttpTransport transport(options, m_factory);
  transport.stop();
  auto start = Clock::now();
  EXPECT_EQ(transport.run(), 0);
  EXPECT_LT(Clock::now() - start, 2s);
}

json held(int id, int notifications = 0) {
  return {{"jsonrpc", "2.0"}, {"id", id}, {"method", "held"}, {"params", {{"notifications", notifications}}}};
}

// Issue 10.2: requests pipelined on one connection are all answered, in order.
TEST_F(HttpTransportTest, PipelinedRequestsAreAllAnsweredInOrder) {
  start();
  const std::string session = open_session(m_port);
  Connection c(m_port);
  std::string three_gets;
  for (int i = 0; i < 3; ++i) {
    three_gets += Connection::format(m_port, "GET", "/healthz", {}, "");
  }
  ASSERT_TRUE(c.send_raw(three_gets));
  for (int i = 0; i < 3; ++i) {
    Response r = c.read_response(5s);
    EXPECT_EQ(r.status, 200) << "pipelined GET /healthz #" << i + 1;
    EXPECT_EQ(r.json_body(), json({{"status", "ok"}}));
  }
  std::string two_posts;
  for (int id : {41, 42}) {
    two_posts += Connection::format(m_port, "POST", "/mcp", mcp_headers(session),
                                    json({{"jsonrpc", "2.0"}, {"id", id}, {"method", "ping"}}).dump());
  }
  ASSERT_TRUE(c.send_raw(two_posts));
  for (int id : {41, 42}) {
    Response r = c.read_response(5s);
    ASSERT_EQ(r.status, 200) << "pipelined POST id " << id;
    EXPECT_EQ(r.json_body()["id"], id) << "answers leave in request order";
  }
  // A pipelined request behind an SSE answer waits for the stream's end, then is answered.
  auto endpoint = m_factory.last();
  ASSERT_TRUE(c.send_raw(Connection::format(m_port, "POST", "/mcp", mcp_headers(session), held(43).dump()) +
                         Connection::format(m_port, "GET", "/healthz", {}, "")));
  Response head = c.read_head(5s);
  ASSERT_EQ(head.status, 200);
  ASSERT_EQ(head.header("Content-Type"), "text/event-stream");
  endpoint->release();
  std::string body;
  ASSERT_TRUE(c.read_body_until(
      body, [&](const std::string&) { return c.body_done(); }, 5s));
  EXPECT_EQ(json::parse(parse_sse(body).back().data)["id"], 43);
  EXPECT_EQ(c.read_response(5s).status, 200);
}

// Issue 10.3: a Content-Length that is negative, overflows, or announces more than the limit is
// answered at once (not after a read timeout), with the right status.
TEST_F(HttpTransportTest, BadContentLengthIsAnsweredAtOnce) {
  start();
  const std::string session = open_session(m_port);
  const std::string head = "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                           "Accept: application/json, text/event-stream\r\n";
  for (const auto& [length, status] : std::vector<std::pair<std::string, int>>{
           {"-5", 400}, {"18446744073709551616", 400}, {"12abc", 400}, {"1000000000000", 413}}) {
    SCOPED_TRACE("Content-Length: " + length);
    Connection c(m_port);
    ASSERT_TRUE(c.send_raw(head + "Content-Length: " + length + "\r\n\r\n{\"jsonrpc\":\"2.0\"}"));
    auto start_time = Clock::now();
    Response r = c.read_response(3s);
    EXPECT_EQ(r.status, status) << r.body;
    EXPECT_LT(Clock::now() - start_time, 2s);
    EXPECT_FALSE(r.error_message().empty()) << r.body;
    EXPECT_TRUE(c.closed_by_peer(3s));
  }
  expect_serving_scripted(session);
}

// Issue 10.1: the header deadline counts from the start of the request; bytes trickling in do not
// extend it. Same for the body.
TEST_F(HttpTransportTest, TrickledHeadersAndBodiesHitTheirDeadline) {
  HttpOptions options;
  options.header_timeout = 1s;
  options.body_timeout = 1s;
  start(options);
  const std::string session = open_session(m_port);
  {
    Connection c(m_port);
    ASSERT_TRUE(c.send_raw("POST /mcp HTTP/1.1\r\n"));
    bool refused = false;
    for (int i = 0; i < 20 && !refused; ++i) { // 4 s of one header line every 200 ms
      std::this_thread::sleep_for(200ms);
      refused = !c.send_raw("X-Trickle-" + std::to_string(i) + ": a\r\n");
    }
    Response r = c.read_response(1s);
    EXPECT_EQ(r.status, 408) << r.body;
    EXPECT_NE(r.error_message().find("headers"), std::string::npos) << r.body;
    EXPECT_TRUE(c.closed_by_peer(1s));
  }
  {
    Connection c(m_port);
    std::string request = Connection::format(m_port, "POST", "/mcp", mcp_headers(session), tools_list(3).dump());
    const std::size_t body_start = request.find("\r\n\r\n") + 4;
    ASSERT_TRUE(c.send_raw(request.substr(0, body_start)));
    for (std::size_t i = body_start; i < request.size() && i < body_start + 20; ++i) {
      std::this_thread::sleep_for(200ms);
      if (!c.send_raw(request.substr(i, 1))) {
        break;
      }
    }
    Response r = c.read_response(1s);
    EXPECT_EQ(r.status, 408) << r.body;
    EXPECT_NE(r.error_message().find("body"), std::string::npos) << r.body;
  }
  expect_serving_scripted(session);
}

// Issue 10.1: at --max-connections, connections still waiting for a complete request give way to
// new ones; never-authenticated ones first, so they never starve authenticated clients.
TEST_F(HttpTransportTest, HalfSentRequestsGiveWayAtTheConnectionLimit) {
  HttpOptions options;
  options.max_connections = 8;
  options.bearer_token = "0123456789abcdef0123456789abcdef";
  start(options);
  const Headers auth = {{"Authorization", "Bearer " + options.bearer_token}};
  const std::string session = open_session(m_port, "2025-11-25", auth);
  // An authenticated client keeps an idle keep-alive connection open.
  Connection keep(m_port);
  keep.send("POST", "/mcp", mcp_headers(session, auth), tools_list(5).dump());
  ASSERT_EQ(keep.read_response().status, 200);
  std::vector<std::unique_ptr<Connection>> half;
  for (int i = 0; i < 10; ++i) {
    half.push_back(std::make_unique<Connection>(m_port));
    half.back()->send_raw("POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n");
  }
  std::this_thread::sleep_for(100ms);
  for (int round = 0; round < 3; ++round) {
    Response health = request(m_port, "GET", {}, "", "/healthz");
    EXPECT_EQ(health.status, 200) << "round " << round;
    Response init = request(m_port, "POST", mcp_headers("", auth), initialize_request().dump());
    EXPECT_EQ(init.status, 200) << "round " << round << ": " << init.body;
    for (auto& h : half) { // the half-sent requests keep trickling
      h->send_raw("X-Slow: 1\r\n");
    }
  }
  // The authenticated idle connection outlived the never-authenticated half-sent ones.
  keep.send("POST", "/mcp", mcp_headers(session, auth), tools_list(6).dump());
  EXPECT_EQ(keep.read_response(5s).status, 200);
}

// Issue 9.3: at --max-sessions a new client evicts the least recently used idle session; a
// session with a call in flight or an open GET stream is never evicted; 503 when all are in use.
TEST_F(HttpTransportTest, FullSessionTableEvictsTheLeastRecentlyUsedIdleSession) {
  HttpOptions options;
  options.max_sessions = 3;
  start(options);
  const std::string busy = open_session(m_port); // oldest, but with a call in flight
  auto busy_endpoint = m_factory.last();
  Connection call(m_port);
  call.send("POST", "/mcp", mcp_headers(busy), held(7).dump());
  ASSERT_EQ(call.read_head().status, 200);
  const std::string streaming = open_session(m_port); // with an open GET stream
  Connection stream(m_port);
  stream.send("GET", "/mcp", get_headers(streaming), "");
  ASSERT_EQ(stream.read_head().status, 200);
  const std::string old_idle = open_session(m_port);
  auto old_idle_endpoint = m_factory.last();
  std::this_thread::sleep_for(20ms);

  const std::string fresh = open_session(m_port);
  EXPECT_EQ(post(m_port, old_idle, tools_list()).status, 404) << "the idle session was evicted";
  EXPECT_TRUE(eventually([&] { return old_idle_endpoint->closed(); }));
  EXPECT_EQ(m_transport->session_count(), 3u);
  expect_serving_scripted(busy);
  expect_serving_scripted(streaming);
  EXPECT_FALSE(busy_endpoint->closed());

  // Now `fresh` is the only idle one: the next client takes its place.
  const std::string newest = open_session(m_port);
  EXPECT_EQ(post(m_port, fresh, tools_list()).status, 404);
  // Every session in use: refused.
  Connection call2(m_port);
  call2.send("POST", "/mcp", mcp_headers(newest), held(8).dump());
  ASSERT_EQ(call2.read_head().status, 200);
  Response refused = request(m_port, "POST", mcp_headers(), initialize_request().dump());
  EXPECT_EQ(refused.status, 503);
  EXPECT_FALSE(refused.header("Retry-After").empty());
  busy_endpoint->release();
  m_factory.last()->release();
}

// Issue 10, 12: ending a session (DELETE) or the server (stop) during a call answers the call with
// a JSON-RPC error on its stream before the stream ends.
TEST_F(HttpTransportTest, DeleteDuringACallAnswersItWithAnError) {
  start();
  const std::string session = open_session(m_port);
  Connection c(m_port);
  c.send("POST", "/mcp", mcp_headers(session), held(9).dump());
  ASSERT_EQ(c.read_head().status, 200);
  std::string body;
  ASSERT_TRUE(c.read_body_until(body, [](const std::string& b) { return !parse_sse(b).empty(); }));
  ASSERT_EQ(request(m_port, "DELETE", {{"Mcp-Session-Id", session}}).status, 200);
  ASSERT_TRUE(c.read_body_until(
      body, [&](const std::string&) { return c.body_done(); }, 5s));
  auto events = parse_sse(body);
  ASSERT_FALSE(events.empty());
  ASSERT_FALSE(events.back().data.empty()) << body;
  json last = json::parse(events.back().data);
  EXPECT_EQ(last["id"], 9) << body;
  EXPECT_NE(last["error"]["message"].get<std::string>().find("DELETE"), std::string::npos) << body;
  // A client waiting for a JSON answer gets the error as JSON.
  const std::string other = open_session(m_port);
  Connection j(m_port);
  j.send("POST", "/mcp", mcp_headers(other, {{"Accept", "application/json"}}), held(10).dump());
  std::this_thread::sleep_for(200ms);
  ASSERT_EQ(request(m_port, "DELETE", {{"Mcp-Session-Id", other}}).status, 200);
  Response r = j.read_response(5s);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json_body()["id"], 10) << r.body;
  EXPECT_TRUE(r.json_body().contains("error")) << r.body;
}

TEST_F(HttpTransportTest, StopDuringACallAnswersItWithAnError) {
  start();
  const std::string session = open_session(m_port);
  Connection c(m_port);
  c.send("POST", "/mcp", mcp_headers(session), held(11).dump());
  ASSERT_EQ(c.read_head().status, 200);
  std::string body;
  ASSERT_TRUE(c.read_body_until(body, [](const std::string& b) { return !parse_sse(b).empty(); }));
  m_transport->stop();
  ASSERT_TRUE(c.read_body_until(
      body, [&](const std::string&) { return c.body_done(); }, 5s))
      << body;
  auto events = parse_sse(body);
  ASSERT_FALSE(events.empty());
  json last = json::parse(events.back().data);
  EXPECT_EQ(last["id"], 11) << body;
  EXPECT_NE(last["error"]["message"].get<std::string>().find("shutting down"), std::string::npos) << body;
  m_thread.join();
  m_transport.reset();
  EXPECT_EQ(m_rc, 0);
}

// The request path's pure functions (also driven by tests/fuzz/fuzz_http_request.cpp).
TEST(HttpRequestTest, ParsesPipelinedRequestsAndRefusesBadOnes) {
  http::RequestLimits limits;
  limits.max_header_bytes = 1024;
  limits.max_body_bytes = 16;
  limits.drain_limit = http::drain_limit_for(16);
  const std::string two = "POST /mcp?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}"
                          "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n";
  auto first = http::parse_request(two, limits);
  ASSERT_EQ(first.outcome, http::ParsedRequest::Outcome::complete);
  EXPECT_EQ(first.method, "POST");
  EXPECT_EQ(http::target_path(first.target), "/mcp");
  EXPECT_EQ(first.body, "{}");
  EXPECT_EQ(first.header("host"), "a");
  auto second = http::parse_request(std::string_view(two).substr(first.consumed), limits);
  ASSERT_EQ(second.outcome, http::ParsedRequest::Outcome::complete);
  EXPECT_EQ(second.method, "GET");
  EXPECT_EQ(second.consumed, two.size() - first.consumed);

  EXPECT_EQ(http::parse_request("POST /mcp HTTP/1.1\r\nHost: a\r\n", limits).outcome,
            http::ParsedRequest::Outcome::incomplete);
  auto status_of = [&](const std::string& bytes) { return http::parse_request(bytes, limits).status; };
  EXPECT_EQ(status_of("POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n"), 400);
  EXPECT_EQ(status_of("POST / HTTP/1.1\r\nContent-Length: 18446744073709551616\r\n\r\n"), 400);
  EXPECT_EQ(status_of("POST / HTTP/1.1\r\nContent-Length: 1000000000000\r\n\r\n"), 413);
  EXPECT_EQ(status_of("GET / HTTP/1.1\r\nX: " + std::string(2000, 'a') + "\r\n\r\n"), 431);
  EXPECT_EQ(status_of("\x01\x02 / HTTP/1.1\r\n\r\n"), 400);
  // Over max_body_bytes but within the drain limit: read, discarded, marked.
  auto big = http::parse_request("POST / HTTP/1.1\r\nContent-Length: 20\r\n\r\n" + std::string(20, 'x'), limits);
  ASSERT_EQ(big.outcome, http::ParsedRequest::Outcome::complete);
  EXPECT_TRUE(big.oversized);
  EXPECT_EQ(big.body_bytes, 20u);
  EXPECT_TRUE(big.body.empty());
  auto chunked =
      http::parse_request("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", limits);
  ASSERT_EQ(chunked.outcome, http::ParsedRequest::Outcome::complete);
  EXPECT_EQ(chunked.body, "{}");
}

TEST(HttpRequestTest, HeaderChecks) {
  EXPECT_EQ(http::parse_last_event_id("3-14"), std::make_pair(std::uint64_t{3}, std::uint64_t{14}));
  for (const char* bad : {"", "3", "-1", "3-", "a-1", "1-2-3", "99999999999999999999-1"}) {
    EXPECT_FALSE(http::parse_last_event_id(bad)) << bad;
  }
  EXPECT_TRUE(http::plausible_session_id(std::string(48, 'a')));
  EXPECT_FALSE(http::plausible_session_id(std::string(47, 'a')));
  EXPECT_FALSE(http::plausible_session_id(std::string(48, 'A')));
  EXPECT_TRUE(http::host_allowed("localhost:8765", {}, true));
  EXPECT_TRUE(http::host_allowed("[::1]:1", {}, true));
  EXPECT_FALSE(http::host_allowed("evil.example:80", {}, true));
  EXPECT_FALSE(http::host_allowed("localhost:http", {}, true));
  EXPECT_TRUE(http::host_allowed("mcp.internal:443", {"mcp.internal"}, true));
  EXPECT_TRUE(http::host_allowed("anything", {}, false));
  EXPECT_TRUE(http::origin_allowed("http://localhost:5173", {}));
  EXPECT_TRUE(http::origin_allowed("https://app.example.com/", {"https://app.example.com"}));
  for (const char* bad : {"null", "http://localhost:80@evil.example.com", "http://localhost.evil.example.com",
                          "file://localhost", "http://127.0.0.1/path"}) {
    EXPECT_FALSE(http::origin_allowed(bad, {})) << bad;
  }
  EXPECT_EQ(http::bearer_token("Bearer  abc "), "abc");
  EXPECT_EQ(http::bearer_token("bearer abc"), "abc");
  EXPECT_FALSE(http::bearer_token("Basic abc"));
  EXPECT_TRUE(http::constant_time_equal("abc", "abc"));
  EXPECT_FALSE(http::constant_time_equal("abd", "abc"));
  EXPECT_FALSE(http::constant_time_equal("", ""));
  auto a = http::parse_accept(std::string_view("application/json;q=0, text/event-stream"));
  EXPECT_FALSE(a.json);
  EXPECT_TRUE(a.sse);
  auto none = http::parse_accept(std::nullopt);
  EXPECT_TRUE(none.json && none.sse);
  EXPECT_EQ(http::request_ids(R"([{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","method":"n"},)"
                              R"({"jsonrpc":"2.0","id":"x","method":"b","params":{"id":3}}])"),
            (std::vector<std::string>{"1", "\"x\""}));
  EXPECT_EQ(http::response_id(R"({"jsonrpc":"2.0","id":"x","result":{"id":1}})"), "\"x\"");
  EXPECT_FALSE(http::response_id(R"({"jsonrpc":"2.0","method":"notifications/progress","params":{"id":1}})"));
  EXPECT_TRUE(http::is_error_without_id(R"({"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}})"));
  EXPECT_FALSE(http::is_error_without_id(R"({"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"x"}})"));
}

TEST(HttpOptionsTest, ListenAddresses) {
  std::string host;
  int port = -1;
  parse_listen_address("127.0.0.1:8765", host, port);
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_EQ(port, 8765);
  parse_listen_address("[::1]:0", host, port);
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(port, 0);
  parse_listen_address(":9000", host, port);
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_EQ(port, 9000);
  for (const char* bad : {"8765", "localhost:", "host:http", "host:70000", "::1:80", "[::1]80", "[::1"}) {
    EXPECT_THROW(parse_listen_address(bad, host, port), std::invalid_argument) << bad;
  }
}

TEST(HttpOptionsTest, LoopbackAndSafety) {
  for (const char* h : {"127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]", "LOCALHOST"}) {
    EXPECT_TRUE(is_loopback_host(h)) << h;
  }
  for (const char* h : {"0.0.0.0", "::", "192.168.1.5", "localhost.example.com", "127.0.0.1.example.com"}) {
    EXPECT_FALSE(is_loopback_host(h)) << h;
  }
  HttpOptions o;
  EXPECT_EQ(validate_http_options(o), "");
  o.host = "0.0.0.0";
  EXPECT_NE(validate_http_options(o).find("--auth-token-file"), std::string::npos);
  o.bearer_token = "short";
  EXPECT_NE(validate_http_options(o).find("too short"), std::string::npos);
  o.bearer_token = "with space 0123456789";
  EXPECT_NE(validate_http_options(o).find("visible ASCII"), std::string::npos);
  o.bearer_token = "0123456789abcdef";
  EXPECT_EQ(validate_http_options(o), "");
}

} // namespace
} // namespace smcp::transport
