// The Streamable HTTP transport's limits against the real binary: the session cap and idle expiry,
// half-sent requests that trickle in (they must not starve other clients), pipelining, and bad
// Content-Length values.
#include "tests/support/http_server_process.h"
#include "tests/support/raw_http.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace smcp::testing::http {
namespace {

TEST(HttpTransport, SessionCapEvictsTheLeastRecentlyUsedIdleSessionAndIdleExpiry) {
  HttpServerProcess server({"--max-sessions", "2", "--session-idle-timeout", "2"});
  const int port = server.port();
  const std::string a = open_session(port);
  const std::string b = open_session(port);
  expect_serving(port, a); // b is now the least recently used
  // Clients that never DELETE (claude mcp list) must not lock others out: the least
  // recently used idle session makes room, and the eviction is logged.
  const std::string c = open_session(port);
  EXPECT_EQ(post(port, b, tools_list()).status, 404) << "b was evicted";
  expect_serving(port, a);
  EXPECT_NE(server.stderr_text().find("evicted (least recently used"), std::string::npos) << server.stderr_text();
  // Sessions in use (here: open GET streams) are never evicted; with all in use, 503.
  Connection stream_a(port), stream_c(port);
  stream_a.send("GET", "/mcp", {{"Accept", "text/event-stream"}, {"Mcp-Session-Id", a}}, "");
  stream_c.send("GET", "/mcp", {{"Accept", "text/event-stream"}, {"Mcp-Session-Id", c}}, "");
  ASSERT_EQ(stream_a.read_head().status, 200);
  ASSERT_EQ(stream_c.read_head().status, 200);
  Response third = request(port, "POST", mcp_headers(), initialize_request().dump());
  EXPECT_EQ(third.status, 503);
  EXPECT_FALSE(third.header("Retry-After").empty());
  EXPECT_NE(third.error_message().find("too many sessions"), std::string::npos) << third.body;
  stream_c.close();

  // A session in use does not expire; idle ones do.
  auto until = Clock::now() + 3500ms;
  while (Clock::now() < until) {
    expect_serving(port, a);
    std::this_thread::sleep_for(300ms);
  }
  EXPECT_EQ(post(port, c, tools_list()).status, 404) << "idle for more than 2 s";
  expect_serving(port, a);
  EXPECT_NE(server.stderr_text().find("expired"), std::string::npos);
}

// Sends one more header line on each socket every `period` until stopped: half-sent requests
// that never complete (slowloris).
class Trickler {
public:
  Trickler(int port, int sockets, const std::string& start, std::chrono::milliseconds period) {
    for (int i = 0; i < sockets; ++i) {
      m_conns.push_back(std::make_unique<Connection>(port));
      m_conns.back()->send_raw(start);
    }
    m_thread = std::thread([this, period] {
      int line = 0;
      while (!m_stop.load()) {
        for (auto& c : m_conns) {
          c->send_raw("X-Slow-" + std::to_string(line) + ": 1\r\n");
        }
        ++line;
        std::unique_lock lock(m_mutex);
        m_cv.wait_for(lock, period, [&] { return m_stop.load(); });
      }
    });
  }
  ~Trickler() {
    m_stop = true;
    m_cv.notify_all();
    m_thread.join();
  }

private:
  std::vector<std::unique_ptr<Connection>> m_conns;
  std::atomic<bool> m_stop{false};
  std::mutex m_mutex;
  std::condition_variable m_cv;
  std::thread m_thread;
};

// Half-sent requests (one header line now and then) do not stop HTTP for others.
TEST(HttpTransport, TricklingConnectionsDoNotStarveOthers) {
  {
    // 520 sockets against the default --max-connections (512).
    HttpServerProcess server;
    const int port = server.port();
    Trickler slow(port, 520, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n", 1s);
    std::this_thread::sleep_for(500ms);
    Connection c(port);
    c.send("GET", "/healthz", {}, "");
    Response r = c.read_response(5s);
    EXPECT_EQ(r.status, 200) << "/healthz answered while 520 requests trickle in";
    expect_serving(port, open_session(port));
  }
  {
    // --max-connections 8, 10 trickling sockets.
    HttpServerProcess server({"--max-connections", "8"});
    const int port = server.port();
    const std::string session = open_session(port);
    Trickler slow(port, 10, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n", 1s);
    std::this_thread::sleep_for(500ms);
    for (int i = 0; i < 3; ++i) {
      Connection c(port);
      c.send("GET", "/healthz", {}, "");
      EXPECT_EQ(c.read_response(5s).status, 200) << "attempt " << i;
      expect_serving(port, session);
    }
  }
}

TEST(HttpTransport, UnauthenticatedHalfSentRequestsDoNotStarveAuthenticatedClients) {
  const std::string token = "s3cret-token-0123456789abcdef";
  HttpServerProcess server({"--max-connections", "8"}, {"SANDBOX_MCP_HTTP_TOKEN=" + token});
  const int port = server.port();
  const Headers auth = {{"Authorization", "Bearer " + token}};
  Trickler slow(port, 10,
                "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                "Accept: application/json, text/event-stream\r\n",
                1s);
  std::this_thread::sleep_for(500ms);
  Connection c(port);
  c.send("POST", "/mcp", mcp_headers("", auth), initialize_request().dump());
  Response init = c.read_response(5s);
  ASSERT_EQ(init.status, 200) << "authenticated initialize while 10 unauthenticated requests trickle in";
  expect_serving(port, open_session(port, "2025-11-25", auth), auth);
}

// Pipelined requests are all answered, in order.
TEST(HttpTransport, PipelinedRequestsAreAnsweredInOrder) {
  HttpServerProcess server;
  const int port = server.port();
  const std::string session = open_session(port);
  Connection c(port);
  std::string bytes;
  for (int i = 0; i < 3; ++i) {
    bytes += Connection::format(port, "GET", "/healthz", {}, "");
  }
  bytes += Connection::format(port, "POST", "/mcp", mcp_headers(session), tools_list(21).dump());
  bytes += Connection::format(port, "POST", "/mcp", mcp_headers(session), tools_list(22).dump());
  ASSERT_TRUE(c.send_raw(bytes));
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(c.read_response(5s).status, 200) << "GET /healthz #" << i + 1;
  }
  for (int id : {21, 22}) {
    Response r = c.read_response(5s);
    EXPECT_EQ(r.status, 200) << "POST id " << id;
    EXPECT_TRUE(response_with_id(r, id).contains("result")) << r.body;
  }
}

// Bad Content-Length values are answered at once.
TEST(HttpTransport, BadContentLengthIsAnsweredAtOnce) {
  HttpServerProcess server;
  const int port = server.port();
  const std::string session = open_session(port);
  for (const auto& [length, status] :
       std::vector<std::pair<std::string, int>>{{"-5", 400}, {"18446744073709551616", 400}, {"1000000000000", 413}}) {
    SCOPED_TRACE("Content-Length: " + length);
    Connection c(port);
    c.send_raw("POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nMcp-Session-Id: " + session +
               "\r\nContent-Length: " + length + "\r\n\r\n{}");
    Response r = c.read_response(3s);
    EXPECT_EQ(r.status, status) << r.body;
  }
  expect_serving(port, session);
}

} // namespace
} // namespace smcp::testing::http
