// The MCP protocol core driven through an in-memory transport: lifecycle, errors, tool calls,
// cancellation, progress, logging, batches and oversized input.
#include "mcp-server/core/protocol.h"
#include "transport/memory_transport.h"
#include "transport/stdio_transport.h"

#include <gtest/gtest.h>

#include <atomic>
#include <fcntl.h>
#include <thread>
#include <unistd.h>

namespace smcp::mcp {
namespace {

using namespace std::chrono_literals;

json parse(const std::optional<std::string>& raw) {
  EXPECT_TRUE(raw.has_value()) << "expected a message from the server";
  return raw ? json::parse(*raw) : json();
}

struct Probe {
  std::atomic<bool> slow_started{false};
  std::atomic<bool> slow_saw_stop{false};
};

std::shared_ptr<ToolRegistry> make_registry(Probe& probe) {
  auto reg = std::make_shared<ToolRegistry>();
  Tool echo;
  echo.name = "echo";
  echo.title = "Echo";
  echo.description = "Echoes text";
  echo.input_schema = json::parse(R"({"type":"object","properties":{"text":{"type":"string"},
      "times":{"type":"integer","minimum":1}},"required":["text"],"additionalProperties":false})");
  echo.output_schema = json::parse(R"({"type":"object","properties":{"text":{"type":"string"}},"required":["text"]})");
  echo.handler = [](const json& args, ToolContext&) {
    std::string t;
    for (long i = 0; i < args.value("times", 1L); ++i) {
      t += args["text"].get<std::string>();
    }
    return ToolResult::ok({{"text", t}});
  };
  reg->add(echo);

  Tool slow;
  slow.name = "slow";
  slow.description = "Waits until cancelled (max 10 s)";
  slow.input_schema = json::parse(R"({"type":"object"})");
  slow.handler = [&probe](const json&, ToolContext& ctx) {
    probe.slow_started = true;
    std::mutex m;
    std::condition_variable_any cv;
    std::unique_lock lock(m);
    cv.wait_for(lock, ctx.stop_token(), 10s, [] { return false; });
    probe.slow_saw_stop = ctx.stop_token().stop_requested();
    return ToolResult::ok({{"done", true}});
  };
  reg->add(slow);

  Tool steps;
  steps.name = "steps";
  steps.description = "Reports three progress steps and logs at warning level";
  steps.input_schema = json::parse(R"({"type":"object"})");
  steps.handler = [](const json&, ToolContext& ctx) {
    for (int i = 1; i <= 3; ++i) {
      ctx.progress("step " + std::to_string(i));
    }
    ctx.log(LogLevel::warning, "careful");
    return ToolResult::ok({{"steps", 3}});
  };
  reg->add(steps);

  Tool fail;
  fail.name = "fail";
  fail.description = "Fails as a tool";
  fail.input_schema = json::parse(R"({"type":"object"})");
  fail.handler = [](const json&, ToolContext&) -> ToolResult { throw ToolError("host gpu1 unreachable: retry later"); };
  reg->add(fail);

  Tool liar;
  liar.name = "liar";
  liar.description = "Returns a result that violates its outputSchema";
  liar.input_schema = json::parse(R"({"type":"object"})");
  liar.output_schema = json::parse(R"({"type":"object","properties":{"n":{"type":"integer"}},"required":["n"]})");
  liar.handler = [](const json&, ToolContext&) { return ToolResult::ok({{"n", "not a number"}}); };
  reg->add(liar);
  return reg;
}

class ProtocolTest : public ::testing::Test {
protected:
  void SetUp() override {
    ServerOptions options;
    options.version = "9.9.9";
    options.instructions = "use the tools";
    options.close_grace = 3s;
    server = std::make_shared<Server>(options, make_registry(probe));
    conn = std::make_unique<transport::MemoryConnection>(*server);
  }

  json call(const json& message) {
    conn->send(message.dump());
    return parse(conn->next());
  }

