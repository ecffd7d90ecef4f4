// Helpers shared by the tools: their declaration, argument access, error translation, timestamps
// and the JSON of job records.
#pragma once

#include "mcp-server/core/tool.h"
#include "mcp-server/store/state_store.h"
#include "sandbox/exec/host.h"
#include "tools/jobs/hosts.h"

#include <functional>
#include <string>

namespace smcp::tools {

using mcp::json;

// A tool's declaration with its schemas; the caller sets the handler.
mcp::Tool declare_tool(std::string name, std::string title, std::string description, json input_schema,
                       json output_schema, mcp::ToolAnnotations annotations);

std::string arg_string(const json& args, const char* name, const std::string& fallback = {});
long long arg_int(const json& args, const char* name, long long fallback);
bool arg_bool(const json& args, const char* name, bool fallback);

// The host a call names, or the default host's name when it names none (for messages).
std::string host_label(const HostRegistry& hosts, const std::string& host);

// Runs `body`, turning host and lookup failures into tool errors with advice.
mcp::ToolResult guarded(const std::string& tool, const std::string& host, const std::function<mcp::ToolResult()>& body);

// "2026-11-21T23:41:10.123Z"
std::string iso_time(std::int64_t ms_since_epoch);

// Sets output_file and output_file_host: where the job's full output is, for remote_file_read.
void add_output_file(json& out, const state::JobRecord& job);

// A job record as tools present it.
json job_json(const state::JobRecord& job);

// What every answer about one job says of it: bash_id, status, exit_code, signal and host.
json job_state_json(const state::JobRecord& job);
// The outputSchema of an answer about one job: `schema` (JSON text) with the properties of
// job_state_json's fields added.
json job_answer_schema(const char* schema);

json signal_json(const std::optional<int>& signal);

// Sets out["note"] when `note` is not empty.
void add_note(json& out, const std::string& note);

} // namespace smcp::tools
