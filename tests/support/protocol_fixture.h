// The fixture of the protocol core tests: a Server with a few test tools (echo, slow, steps,
// fail, liar; see protocol_test_registry) and one in-memory connection, with helpers to send
// requests and initialize the session.
#pragma once

#include "mcp-server/core/protocol.h"
#include "tests/support/test_tools.h"
#include "transport/memory_transport.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <optional>
#include <string>

namespace smcp::testing {

using mcp::json;
using namespace std::chrono_literals;

// The message the server sent, parsed (a failed expectation when there is none).
json parse(const std::optional<std::string>& raw);

// What the slow tool saw.
struct Probe {
  std::atomic<bool> slow_started{false};
  std::atomic<bool> slow_saw_stop{false};
};

// echo {text, times} (with an outputSchema), slow (waits until cancelled, at most 10 s), steps
// (three progress steps and a warning log), fail (a ToolError) and liar (violates its outputSchema).
std::shared_ptr<mcp::ToolRegistry> protocol_test_registry(Probe& probe);

class ProtocolTest : public ::testing::Test {
protected:
  using ServerOptions = mcp::ServerOptions;
  using Server = mcp::Server;

  void SetUp() override {
    ServerOptions options;
    options.version = "9.9.9";
    options.instructions = "use the tools";
    options.close_grace = 3s;
    server = std::make_shared<Server>(options, protocol_test_registry(probe));
    conn = std::make_unique<transport::MemoryConnection>(*server);
  }

  json call(const json& message) {
    conn->send(message.dump());
    return parse(conn->next());
  }

  json initialize(const std::string& version = "2025-11-25") {
    json r = call(initialize_request(version));
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

} // namespace smcp::testing