  json initialize(const std::string& version = "2025-11-25") {
    json r = call({{"jsonrpc", "2.0"},
                   {"id", 0},
                   {"method", "initialize"},
                   {"params",
                    {{"protocolVersion", version},
                     {"capabilities", json::object()},
                     {"clientInfo", {{"name", "test"}, {"version", "1"}}}}}});
    conn->send(R"({"jsonrpc":"2.0","method":"notifications/initialized"})");
    return r;
  }

  json tool_call(int id, const std::string& name, const json& args, const json& meta = nullptr) {
    json params = {{"name", name}, {"arguments", args}};
    if (!meta.is_null()) {
      params["_meta"] = meta;
    }
    return {{"jsonrpc", "2.0"}, {"id", id}, {"method", "tools/call"}, {"params", params}};
  }

  void expect_ping_works(int id = 4242) {
    json r = call({{"jsonrpc", "2.0"}, {"id", id}, {"method", "ping"}});
    EXPECT_EQ(r["id"], id);
    EXPECT_EQ(r["result"], json::object()) << "the server stopped serving";
  }

  Probe probe;
  std::shared_ptr<Server> server;
  std::unique_ptr<transport::MemoryConnection> conn;
};

TEST_F(ProtocolTest, InitializeNegotiatesRequestedSupportedVersion) {
  for (const char* v : {"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"}) {
    conn = std::make_unique<transport::MemoryConnection>(*server);
    json r = initialize(v);
    EXPECT_EQ(r["result"]["protocolVersion"], v);
    EXPECT_EQ(r["result"]["serverInfo"]["name"], "sandbox-mcp");
    EXPECT_EQ(r["result"]["serverInfo"]["version"], "9.9.9");
    EXPECT_EQ(r["result"]["instructions"], "use the tools");
    EXPECT_TRUE(r["result"]["capabilities"].contains("tools"));
    EXPECT_TRUE(r["result"]["capabilities"].contains("logging"));
  }
}

TEST_F(ProtocolTest, InitializeWithUnknownVersionAnswersLatest) {
  json r = initialize("1999-01-01");
  EXPECT_EQ(r["result"]["protocolVersion"], k_latest_protocol_version);
}

TEST_F(ProtocolTest, InitializeWithoutProtocolVersionIsInvalidParamsNamingIt) {
  json r =
      call({{"jsonrpc", "2.0"}, {"id", 1}, {"method", "initialize"}, {"params", {{"capabilities", json::object()}}}});
  EXPECT_EQ(r["error"]["code"], error_code::invalid_params);
  EXPECT_NE(r["error"]["message"].get<std::string>().find("protocolVersion"), std::string::npos);
  // The session is still usable: a proper initialize works afterwards.
  EXPECT_EQ(initialize()["result"]["protocolVersion"], "2025-11-25");
}

TEST_F(ProtocolTest, SecondInitializeIsRejected) {
  initialize();
  json r =
      call({{"jsonrpc", "2.0"}, {"id", 9}, {"method", "initialize"}, {"params", {{"protocolVersion", "2025-11-25"}}}});
  EXPECT_EQ(r["error"]["code"], error_code::invalid_request);
  EXPECT_EQ(r["id"], 9);
}

TEST_F(ProtocolTest, PingWorksBeforeInitializeButToolsDoNot) {
  expect_ping_works(1);
  json r = call({{"jsonrpc", "2.0"}, {"id", 2}, {"method", "tools/list"}});
  EXPECT_EQ(r["error"]["code"], error_code::invalid_request);
  EXPECT_NE(r["error"]["message"].get<std::string>().find("initialize"), std::string::npos);
}

