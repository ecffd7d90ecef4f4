// The Streamable HTTP transport against the real binary (`sandbox-mcp serve --http 127.0.0.1:0`,
// tests/support/http_server_process.h), driven with raw HTTP/1.1 over loopback sockets: the session
// lifecycle, concurrent sessions with a long tool call, progress over SSE, resumption with
// Last-Event-ID, the GET stream, batches, and a clean stop on SIGTERM.
#include "tests/support/http_server_process.h"
#include "tests/support/raw_http.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace smcp::testing::http {
namespace {

TEST(HttpTransport, SessionLifecycleInitializeListCallDelete) {
  HttpServerProcess server;
  const int port = server.port();

  Response init = request(port, "POST", mcp_headers(), initialize_request().dump());
  ASSERT_EQ(init.status, 200) << init.body;
  EXPECT_NE(init.header("Content-Type").find("application/json"), std::string::npos);
  const std::string session = init.header("Mcp-Session-Id");
  ASSERT_GE(session.size(), 32u) << "session ids carry at least 128 random bits";
  EXPECT_TRUE(std::regex_match(session, std::regex("[\\x21-\\x7e]+"))) << session;
  json result = response_with_id(init, 1)["result"];
  EXPECT_EQ(result["protocolVersion"], "2025-11-25");
  EXPECT_TRUE(result["capabilities"].contains("tools"));

  // A second session gets another id.
  EXPECT_NE(open_session(port), session);

  // Notification -> 202 without a body.
  Response note = post(port, session, {{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}});
  EXPECT_EQ(note.status, 202);
  EXPECT_TRUE(note.body.empty());

  // tools/list -> JSON.
  Response list = post(port, session, tools_list(2));
  ASSERT_EQ(list.status, 200);
  EXPECT_NE(list.header("Content-Type").find("application/json"), std::string::npos);
  bool has_remote_bash = false;
  const json tools = response_with_id(list, 2)["result"]["tools"];
  for (const auto& t : tools) {
    has_remote_bash = has_remote_bash || t["name"] == "remote_bash";
  }
  EXPECT_TRUE(has_remote_bash);

  // tools/call -> an SSE stream: a priming event (id, no data), then the response.
  Response call = post(port, session, tools_call(3, "echo hi"));
  ASSERT_EQ(call.status, 200) << call.body;
  EXPECT_EQ(call.header("Content-Type"), "text/event-stream");
  auto events = parse_sse(call.body);
  ASSERT_GE(events.size(), 2u) << call.body;
  EXPECT_FALSE(events.front().id.empty());
  EXPECT_TRUE(events.front().data.empty()) << "priming event first";
  json answer = response_with_id(call, 3);
  EXPECT_EQ(answer["result"]["structuredContent"]["stdout"], "hi\n") << call.body;
  EXPECT_EQ(answer["result"]["structuredContent"]["exit_code"], 0);

  // A client that accepts only JSON gets the tool result as JSON.
  Response json_call = post(port, session, tools_call(4, "echo json"), {{"Accept", "application/json"}});
  ASSERT_EQ(json_call.status, 200);
  EXPECT_NE(json_call.header("Content-Type").find("application/json"), std::string::npos);
  EXPECT_EQ(response_with_id(json_call, 4)["result"]["structuredContent"]["stdout"], "json\n");

  // DELETE ends the session: everything after is 404.
  Response del = request(port, "DELETE", {{"Mcp-Session-Id", session}});
  EXPECT_EQ(del.status, 200);
  Response after = post(port, session, tools_list(5));
  EXPECT_EQ(after.status, 404);
  EXPECT_EQ(after.error_code(), -32001);
  EXPECT_EQ(request(port, "GET", {{"Accept", "text/event-stream"}, {"Mcp-Session-Id", session}}).status, 404);
  EXPECT_EQ(request(port, "DELETE", {{"Mcp-Session-Id", session}}).status, 404);

  EXPECT_TRUE(server.alive());
  EXPECT_TRUE(server.stdout_text().empty()) << "nothing but protocol on stdout, and HTTP has none";
}

TEST(HttpTransport, HealthzAnswersWithoutAuthentication) {
  HttpServerProcess server({}, {"SANDBOX_MCP_HTTP_TOKEN=0123456789abcdef0123456789abcdef"});
  Response r = request(server.port(), "GET", {}, "", "/healthz");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.json_body(), json({{"status", "ok"}}));
}

