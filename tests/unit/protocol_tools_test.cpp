// Tool calls through the protocol core and an in-memory transport: tools/list, results and
// their outputSchema, argument errors, cancellation, progress, logging, structured content per
// client, and close cancelling calls in flight.
#include "tests/support/protocol_fixture.h"

#include <gtest/gtest.h>

#include <thread>

namespace smcp::mcp {
namespace {

using namespace std::chrono_literals;
using testing::parse;
using testing::Probe;
using testing::ProtocolTest;

TEST_F(ProtocolTest, ToolsListCarriesSchemasAndAnnotations) {
  initialize();
  json r = call({{"jsonrpc", "2.0"}, {"id", 1}, {"method", "tools/list"}});
  const json& tools = r["result"]["tools"];
  ASSERT_EQ(tools.size(), 5u);
  EXPECT_EQ(tools[0]["name"], "echo");
  EXPECT_EQ(tools[0]["inputSchema"]["type"], "object");
  EXPECT_EQ(tools[0]["outputSchema"]["required"][0], "text");
  for (const char* hint : {"readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint"}) {
    EXPECT_TRUE(tools[0]["annotations"][hint].is_boolean()) << hint;
  }
}

TEST_F(ProtocolTest, ToolResultCarriesStructuredContentAndTheSameJsonAsText) {
  initialize();
  json r = call(tool_call(1, "echo", {{"text", "ab"}, {"times", 2}}));
  EXPECT_EQ(r["result"]["structuredContent"]["text"], "abab");
  EXPECT_EQ(json::parse(r["result"]["content"][0]["text"].get<std::string>()), r["result"]["structuredContent"]);
  EXPECT_FALSE(r["result"].contains("isError"));
}

TEST_F(ProtocolTest, UnknownToolIsInvalidParamsListingTools) {
  initialize();
  json r = call(tool_call(1, "nope", json::object()));
  EXPECT_EQ(r["error"]["code"], error_code::invalid_params);
  std::string msg = r["error"]["message"];
  EXPECT_NE(msg.find("nope"), std::string::npos);
  EXPECT_NE(msg.find("echo"), std::string::npos);
}

TEST_F(ProtocolTest, ArgumentErrorsNameTheField) {
  initialize();
  struct Case {
    json args;
    std::string needle;
  };
  for (const Case& c :
       {Case{{{"text", 5}}, "'text' must be string"}, Case{json::object(), "missing required field 'text'"},
        Case{{{"text", "x"}, {"colour", "red"}}, "unknown field 'colour'"},
        Case{{{"text", "x"}, {"times", 0}}, "'times' must be >= 1"},
        Case{{{"text", "x"}, {"times", 1.5}}, "'times' must be integer"}}) {
    json r = call(tool_call(1, "echo", c.args));
    ASSERT_TRUE(r.contains("error")) << c.args;
    EXPECT_EQ(r["error"]["code"], error_code::invalid_params) << c.args;
    EXPECT_NE(r["error"]["message"].get<std::string>().find(c.needle), std::string::npos)
        << r["error"]["message"] << " should contain " << c.needle;
  }
  json r = call(
      {{"jsonrpc", "2.0"}, {"id", 2}, {"method", "tools/call"}, {"params", {{"name", "echo"}, {"arguments", "x"}}}});
  EXPECT_EQ(r["error"]["code"], error_code::invalid_params);
  r = call({{"jsonrpc", "2.0"}, {"id", 3}, {"method", "tools/call"}, {"params", {{"arguments", json::object()}}}});
  EXPECT_EQ(r["error"]["code"], error_code::invalid_params);
  EXPECT_NE(r["error"]["message"].get<std::string>().find("name"), std::string::npos);
  expect_ping_works();
}

TEST_F(ProtocolTest, ToolFailureIsAnIsErrorResult) {
  initialize();
  json r = call(tool_call(1, "fail", json::object()));
  EXPECT_EQ(r["result"]["isError"], true);
  EXPECT_EQ(r["result"]["content"][0]["text"], "host gpu1 unreachable: retry later");
  EXPECT_FALSE(r["result"].contains("structuredContent"));
}

TEST_F(ProtocolTest, ResultViolatingOutputSchemaBecomesAnError) {
  initialize();
  json r = call(tool_call(1, "liar", json::object()));
  EXPECT_EQ(r["result"]["isError"], true);
  EXPECT_NE(r["result"]["content"][0]["text"].get<std::string>().find("'n' must be integer"), std::string::npos);
}

TEST_F(ProtocolTest, CancelledRequestStopsTheToolAndGetsNoResponse) {
  initialize();
  conn->send(tool_call(7, "slow", json::object()).dump());
  for (int i = 0; i < 500 && !probe.slow_started; ++i) {
    std::this_thread::sleep_for(2ms);
  }
  ASSERT_TRUE(probe.slow_started);
  conn->send(R"({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7,"reason":"user"}})");
  for (int i = 0; i < 1000 && !probe.slow_saw_stop; ++i) {
    std::this_thread::sleep_for(2ms);
  }
  EXPECT_TRUE(probe.slow_saw_stop) << "the tool did not observe the cancellation";
  // Nothing but the ping's answer arrives: no response for id 7.
  json r = call({{"jsonrpc", "2.0"}, {"id", 8}, {"method", "ping"}});
  EXPECT_EQ(r["id"], 8);
  EXPECT_FALSE(conn->next(300ms).has_value());
}

TEST_F(ProtocolTest, ProgressNotificationsArriveInOrderBeforeTheResponse) {
  initialize();
  conn->send(tool_call(3, "steps", json::object(), {{"progressToken", "tok-1"}}).dump());
  for (int i = 1; i <= 3; ++i) {
    json n = parse(conn->next());
    ASSERT_EQ(n["method"], "notifications/progress") << n;
    EXPECT_EQ(n["params"]["progressToken"], "tok-1");
    EXPECT_EQ(n["params"]["progress"], i);
    EXPECT_EQ(n["params"]["message"], "step " + std::to_string(i));
  }
  json log = parse(conn->next()); // default threshold is warning: the warning is sent
  EXPECT_EQ(log["method"], "notifications/message");
  EXPECT_EQ(log["params"]["level"], "warning");
  json r = parse(conn->next());
  EXPECT_EQ(r["id"], 3);
  EXPECT_EQ(r["result"]["structuredContent"]["steps"], 3);
}

// A client may handle notifications later than responses (the TypeScript SDK does), so the
// response must not follow its last progress notification closely: it waits progress_quiet.
TEST_F(ProtocolTest, ResponseWaitsTheQuietPeriodAfterTheLastProgress) {
  initialize();
  conn->send(tool_call(3, "steps", json::object(), {{"progressToken", 7}}).dump());
  std::chrono::steady_clock::time_point last_progress;
  for (int i = 1; i <= 3; ++i) {
    json n = parse(conn->next());
    ASSERT_EQ(n["method"], "notifications/progress") << n;
    last_progress = std::chrono::steady_clock::now();
  }
  parse(conn->next()); // the warning log
  json r = parse(conn->next());
  const auto gap = std::chrono::steady_clock::now() - last_progress;
  EXPECT_EQ(r["id"], 3);
  EXPECT_GE(gap, server->options().progress_quiet - 20ms) << "the response followed the progress too closely";
  // Nothing for the call after its response.
  EXPECT_FALSE(conn->next(300ms).has_value());
}

TEST_F(ProtocolTest, QuickCallsWithoutProgressAreNotDelayed) {
  initialize();
  const auto start = std::chrono::steady_clock::now();
  json r = call(tool_call(3, "echo", {{"text", "hi"}}, {{"progressToken", "t"}}));
  EXPECT_EQ(r["id"], 3) << r;
  EXPECT_LT(std::chrono::steady_clock::now() - start, server->options().progress_quiet)
      << "a call that sent no progress waits for nothing";
}

// Operational messages (the server's own log lines) reach only the sessions that asked for logs.
TEST_F(ProtocolTest, ServerLogsReachOnlySessionsThatSetALevel) {
  initialize();
  auto quiet = std::make_unique<transport::MemoryConnection>(*server);
  quiet->send(json({{"jsonrpc", "2.0"},
                    {"id", 0},
                    {"method", "initialize"},
                    {"params", {{"protocolVersion", "2025-11-25"}, {"capabilities", json::object()}}}})
                  .dump());
  parse(quiet->next());
  server->broadcast_log(LogLevel::info, "sandbox-mcp", "before any setLevel");
  EXPECT_FALSE(conn->next(200ms).has_value()) << "no logs before logging/setLevel";
  call({{"jsonrpc", "2.0"}, {"id", 1}, {"method", "logging/setLevel"}, {"params", {{"level", "info"}}}});
  server->broadcast_log(LogLevel::debug, "sandbox-mcp", "too detailed");
  server->broadcast_log(LogLevel::info, "sandbox-mcp", "ssh host gpu1 reconnected");
  json n = parse(conn->next());
  EXPECT_EQ(n["method"], "notifications/message");
  EXPECT_EQ(n["params"]["level"], "info");
  EXPECT_EQ(n["params"]["data"], "ssh host gpu1 reconnected");
  EXPECT_FALSE(quiet->next(200ms).has_value()) << "a session that set no level gets no server logs";
}

// Claude Code shows structuredContent (as JSON) to the model instead of the text block: in the
// automatic mode it gets text-only results, every other client structured ones.
TEST_F(ProtocolTest, ClaudeCodeGetsTextOnlyResultsOthersStructuredOnes) {
  auto session = [&](const std::string& client) {
    auto c = std::make_unique<transport::MemoryConnection>(*server);
    c->send(json({{"jsonrpc", "2.0"},
                  {"id", 0},
                  {"method", "initialize"},
                  {"params",
                   {{"protocolVersion", "2025-11-25"},
                    {"capabilities", json::object()},
                    {"clientInfo", {{"name", client}, {"version", "2.1.332"}}}}}})
                .dump());
    parse(c->next());
    return c;
  };
  for (const std::string client : {"claude-code", "other-client"}) {
    auto c = session(client);
    const bool structured = client != "claude-code";
    c->send(R"({"jsonrpc":"2.0","id":1,"method":"tools/list"})");
    json list = parse(c->next());
    bool echo_seen = false;
    for (const auto& t : list["result"]["tools"]) {
      if (t["name"] == "echo") {
        echo_seen = true;
        EXPECT_EQ(t.contains("outputSchema"), structured) << client;
      }
    }
    EXPECT_TRUE(echo_seen);
    c->send(tool_call(2, "echo", {{"text", "hi"}}).dump());
    json r = parse(c->next());
    EXPECT_EQ(r["result"].contains("structuredContent"), structured) << client << ": " << r;
    EXPECT_EQ(json::parse(r["result"]["content"][0]["text"].get<std::string>())["text"], "hi") << r;
  }
}

TEST(ProtocolOptions, StructuredContentAlwaysAndNeverIgnoreTheClient) {
  for (auto mode : {StructuredContent::always, StructuredContent::never}) {
    ServerOptions options;
    options.structured_content = mode;
    Probe probe;
    auto server = std::make_shared<Server>(options, testing::protocol_test_registry(probe));
    transport::MemoryConnection c(*server);
    c.send(R"({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25",
              "capabilities":{},"clientInfo":{"name":"claude-code","version":"1"}}})");
    parse(c.next());
    c.send(R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"}}})");
    json r = parse(c.next());
    EXPECT_EQ(r["result"].contains("structuredContent"), mode == StructuredContent::always) << r;
  }
}