TEST_F(ProtocolTest, ParseErrorHasNullIdAndServerKeepsServing) {
  conn->send("{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": ");
  json r = parse(conn->next());
  EXPECT_EQ(r["error"]["code"], error_code::parse_error);
  EXPECT_TRUE(r["id"].is_null());
  conn->send("not json at all");
  EXPECT_EQ(parse(conn->next())["error"]["code"], error_code::parse_error);
  expect_ping_works();
}

// Found by fuzz_jsonrpc: nlohmann::json throws out_of_range, not parse_error, for a number beyond
// a double's range, and that escaped receive() and ended the server.
TEST_F(ProtocolTest, NumberTooLargeForADoubleIsAParseErrorNotACrash) {
  conn->send(R"({"jsonrpc":"2.0","id":2,"method":"ping","params":{"x":1e400}})");
  json r = parse(conn->next());
  EXPECT_EQ(r["error"]["code"], error_code::parse_error);
  EXPECT_TRUE(r["id"].is_null());
  EXPECT_NE(r["error"]["message"].get<std::string>().find("number overflow"), std::string::npos)
      << r["error"]["message"];
  expect_ping_works();
}

TEST_F(ProtocolTest, DeeplyNestedJsonIsAParseErrorNotACrash) {
  std::string deep(100000, '[');
  deep += std::string(100000, ']');
  conn->send(deep);
  json r = parse(conn->next());
  EXPECT_EQ(r["error"]["code"], error_code::parse_error);
  expect_ping_works();
}

TEST_F(ProtocolTest, InvalidRequestsGetMinus32600) {
  struct Case {
    const char* raw;
    json id;
  };
  for (const Case& c : {Case{R"({"jsonrpc":"1.0","id":1,"method":"ping"})", 1}, Case{R"({"id":2,"method":"ping"})", 2},
                        Case{R"({"jsonrpc":"2.0","id":3})", 3}, Case{R"({"jsonrpc":"2.0","id":4,"method":42})", 4},
                        Case{R"({"jsonrpc":"2.0","id":null,"method":"ping"})", nullptr},
                        Case{R"({"jsonrpc":"2.0","id":1.5,"method":"ping"})", nullptr},
                        Case{R"("just a string")", nullptr}, Case{R"(17)", nullptr}}) {
    conn->send(c.raw);
    json r = parse(conn->next());
    EXPECT_EQ(r["error"]["code"], error_code::invalid_request) << c.raw;
    EXPECT_EQ(r["id"], c.id) << c.raw;
  }
  expect_ping_works();
}

TEST_F(ProtocolTest, UnknownMethodIsMethodNotFoundNamingIt) {
  initialize();
  json r = call({{"jsonrpc", "2.0"}, {"id", "abc"}, {"method", "resources/teleport"}});
  EXPECT_EQ(r["error"]["code"], error_code::method_not_found);
  EXPECT_EQ(r["id"], "abc");
  EXPECT_NE(r["error"]["message"].get<std::string>().find("resources/teleport"), std::string::npos);
}

TEST_F(ProtocolTest, NotificationsAndClientResponsesGetNoAnswer) {
  initialize();
  conn->send(R"({"jsonrpc":"2.0","method":"notifications/whatever","params":{}})");
  conn->send(R"({"jsonrpc":"2.0","id":77,"result":{}})");
  expect_ping_works(5);
  EXPECT_EQ(conn->pending(), 0u);
}

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
    auto server = std::make_shared<Server>(options, make_registry(probe));
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

TEST_F(ProtocolTest, BatchesFollowTheNegotiatedVersion) {
  initialize("2025-03-26");
  conn->send(R"([{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/x"},
                 {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"b"}}}])");
  json r = parse(conn->next());
  ASSERT_TRUE(r.is_array()) << r;
  ASSERT_EQ(r.size(), 2u);
  std::set<int> ids{r[0]["id"].get<int>(), r[1]["id"].get<int>()};
  EXPECT_EQ(ids, (std::set<int>{1, 2}));
  // Notifications only: nothing comes back.
  conn->send(R"([{"jsonrpc":"2.0","method":"notifications/x"}])");
  expect_ping_works();
  conn->send("[]");
  EXPECT_EQ(parse(conn->next())["error"]["code"], error_code::invalid_request);

  auto other = std::make_unique<transport::MemoryConnection>(*server);
  std::swap(conn, other);
  initialize("2025-11-25");
  conn->send(R"([{"jsonrpc":"2.0","id":1,"method":"ping"}])");
  json refused = parse(conn->next());
  EXPECT_EQ(refused["error"]["code"], error_code::invalid_request);
  EXPECT_NE(refused["error"]["message"].get<std::string>().find("2025-11-25"), std::string::npos);
}