TEST(HttpTransport, LongToolCallOnOneSessionDoesNotBlockOthers) {
  HttpServerProcess server;
  const int port = server.port();
  const std::string slow_session = open_session(port);
  const std::string session = open_session(port);

  // 4 s: long enough that the 16 sessions below finish first even under TSan on a loaded machine.
  std::atomic<bool> slow_done{false};
  Response slow;
  std::thread slow_client([&] {
    slow = post(port, slow_session, tools_call(10, "sleep 4; echo slept"), {{"Accept", "application/json"}});
    slow_done = true;
  });
  std::this_thread::sleep_for(200ms);
  // Meanwhile: 16 sessions (the busy one included) each answer tools/list quickly.
  std::vector<std::string> sessions = {session, slow_session};
  for (int i = 0; i < 14; ++i) {
    sessions.push_back(open_session(port));
  }
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  std::atomic<long long> slowest_ms{0};
  for (const auto& s : sessions) {
    clients.emplace_back([&, s] {
      for (int i = 0; i < 5; ++i) {
        auto start = Clock::now();
        Response r = post(port, s, tools_list(20 + i));
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
        slowest_ms = std::max<long long>(slowest_ms.load(), ms);
        if (r.status == 200 && response_with_id(r, 20 + i).contains("result")) {
          ++ok;
        }
      }
    });
  }
  for (auto& t : clients) {
    t.join();
  }
  EXPECT_EQ(ok.load(), 16 * 5);
  EXPECT_FALSE(slow_done.load()) << "the long call was still running while the others were served";
  EXPECT_LT(slowest_ms.load(), 1000) << "tools/list waited behind the long call";
  slow_client.join();
  EXPECT_EQ(slow.status, 200) << slow.body;
  EXPECT_EQ(response_with_id(slow, 10)["result"]["structuredContent"]["stdout"], "slept\n");
}

TEST(HttpTransport, ProgressNotificationsStreamBeforeTheResponse) {
  HttpServerProcess server;
  const int port = server.port();
  const std::string session = open_session(port);
  Connection c(port);
  c.send("POST", "/mcp", mcp_headers(session),
         tools_call(11, "for i in 1 2 3 4; do echo step$i; sleep 0.4; done", {{"progressToken", "tok-1"}}).dump());
  Response head = c.read_head();
  ASSERT_EQ(head.status, 200);
  ASSERT_EQ(head.header("Content-Type"), "text/event-stream");
  // The first progress notification arrives while the command still runs.
  std::string body;
  auto start = Clock::now();
  ASSERT_TRUE(c.read_body_until(
      body, [](const std::string& b) { return b.find("notifications/progress") != std::string::npos; }));
  EXPECT_LT(Clock::now() - start, 1500ms) << "progress streamed, not buffered until the end";
  ASSERT_TRUE(c.read_body_until(body, [&](const std::string&) { return c.body_done(); }));
  std::vector<json> messages;
  for (const auto& e : parse_sse(body)) {
    if (!e.data.empty()) {
      messages.push_back(json::parse(e.data));
    }
  }
  ASSERT_GE(messages.size(), 2u) << body;
  EXPECT_EQ(messages.back()["id"], 11);
  EXPECT_EQ(messages.back()["result"]["structuredContent"]["stdout"], "step1\nstep2\nstep3\nstep4\n");
  for (std::size_t i = 0; i + 1 < messages.size(); ++i) {
    EXPECT_EQ(messages[i]["method"], "notifications/progress");
    EXPECT_EQ(messages[i]["params"]["progressToken"], "tok-1");
  }
  // Event ids are unique.
  std::set<std::string> ids;
  for (const auto& e : parse_sse(body)) {
    EXPECT_TRUE(ids.insert(e.id).second) << e.id;
  }
}

