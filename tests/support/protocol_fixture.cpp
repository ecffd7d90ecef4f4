#include "tests/support/protocol_fixture.h"

#include "tests/support/test_tools.h"

namespace smcp::testing {

using mcp::LogLevel;
using mcp::ToolContext;
using mcp::ToolResult;

json parse(const std::optional<std::string>& raw) {
  EXPECT_TRUE(raw.has_value()) << "expected a message from the server";
  return raw ? json::parse(*raw) : json();
}

std::shared_ptr<mcp::ToolRegistry> protocol_test_registry(Probe& probe) {
  auto reg = std::make_shared<mcp::ToolRegistry>();
  mcp::Tool echo = test_tool(
      "echo", "Echoes text", R"({"type":"object","properties":{"text":{"type":"string"},
      "times":{"type":"integer","minimum":1}},"required":["text"],"additionalProperties":false})",
      [](const json& args, ToolContext&) {
        std::string t;
        for (long i = 0; i < args.value("times", 1L); ++i) {
          t += args["text"].get<std::string>();
        }
        return ToolResult::ok({{"text", t}});
      },
      R"({"type":"object","properties":{"text":{"type":"string"}},"required":["text"]})");
  echo.title = "Echo";
  reg->add(echo);

  reg->add(test_tool("slow", "Waits until cancelled (max 10 s)", R"({"type":"object"})",
                     [&probe](const json&, ToolContext& ctx) {
                       probe.slow_started = true;
                       wait_until_cancelled(ctx, 10s);
                       probe.slow_saw_stop = ctx.stop_token().stop_requested();
                       return ToolResult::ok({{"done", true}});
                     }));

  reg->add(test_tool("steps", "Reports three progress steps and logs at warning level", R"({"type":"object"})",
                     [](const json&, ToolContext& ctx) {
                       for (int i = 1; i <= 3; ++i) {
                         ctx.progress("step " + std::to_string(i));
                       }
                       ctx.log(LogLevel::warning, "careful");
                       return ToolResult::ok({{"steps", 3}});
                     }));

  reg->add(test_tool("fail", "Fails as a tool", R"({"type":"object"})", [](const json&, ToolContext&) -> ToolResult {
    throw mcp::ToolError("host gpu1 unreachable: retry later");
  }));

  reg->add(test_tool(
      "liar", "Returns a result that violates its outputSchema", R"({"type":"object"})",
      [](const json&, ToolContext&) {
        return ToolResult::ok({{"n", "not a number"}});
      },
      R"({"type":"object","properties":{"n":{"type":"integer"}},"required":["n"]})"));
  return reg;
}

} // namespace smcp::testing
