// ToolContext::on_response_sent through the protocol core and the in-memory transport: a hook
// runs only once its call's response has been handed to the transport (for a batch, once the
// batch array has), and never for a call whose response is not sent (cancelled) or whose result
// was replaced by an error.
#include "mcp-server/core/protocol.h"
#include "tests/support/test_tools.h"
#include "transport/memory_transport.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace smcp::mcp {
namespace {

using namespace std::chrono_literals;

struct Hooks {
  std::atomic<int> ran{0};
  std::atomic<int> pending_when_run{-1}; // messages waiting at the client when the hook ran
  std::atomic<bool> slow_started{false};
  transport::MemoryConnection* conn = nullptr;
};

std::shared_ptr<ToolRegistry> registry(Hooks& hooks) {
  using testing::test_tool;
  auto reg = std::make_shared<ToolRegistry>();
  reg->add(test_tool("hooked", "Registers a hook that records what the client had received when it ran",
                     R"({"type":"object"})", [&hooks](const json&, ToolContext& ctx) {
                       ctx.on_response_sent([&hooks] {
                         hooks.pending_when_run = static_cast<int>(hooks.conn->pending());
                         ++hooks.ran;
                       });
                       return ToolResult::ok({{"ok", true}});
                     }));

  reg->add(test_tool("slow_hooked", "Registers a hook, then waits until cancelled", R"({"type":"object"})",
                     [&hooks](const json&, ToolContext& ctx) {
                       ctx.on_response_sent([&hooks] { ++hooks.ran; });
                       hooks.slow_started = true;
                       testing::wait_until_cancelled(ctx, 10s);
                       return ToolResult::ok({{"done", true}});
                     }));

  reg->add(test_tool(
      "hooked_liar", "Registers a hook and returns a result that violates its outputSchema", R"({"type":"object"})",
      [&hooks](const json&, ToolContext& ctx) {
        ctx.on_response_sent([&hooks] { ++hooks.ran; });
        return ToolResult::ok({{"n", "not a number"}});
      },
      R"({"type":"object","properties":{"n":{"type":"integer"}},"required":["n"]})"));
  return reg;
}

class ResponseSentHookTest : public ::testing::Test {
protected:
  void SetUp() override {
    ServerOptions options;
    options.close_grace = 3s;
    server = std::make_shared<Server>(options, registry(hooks));
    conn = std::make_unique<transport::MemoryConnection>(*server);
    hooks.conn = conn.get();
  }
  void initialize(const std::string& version = "2025-11-25") {
    conn->send(testing::initialize_request(version).dump());
    ASSERT_TRUE(conn->next().has_value());
    conn->send(R"({"jsonrpc":"2.0","method":"notifications/initialized"})");
  }
  static std::string call(int id, const std::string& tool) {
    return json({{"jsonrpc", "2.0"},
                 {"id", id},
                 {"method", "tools/call"},
                 {"params", {{"name", tool}, {"arguments", json::object()}}}})
        .dump();
  }
  bool wait_for_runs(int n) {
    for (int i = 0; i < 500 && hooks.ran < n; ++i) {
      std::this_thread::sleep_for(2ms);
    }
    return hooks.ran >= n;
  }

  Hooks hooks;
  std::shared_ptr<Server> server;
  std::unique_ptr<transport::MemoryConnection> conn;
};

TEST_F(ResponseSentHookTest, RunsOnceTheResponseWasHandedToTheTransport) {
  initialize();
  conn->send(call(1, "hooked"));
  ASSERT_TRUE(wait_for_runs(1)) << "the hook did not run";
  EXPECT_EQ(hooks.pending_when_run, 1) << "the hook ran before the response reached the transport";
  auto r = json::parse(*conn->next());
  EXPECT_EQ(r["id"], 1);
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(hooks.ran, 1) << "run exactly once";
}

TEST_F(ResponseSentHookTest, RunsAfterTheWholeBatchWasSent) {
  initialize("2025-03-26");
  conn->send(R"([{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"hooked","arguments":{}}},
                 {"jsonrpc":"2.0","id":2,"method":"ping"}])");
  ASSERT_TRUE(wait_for_runs(1));
  EXPECT_EQ(hooks.pending_when_run, 1) << "the batch array had not been sent when the hook ran";
  auto r = json::parse(*conn->next());
  ASSERT_TRUE(r.is_array());
  EXPECT_EQ(r.size(), 2u);
}

TEST_F(ResponseSentHookTest, NeverRunsForACancelledCall) {
  initialize();
  conn->send(call(7, "slow_hooked"));
  for (int i = 0; i < 500 && !hooks.slow_started; ++i) {
    std::this_thread::sleep_for(2ms);
  }
  ASSERT_TRUE(hooks.slow_started);
  conn->send(R"({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7,"reason":"user"}})");
  conn->send(R"({"jsonrpc":"2.0","id":8,"method":"ping"})");
  EXPECT_EQ(json::parse(*conn->next())["id"], 8);
  EXPECT_FALSE(conn->next(300ms).has_value()) << "a cancelled call was answered";
  EXPECT_EQ(hooks.ran, 0) << "a hook ran although its response was never sent";
}

TEST_F(ResponseSentHookTest, NeverRunsWhenTheResultWasReplacedByAnError) {
  initialize();
  conn->send(call(3, "hooked_liar"));
  auto r = json::parse(*conn->next());
  EXPECT_EQ(r["result"]["isError"], true);
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(hooks.ran, 0) << "the tool's answer was not delivered, yet its hook ran";
}

} // namespace
} // namespace smcp::mcp
