// Building blocks of the protocol, hook and job tests and of the JSON-RPC fuzzer: a tool declared
// in one call, a handler step that waits for cancellation, the initialize request, and job
// manager options that keep a test quick.
#pragma once

#include "mcp-server/core/tool.h"
#include "tools/jobs/jobs.h"

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>

namespace smcp::testing {

// A tool for a test; the schemas are JSON text (no output schema when null).
inline mcp::Tool test_tool(std::string name, std::string description, const char* input_schema,
                           std::function<mcp::ToolResult(const mcp::json&, mcp::ToolContext&)> handler,
                           const char* output_schema = nullptr) {
  mcp::Tool tool;
  tool.name = std::move(name);
  tool.description = std::move(description);
  tool.input_schema = mcp::json::parse(input_schema);
  if (output_schema) {
    tool.output_schema = mcp::json::parse(output_schema);
  }
  tool.handler = std::move(handler);
  return tool;
}

// Returns once the call is cancelled, or after `limit`.
inline void wait_until_cancelled(mcp::ToolContext& ctx, std::chrono::milliseconds limit) {
  std::mutex m;
  std::condition_variable_any cv;
  std::unique_lock lock(m);
  cv.wait_for(lock, ctx.stop_token(), limit, [] { return false; });
}

// The initialize request of a client named "test".
inline mcp::json initialize_request(const std::string& version) {
  return {{"jsonrpc", "2.0"},
          {"id", 0},
          {"method", "initialize"},
          {"params",
           {{"protocolVersion", version},
            {"capabilities", mcp::json::object()},
            {"clientInfo", {{"name", "test"}, {"version", "1"}}}}}};
}

// Job manager options for tests: small outputs and rings, quick polls and sweeps, no promotion.
inline tools::JobOptions quick_job_options(std::string spill_dir) {
  using namespace std::chrono_literals;
  tools::JobOptions options;
  options.spill_dir = std::move(spill_dir);
  options.max_output_chars = 1000;
  options.ring_bytes = 4096;
  options.poll_interval = 5ms;
  options.sweep_interval = 50ms;
  options.promote_after = 0ms;
  return options;
}

} // namespace smcp::testing
