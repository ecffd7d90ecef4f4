// Helpers shared by the tool handlers: argument access, error translation and timestamps.
#pragma once

#include "mcp-server/core/tool.h"
#include "mcp-server/store/state_store.h"
#include "sandbox/exec/host.h"

#include <functional>
#include <string>

namespace smcp::tools {

using mcp::json;

std::string arg_string(const json& args, const char* name, const std::string& fallback = {});
long long arg_int(const json& args, const char* name, long long fallback);
bool arg_bool(const json& args, const char* name, bool fallback);

// Runs `body`, turning host and lookup failures into tool errors with advice.
mcp::ToolResult guarded(const std::string& tool, const std::string& host, const std::function<mcp::ToolResult()>& body);

// "2026-11-21T23:41:10.123Z"
std::string iso_time(std::int64_t ms_since_epoch);

// A job record as tools present it.
json job_json(const state::JobRecord& job);

json signal_json(const std::optional<int>& signal);

} // namespace smcp::tools