TEST_F(ProtocolTest, EveryInboundMessageIsEndedOnce) {
  initialize();
  std::size_t before = conn->ends();
  call(tool_call(1, "echo", {{"text", "x"}}));
  conn->send(R"({"jsonrpc":"2.0","method":"notifications/x"})");
  expect_ping_works();
  // The tool call's end() follows its response on the worker thread.
  for (int i = 0; i < 500 && conn->ends() < before + 3; ++i) {
    std::this_thread::sleep_for(2ms);
  }
  EXPECT_EQ(conn->ends(), before + 3);
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(conn->ends(), before + 3) << "end() must be called exactly once per inbound message";
}

TEST_F(ProtocolTest, OversizedMessageIsRefusedClearly) {
  initialize();
  conn->send_oversized(10 * 1024 * 1024, 4 * 1024 * 1024);
  json r = parse(conn->next());
  EXPECT_EQ(r["error"]["code"], error_code::invalid_request);
  EXPECT_NE(r["error"]["message"].get<std::string>().find("10485760"), std::string::npos);
  expect_ping_works();
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

// The stdio transport over real pipes: a 10 MB line is refused without buffering it, and the
// next message is still answered; EOF ends the transport cleanly.
TEST_F(ProtocolTest, StdioRefusesTenMegabyteLineAndKeepsServing) {
  int in[2], out[2];
  ASSERT_EQ(::pipe(in), 0);
  ASSERT_EQ(::pipe(out), 0);
  transport::StdioOptions options;
  options.in_fd = in[0];
  options.out_fd = out[1];
  int rc = -1;
  std::thread server_thread([&] {
    transport::StdioTransport t(options);
    rc = t.run(*server);
    ::close(out[1]);
  });
  std::thread writer([&] {
    std::string big =
        R"({"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":")" + std::string(10 * 1024 * 1024, 'x') + "\"}}\n";
    std::string rest = R"({"jsonrpc":"2.0","id":2,"method":"ping"})"
                       "\n";
    for (const std::string* s : {&big, &rest}) {
      const char* p = s->data();
      std::size_t left = s->size();
      while (left > 0) {
        ssize_t n = ::write(in[1], p, left);
        if (n <= 0) {
          break;
        }
        p += n;
        left -= static_cast<std::size_t>(n);
      }
    }
    ::close(in[1]);
  });
  std::string output;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(out[0], buf, sizeof buf)) > 0) {
    output.append(buf, static_cast<std::size_t>(n));
  }
  writer.join();
  server_thread.join();
  ::close(in[0]);
  ::close(out[0]);
  EXPECT_EQ(rc, 0);
  auto nl = output.find('\n');
  ASSERT_NE(nl, std::string::npos) << output;
  json first = json::parse(output.substr(0, nl));
  json second = json::parse(output.substr(nl + 1));
  EXPECT_EQ(first["error"]["code"], error_code::invalid_request);
  EXPECT_NE(first["error"]["message"].get<std::string>().find("too large"), std::string::npos);
  EXPECT_EQ(second["id"], 2);
  EXPECT_EQ(second["result"], json::object());
}

} // namespace
} // namespace smcp::mcp

