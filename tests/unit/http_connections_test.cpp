// The Streamable HTTP transport's connections, with a scripted protocol endpoint
// (tests/support/scripted_http.h): pipelining, unreadable requests, header and body deadlines, the
// connection limit.
#include "tests/support/raw_http.h"
#include "tests/support/scripted_http.h"
#include "transport/http_transport.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace smcp::testing::http {
namespace {

// Requests pipelined on one connection are all answered, in order.
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

// A Content-Length that is negative, overflows, or announces more than the limit is
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

// The header deadline counts from the start of the request; bytes trickling in do not
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

// At --max-connections, connections still waiting for a complete request give way to
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

} // namespace
} // namespace smcp::testing::http
