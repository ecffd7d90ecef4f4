#include "sandbox/manager.h"
#include "tools/common.h"
#include "tools/jobs/text.h"
#include "tools/tools.h"

namespace smcp::tools {

namespace {

// A listing identifies jobs; it does not repeat megabytes of command text. Longer commands (and
// descriptions longer than remote_bash accepts, which the store may hold) are cut here with a
// marker; remote_bash_output returns a job's whole command.
constexpr std::size_t k_command_bytes = 1024;
constexpr std::size_t k_description_bytes = 4096; // remote_bash's maxLength of 1024 characters, in UTF-8
// Jobs beyond this many bytes of listing are left out with a note (limit 1000 of ordinary jobs fits).
constexpr std::size_t k_answer_bytes = 1024 * 1024;

void cut_field(json& entry, const char* key, std::size_t max_bytes) {
  auto& text = entry[key].get_ref<std::string&>();
  if (text.size() > max_bytes) {
    const std::size_t keep = utf8_prefix_length(text, max_bytes);
    const std::size_t dropped = text.size() - keep;
    text.resize(keep);
    text += " [... " + std::to_string(dropped) + " more bytes; remote_bash_output shows the whole " + key + "]";
  }
}

const char* k_input_schema = R"({
  "type": "object",
  "properties": {
    "host": {"type": "string", "minLength": 1, "description": "Only jobs on this host."},
    "sandbox": {"type": "string", "minLength": 1, "description": "Only jobs in this sandbox."},
    "status": {"type": "string", "enum": ["running", "exited", "killed", "unreachable"]},
    "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50,
      "description": "Most jobs to list (newest first). Commands longer than 1024 bytes are cut in the listing."}
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
        "sandbox": {"type": "string", "description": "the sandbox the job ran in, when it ran in one"},
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
    }},
    "note": {"type": "string", "description": "set when jobs were left out to keep the answer bounded"}
  },
  "required": ["jobs"],
  "additionalProperties": false
})";

} // namespace

mcp::Tool make_remote_bash_list_tool(ToolEnv& env) {
  mcp::Tool tool =
      declare_tool("remote_bash_list", "List jobs",
                   "List background jobs and kept foreground commands, newest first, with status, command, "
                   "host, start and end times, and where the full output is.",
                   json::parse(k_input_schema), json::parse(k_output_schema),
                   {.read_only = true, .destructive = false, .idempotent = true, .open_world = false});
  tool.handler = [&env](const json& args, mcp::ToolContext&) -> mcp::ToolResult {
    std::string host = arg_string(args, "host");
    if (const std::string sandbox = arg_string(args, "sandbox"); !sandbox.empty()) {
      host = std::string(sandbox::SandboxManager::k_host_prefix) + sandbox;
    }
    const std::string status = arg_string(args, "status");
    const auto limit = static_cast<std::size_t>(arg_int(args, "limit", 50));
    json jobs = json::array();
    std::size_t bytes = 0;
    bool left_out = false;
    // Filtering happens after the fetch, so fetch generously.
    for (const auto& rec : env.jobs.list(host.empty() && status.empty() ? limit : 100000)) {
      if ((!host.empty() && rec.host != host) || (!status.empty() && rec.status != status)) {
        continue;
      }
      if (jobs.size() >= limit) {
        break;
      }
      json entry = job_json(rec);
      cut_field(entry, "command", k_command_bytes);
      cut_field(entry, "description", k_description_bytes);
      bytes += entry.dump(-1, ' ', false, json::error_handler_t::replace).size();
      if (bytes > k_answer_bytes && !jobs.empty()) {
        left_out = true;
        break;
      }
      jobs.push_back(std::move(entry));
    }
    json out = {{"jobs", std::move(jobs)}};
    if (left_out) {
      out["note"] = "only the newest " + std::to_string(out["jobs"].size()) +
                    " matching jobs fit in this answer; narrow it with host, status or a smaller limit";
    }
    return mcp::ToolResult::ok(std::move(out));
  };
  return tool;
}

} // namespace smcp::tools