namespace smcp::mcp {
namespace {

class FakeResources : public ResourceProvider {
public:
  json list() override { return json::array({{{"uri", "job://a/output"}, {"name", "a"}}}); }
  json templates() override { return json::array({{{"uriTemplate", "job://{id}/output"}, {"name", "t"}}}); }
  std::optional<json> read(const std::string& uri) override {
    if (uri != "job://a/output") {
      return std::nullopt;
    }
    return json::array({{{"uri", uri}, {"mimeType", "text/plain"}, {"text", "hello"}}});
  }
};

class SlowResources : public FakeResources {
public:
  json list() override {
    std::unique_lock lock(m);
    cv.wait_for(lock, std::chrono::seconds(10), [&] { return released; });
    return FakeResources::list();
  }
  void release() {
    {
      std::lock_guard lock(m);
      released = true;
    }
    cv.notify_all();
  }
  std::mutex m;
  std::condition_variable cv;
  bool released = false;
};

TEST(ProtocolResources, ASlowResourceListDoesNotBlockTheConnection) {
  Probe probe;
  auto slow = std::make_shared<SlowResources>();
  auto server = std::make_shared<Server>(ServerOptions{}, make_registry(probe), slow);
  transport::MemoryConnection c(*server);
  c.send(R"({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25"}})");
  parse(c.next());
  c.send(R"({"jsonrpc":"2.0","id":1,"method":"resources/list"})"); // blocks in the provider
  c.send(R"({"jsonrpc":"2.0","id":2,"method":"ping"})");
  json first = parse(c.next(std::chrono::seconds(2)));
  EXPECT_EQ(first["id"], 2) << "the ping must not wait behind resources/list";
  slow->release();
  EXPECT_EQ(parse(c.next())["id"], 1);
}

TEST(ProtocolResources, ListReadSubscribeAndNotify) {
  Probe probe;
  auto server = std::make_shared<Server>(ServerOptions{}, make_registry(probe), std::make_shared<FakeResources>());
  transport::MemoryConnection a(*server), b(*server);
  for (auto* c : {&a, &b}) {
    c->send(R"({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25"}})");
    json init = parse(c->next());
    EXPECT_EQ(init["result"]["capabilities"]["resources"]["subscribe"], true);
  }
  a.send(R"({"jsonrpc":"2.0","id":1,"method":"resources/list"})");
  EXPECT_EQ(parse(a.next())["result"]["resources"][0]["uri"], "job://a/output");
  a.send(R"({"jsonrpc":"2.0","id":2,"method":"resources/templates/list"})");
  EXPECT_EQ(parse(a.next())["result"]["resourceTemplates"][0]["uriTemplate"], "job://{id}/output");
  a.send(R"({"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri":"job://a/output"}})");
  EXPECT_EQ(parse(a.next())["result"]["contents"][0]["text"], "hello");
  a.send(R"({"jsonrpc":"2.0","id":4,"method":"resources/read","params":{"uri":"job://zzz/output"}})");
  json missing = parse(a.next());
  EXPECT_EQ(missing["error"]["code"], error_code::resource_not_found);
  EXPECT_NE(missing["error"]["message"].get<std::string>().find("job://zzz/output"), std::string::npos);
  a.send(R"({"jsonrpc":"2.0","id":5,"method":"resources/read","params":{}})");
  EXPECT_EQ(parse(a.next())["error"]["code"], error_code::invalid_params);

  a.send(R"({"jsonrpc":"2.0","id":6,"method":"resources/subscribe","params":{"uri":"job://a/output"}})");
  EXPECT_EQ(parse(a.next())["result"], json::object());
  server->notify_resource_updated("job://a/output");
  server->notify_resource_updated("job://other/output");
  json note = parse(a.next());
  EXPECT_EQ(note["method"], "notifications/resources/updated");
  EXPECT_EQ(note["params"]["uri"], "job://a/output");
  EXPECT_FALSE(a.next(std::chrono::milliseconds(100)).has_value()) << "only subscribed URIs are notified";
  EXPECT_FALSE(b.next(std::chrono::milliseconds(100)).has_value()) << "b never subscribed";

  a.send(R"({"jsonrpc":"2.0","id":7,"method":"resources/unsubscribe","params":{"uri":"job://a/output"}})");
  EXPECT_EQ(parse(a.next())["result"], json::object());
  server->notify_resource_updated("job://a/output");
  EXPECT_FALSE(a.next(std::chrono::milliseconds(100)).has_value());
}

} // namespace
} // namespace smcp::mcp
