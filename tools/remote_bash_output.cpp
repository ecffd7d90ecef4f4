#include "tools/common.h"
#include "tools/tools.h"

#include <csignal>
#include <cstdlib>
#include <optional>

namespace smcp::tools {

namespace {

const char* k_input_schema = R"({
  "type": "object",
  "properties": {
    "bash_id": {"type": "string", "minLength": 1, "description": "The job id returned by remote_bash."},
    "filter": {"type": "string",
      "description": "Regular expression (PCRE/ECMAScript style) applied per line; only matching lines are returned, the others are counted in skipped_lines."},
    "wait_ms": {"type": "integer", "minimum": 0, "maximum": 600000, "default": 0,
      "description": "Block up to this long for new output (new matching output with a filter) or the job's end; 0 answers at once."},
    "until": {"type": "string",
      "description": "Regular expression: with wait_ms, return as soon as a new line matches it (or the job ends, or wait_ms passes)."}
  },
  "required": ["bash_id"],
  "additionalProperties": false
})";

// The job's bash_id, status, exit_code, signal and host come from job_answer_schema.
const char* k_output_schema = R"({
  "type": "object",
  "properties": {
    "output": {"type": "string", "description": "Only what is new since the last read, filtered; stdout and stderr merged."},
    "skipped_lines": {"type": "integer", "description": "New lines the filter left out."},
    "dropped_bytes": {"type": "integer", "description": "New bytes that fell out of the ring buffer before this read (still in output_file)."},
    "truncated": {"type": "boolean", "description": "The answer was cut in the middle to fit; see output_file."},
    "matched": {"type": "boolean", "description": "`until` matched a new line."},
    "command": {"type": "string"},
    "total_bytes": {"type": "integer", "description": "Bytes of output the job has written so far."},
    "output_file": {"type": "string"},
    "output_file_host": {"type": "string"},
    "note": {"type": "string"}
  },
  "required": ["bash_id", "output", "status", "exit_code", "skipped_lines", "dropped_bytes"],
  "additionalProperties": false
})";

std::optional<Regex> compile(const json& args, const char* name) {
  auto pattern = arg_string(args, name);
  if (!args.contains(name)) {
    return std::nullopt;
  }
  try {
    return Regex(pattern);
  } catch (const std::invalid_argument& e) {
    throw mcp::InvalidArgument(name, e.what());
  }
}

} // namespace

mcp::Tool make_remote_bash_output_tool(ToolEnv& env) {
  mcp::Tool tool = declare_tool(
      "remote_bash_output", "Read new output of a background job",
      "Return the output a job (from remote_bash) wrote since the last read, its status (running / exited / "
      "killed / unreachable) and exit code. `filter` keeps only matching lines (e.g. \"epoch|loss\"). Instead of "
      "polling, wait: wait_ms blocks until new output arrives or the job ends; with `until` it returns as soon as "
      "a new line matches (e.g. until: \"Traceback|finished\", wait_ms: 600000). dropped_bytes counts output that "
      "fell out of the in-memory ring; the full output stays in output_file (read it with remote_file_read).",
      json::parse(k_input_schema), job_answer_schema(k_output_schema),
      {.read_only = true, .destructive = false, .idempotent = false, .open_world = true});
  tool.handler = [&env](const json& args, mcp::ToolContext& ctx) -> mcp::ToolResult {
    auto filter = compile(args, "filter");
    auto until = compile(args, "until");
    OutputQuery q;
    q.bash_id = arg_string(args, "bash_id");
    q.filter = filter ? &*filter : nullptr;
    q.until = until ? &*until : nullptr;
    q.wait = std::chrono::milliseconds(arg_int(args, "wait_ms", 0));
    // The read position moves for good only once the answer is on its way to the client: a crash
    // before that (or a cancelled call) gives this window to the next read, after a restart too.
    q.defer_commit = true;
    if (ctx.wants_progress()) {
      q.on_progress = [&ctx](const std::string& message) { ctx.progress(message); };
    }
    return guarded("remote_bash_output", "", [&]() -> mcp::ToolResult {
      OutputAnswer a = env.jobs.output(q, ctx.stop_token());
      ctx.on_response_sent([receipt = a.receipt] { receipt->commit(); });
      if (std::getenv("SANDBOX_MCP_TEST_CRASH_BEFORE_ANSWER")) {
        // Test-only switch (tests/integration/durable_jobs_test.cpp): die the hardest way between
        // reading the output and answering, where a crash must not lose the window.
        std::raise(SIGKILL);
      }
      json out = job_state_json(a.job);
      out["output"] = a.output;
      out["skipped_lines"] = a.skipped_lines;
      out["dropped_bytes"] = a.dropped_bytes;
      out["truncated"] = a.truncated;
      out["matched"] = a.matched;
      out["command"] = a.job.command;
      out["total_bytes"] = a.total_bytes;
      add_output_file(out, a.job);
      add_note(out, a.note);
      return mcp::ToolResult::ok(std::move(out));
    });
  };
  return tool;
}

} // namespace smcp::tools