TEST(HttpTransport, ResumesABrokenStreamWithLastEventId) {
  HttpServerProcess server;
  const int port = server.port();
  const std::string session = open_session(port);

  // Start a slow call, keep only the priming event's id, and drop the connection.
  std::string last_id;
  {
    Connection c(port);
    c.send("POST", "/mcp", mcp_headers(session), tools_call(12, "sleep 1; echo resumed").dump());
    Response head = c.read_head();
    ASSERT_EQ(head.status, 200);
    std::string body;
    ASSERT_TRUE(c.read_body_until(body, [](const std::string& b) { return b.find("\n\n") != std::string::npos; }));
    auto events = parse_sse(body);
    ASSERT_FALSE(events.empty());
    last_id = events.front().id;
  }
  ASSERT_FALSE(last_id.empty());
  // The response, produced after the client left, is replayed on GET with Last-Event-ID.
  Response resumed = request(port, "GET",
                             {{"Accept", "text/event-stream"},
                              {"Mcp-Session-Id", session},
                              {"MCP-Protocol-Version", "2025-11-25"},
                              {"Last-Event-ID", last_id}});
  ASSERT_EQ(resumed.status, 200);
  json answer = response_with_id(resumed, 12);
  EXPECT_EQ(answer["result"]["structuredContent"]["stdout"], "resumed\n") << resumed.body;
  for (const auto& e : parse_sse(resumed.body)) {
    EXPECT_NE(e.id, last_id) << "nothing at or before Last-Event-ID is replayed";
  }

  // Ids that are not this session's are refused.
  EXPECT_EQ(
      request(port, "GET", {{"Accept", "text/event-stream"}, {"Mcp-Session-Id", session}, {"Last-Event-ID", "999-0"}})
          .status,
      400);
  EXPECT_EQ(
      request(port, "GET", {{"Accept", "text/event-stream"}, {"Mcp-Session-Id", session}, {"Last-Event-ID", "garbage"}})
          .status,
      400);
  // A stream that was delivered completely is resumable too: it stays open with nothing to send
  // (so that clients do not reconnect in a loop) until the client leaves.
  Response done = post(port, session, tools_call(13, "echo once"));
  auto events = parse_sse(done.body);
  ASSERT_FALSE(events.empty());
  Connection idle(port);
  idle.send("GET", "/mcp",
            {{"Accept", "text/event-stream"}, {"Mcp-Session-Id", session}, {"Last-Event-ID", events.back().id}}, "");
  Response head = idle.read_head();
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.header("Content-Type"), "text/event-stream");
  std::string body;
  EXPECT_FALSE(idle.read_body_until(
      body, [](const std::string& b) { return b.find("data:") != std::string::npos; }, 500ms));
  EXPECT_FALSE(idle.body_done());
  expect_serving(port, session);
}

TEST(HttpTransport, GetStreamIsTakenOverAndEndsWithTheSession) {
  HttpServerProcess server;
  const int port = server.port();
  const std::string session = open_session(port);
  const Headers get = {{"Accept", "text/event-stream"}, {"Mcp-Session-Id", session}};

  Connection first(port);
  first.send("GET", "/mcp", get, "");
  Response head = first.read_head();
  ASSERT_EQ(head.status, 200);
  EXPECT_EQ(head.header("Content-Type"), "text/event-stream");
  // A second GET takes the stream over; the first one's response ends.
  Connection second(port);
  second.send("GET", "/mcp", get, "");
  ASSERT_EQ(second.read_head().status, 200);
  std::string body;
  EXPECT_TRUE(first.read_body_until(
      body, [&](const std::string&) { return first.body_done(); }, 5s));
  // Requests go on while the stream is open; DELETE ends the stream.
  expect_serving(port, session);
  EXPECT_EQ(request(port, "DELETE", {{"Mcp-Session-Id", session}}).status, 200);
  std::string body2;
  EXPECT_TRUE(second.read_body_until(
      body2, [&](const std::string&) { return second.body_done(); }, 5s));
}