TEST_F(ProtocolTest, NoProgressWithoutAToken) {
  initialize();
  call({{"jsonrpc", "2.0"}, {"id", 1}, {"method", "logging/setLevel"}, {"params", {{"level", "error"}}}});
  json r = call(tool_call(3, "steps", json::object()));
  EXPECT_EQ(r["id"], 3) << "expected the response first, got " << r;
  EXPECT_EQ(conn->pending(), 0u);
}

TEST_F(ProtocolTest, LoggingSetLevelFiltersNotifications) {
  initialize();
  json ok = call({{"jsonrpc", "2.0"}, {"id", 1}, {"method", "logging/setLevel"}, {"params", {{"level", "error"}}}});
  EXPECT_EQ(ok["result"], json::object());
  json r = call(tool_call(2, "steps", json::object()));
  EXPECT_EQ(r["id"], 2) << "a warning passed an error threshold: " << r;
  call({{"jsonrpc", "2.0"}, {"id", 3}, {"method", "logging/setLevel"}, {"params", {{"level", "debug"}}}});
  json log = call(tool_call(4, "steps", json::object()));
  EXPECT_EQ(log["method"], "notifications/message");
  EXPECT_EQ(log["params"]["data"], "careful");
  EXPECT_EQ(parse(conn->next())["id"], 4);
  json bad = call({{"jsonrpc", "2.0"}, {"id", 5}, {"method", "logging/setLevel"}, {"params", {{"level", "loud"}}}});
  EXPECT_EQ(bad["error"]["code"], error_code::invalid_params);
  EXPECT_NE(bad["error"]["message"].get<std::string>().find("level"), std::string::npos);
}

TEST_F(ProtocolTest, CloseCancelsInFlightCalls) {
  initialize();
  conn->send(tool_call(1, "slow", json::object()).dump());
  for (int i = 0; i < 500 && !probe.slow_started; ++i) {
    std::this_thread::sleep_for(2ms);
  }
  auto t0 = std::chrono::steady_clock::now();
  conn->close();
  EXPECT_TRUE(probe.slow_saw_stop);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
}

} // namespace
} // namespace smcp::mcp
