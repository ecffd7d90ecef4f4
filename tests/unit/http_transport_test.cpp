// The Streamable HTTP transport in-process, with a scripted protocol endpoint behind the
// EndpointFactory seam: what the real core cannot be made to do on demand (server-initiated
// messages on the GET stream, a reply that floods a client that went away, answers held until the
// test releases them) and the transport's own bookkeeping (endpoints closed on DELETE, idle expiry
// and stop). Plus the option helpers.
#include "tests/support/raw_http.h"
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
      m_worker.join();
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
