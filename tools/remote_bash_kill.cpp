#include "tools/common.h"
#include "tools/tools.h"

#include <csignal>

namespace smcp::tools {

namespace {

const char* k_input_schema = R"({
  "type": "object",
  "properties": {
    "bash_id": {"type": "string", "minLength": 1},
    "signal": {"type": ["string", "integer"], "default": "TERM",
      "description": "Signal to send first (name like TERM, INT, KILL or a number); processes still alive after the grace period get KILL."},
    "remove": {"type": "boolean", "default": false,
      "description": "Also delete the job's output files and forget the job (its bash_id stops working). Ended jobs are otherwise removed after the retention period (7 days by default)."}
  },
  "required": ["bash_id"],
  "additionalProperties": false
})";

// The job's bash_id, status, exit_code, signal and host come from job_answer_schema.
const char* k_output_schema = R"({
  "type": "object",
  "properties": {
    "signalled": {"type": "boolean", "description": "A signal was sent (the job was running)."},
    "verified": {"type": "boolean", "description": "No process of the job remains."},
    "removed": {"type": "boolean", "description": "The job's files and record were deleted."},
    "note": {"type": "string"}
  },
  "required": ["bash_id", "status", "signalled", "verified"],
  "additionalProperties": false
})";

} // namespace

mcp::Tool make_remote_bash_kill_tool(ToolEnv& env) {
  mcp::Tool tool = declare_tool(
      "remote_bash_kill", "Stop a background job",
      "End a job's whole process tree (signal, default TERM, then KILL after a grace period) and confirm that "
      "no process of it remains. Its output stays readable with remote_bash_output unless remove: true, which "
      "also deletes the job's files (use it on ended jobs to free disk).",
      json::parse(k_input_schema), job_answer_schema(k_output_schema),
      {.read_only = false, .destructive = true, .idempotent = true, .open_world = true});
  tool.handler = [&env](const json& args, mcp::ToolContext&) -> mcp::ToolResult {
    int sig = SIGTERM;
    if (auto it = args.find("signal"); it != args.end()) {
      std::string text = it->is_string() ? it->get<std::string>() : std::to_string(it->get<long long>());
      auto parsed = exec::parse_signal(text);
      if (!parsed) {
        throw mcp::InvalidArgument("signal", "unknown signal '" + text +
                                                 "'; use a name like TERM, INT, KILL, HUP or a number 1-64");
      }
      sig = *parsed;
    }
    return guarded("remote_bash_kill", "", [&]() -> mcp::ToolResult {
      KillAnswer a = env.jobs.kill(arg_string(args, "bash_id"), sig);
      bool removed = false;
      if (arg_bool(args, "remove", false)) {
        if (a.job.status == "running") {
          throw mcp::ToolError("remote_bash_kill: job " + a.job.id +
                               " is still running after the kill, so its files were kept: " + a.note);
        }
        env.jobs.remove(a.job.id); // refuses (clear error) when the job's host cannot delete its files
        removed = true;
      }
      json out = job_state_json(a.job);
      out["signalled"] = a.signalled;
      out["verified"] = a.verified;
      out["removed"] = removed;
      add_note(out, a.note);
      return mcp::ToolResult::ok(std::move(out));
    });
  };
  return tool;
}

} // namespace smcp::tools
