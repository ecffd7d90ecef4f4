#include "tools/common.h"
#include "tools/tools.h"

namespace smcp::tools {

namespace {

const char* k_input_schema = R"({
  "type": "object",
  "properties": {
    "host": {"type": "string", "minLength": 1, "description": "Only jobs on this host."},
    "status": {"type": "string", "enum": ["running", "exited", "killed", "unreachable"]},
    "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50}
  },
  "additionalProperties": false
})";

const char* k_output_schema = R"({
  "type": "object",
  "properties": {
    "jobs": {"type": "array", "items": {
      "type": "object",
      "properties": {
        "bash_id": {"type": "string"},
        "host": {"type": "string"},
        "command": {"type": "string"},
        "description": {"type": "string"},
        "status": {"type": "string"},
        "exit_code": {"type": ["integer", "null"]},
        "signal": {"type": ["string", "null"]},
        "started_at": {"type": "string"},
        "ended_at": {"type": ["string", "null"]},
        "durable": {"type": "boolean"},
        "output_file": {"type": "string"},
        "output_file_host": {"type": "string"}
      },
      "required": ["bash_id", "host", "command", "status", "started_at"]
    }}
  },
  "required": ["jobs"],
  "additionalProperties": false
})";

} // namespace

mcp::Tool make_remote_bash_list_tool(ToolEnv& env) {
  mcp::Tool tool;
  tool.name = "remote_bash_list";
  tool.title = "List jobs";
  tool.description = "List background jobs and kept foreground commands, newest first, with status, command, "
                     "host, start and end times, and where the full output is.";
  tool.input_schema = json::parse(k_input_schema);
  tool.output_schema = json::parse(k_output_schema);
  tool.annotations = {.read_only = true, .destructive = false, .idempotent = true, .open_world = false};
  tool.handler = [&env](const json& args, mcp::ToolContext&) -> mcp::ToolResult {
    const std::string host = arg_string(args, "host");
    const std::string status = arg_string(args, "status");
    const auto limit = static_cast<std::size_t>(arg_int(args, "limit", 50));
    json jobs = json::array();
    // Filtering happens after the fetch, so fetch generously.
    for (const auto& rec : env.jobs.list(host.empty() && status.empty() ? limit : 100000)) {
      if ((!host.empty() && rec.host != host) || (!status.empty() && rec.status != status)) {
        continue;
      }
      jobs.push_back(job_json(rec));
      if (jobs.size() >= limit) {
        break;
      }
    }
    return mcp::ToolResult::ok({{"jobs", std::move(jobs)}});
  };
  return tool;
}

} // namespace smcp::tools