TEST(HttpTransport, BatchesFollowTheNegotiatedVersion) {
  HttpServerProcess server;
  const int port = server.port();
  const json batch = json::array({{{"jsonrpc", "2.0"}, {"id", 1}, {"method", "ping"}}, tools_list(2)});

  const std::string old_session = open_session(port, "2025-03-26");
  Response ok = request(port, "POST", mcp_headers(old_session, {{"MCP-Protocol-Version", "2025-03-26"}}), batch.dump());
  ASSERT_EQ(ok.status, 200) << ok.body;
  json answers = ok.json_body();
  ASSERT_TRUE(answers.is_array()) << ok.body;
  EXPECT_EQ(answers.size(), 2u);

  const std::string session = open_session(port);
  Response refused = request(port, "POST", mcp_headers(session), batch.dump());
  EXPECT_EQ(refused.status, 400);
  EXPECT_EQ(refused.error_code(), -32600);
  expect_serving(port, session);
}

TEST(HttpTransport, ManyConcurrentSessionsKeepTheirOwnVersions) {
  HttpServerProcess server;
  const int port = server.port();
  const std::vector<std::string> versions = {"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"};
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 32; ++i) {
    threads.emplace_back([&, i] {
      const std::string& v = versions[static_cast<std::size_t>(i) % versions.size()];
      Response init = request(port, "POST", mcp_headers(), initialize_request(v).dump());
      if (init.status != 200 || response_with_id(init, 1)["result"]["protocolVersion"] != v) {
        return;
      }
      const std::string s = init.header("Mcp-Session-Id");
      Response call = post(port, s, tools_call(3, "echo " + std::to_string(i)), {{"MCP-Protocol-Version", v}});
      if (response_with_id(call, 3)["result"]["structuredContent"]["stdout"] == std::to_string(i) + "\n") {
        ++ok;
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(ok.load(), 32);
}

TEST(HttpTransport, StopsCleanlyOnSigtermWithStreamsAndCallsOpen) {
  HttpServerProcess server;
  const int port = server.port();
  const std::string session = open_session(port);
  Connection stream(port);
  stream.send("GET", "/mcp", {{"Accept", "text/event-stream"}, {"Mcp-Session-Id", session}}, "");
  ASSERT_EQ(stream.read_head().status, 200);
  Connection call(port);
  call.send("POST", "/mcp", mcp_headers(session), tools_call(5, "sleep 30").dump());
  ASSERT_EQ(call.read_head().status, 200);

  std::string body;
  ASSERT_TRUE(call.read_body_until(body, [](const std::string& b) { return !parse_sse(b).empty(); }));

  auto start = Clock::now();
  EXPECT_EQ(server.terminate(15s), 0) << server.stderr_text();
  EXPECT_LT(Clock::now() - start, 12s);
  EXPECT_NE(server.stderr_text().find("http: stopped"), std::string::npos) << server.stderr_text();
  EXPECT_TRUE(stream.closed_by_peer(2s));
  // The call's stream carries an error response before it ends.
  call.read_body_until(
      body, [&](const std::string&) { return call.body_done(); }, 2s);
  auto events = parse_sse(body);
  ASSERT_FALSE(events.empty());
  ASSERT_FALSE(events.back().data.empty()) << body;
  json last = json::parse(events.back().data);
  EXPECT_EQ(last["id"], 5) << body;
  EXPECT_TRUE(last.contains("error")) << body;
}

} // namespace
} // namespace smcp::testing::http
