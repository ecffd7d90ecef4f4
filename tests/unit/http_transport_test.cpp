// The Streamable HTTP transport in-process, with a scripted protocol endpoint
// (tests/support/scripted_http.h): server-initiated messages on the GET stream, clients that left,
// and the transport's session bookkeeping (endpoints closed on DELETE, idle expiry and stop,
// least-recently-used eviction, calls answered with an error when their session ends).
#include "tests/support/raw_http.h"
#include "tests/support/scripted_http.h"
#include "transport/http_transport.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <thread>

namespace smcp::testing::http {
namespace {

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

// At --max-sessions a new client evicts the least recently used idle session; a
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

// Ending a session (DELETE) or the server (stop) during a call answers the call with
// a JSON-RPC error on its stream before the stream ends.
TEST_F(HttpTransportTest, DeleteDuringACallAnswersItWithAnError) {
  start();
  const std::string session = open_session(m_port);
  Connection c(m_port);
  std::string body;
  ASSERT_NO_FATAL_FAILURE(start_held_call(c, session, 9, body));
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
  std::string body;
  ASSERT_NO_FATAL_FAILURE(start_held_call(c, session, 11, body));
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

} // namespace
} // namespace smcp::testing::http
