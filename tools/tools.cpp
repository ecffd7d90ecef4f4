#include "tools/tools.h"

#include "tools/result_text.h"

namespace smcp::tools {

namespace {

// A successful result without text of its own gets the model-facing rendering of its structured
// content (the protocol core sends the JSON when the text stays empty).
mcp::Tool with_text(mcp::Tool tool, ResultText text) {
  if (text == ResultText::json) {
    return tool;
  }
  tool.handler = [inner = std::move(tool.handler), name = tool.name](const json& args, mcp::ToolContext& ctx) {
    mcp::ToolResult result = inner(args, ctx);
    if (!result.is_error && result.text.empty()) {
      result.text = result_text(name, result.structured);
    }
    return result;
  };
  return tool;
}

} // namespace

void register_tools(mcp::ToolRegistry& registry, ToolEnv& env, ResultText text) {
  registry.add(with_text(make_remote_bash_tool(env), text));
  registry.add(with_text(make_remote_bash_output_tool(env), text));
  registry.add(with_text(make_remote_bash_kill_tool(env), text));
  registry.add(with_text(make_remote_bash_list_tool(env), text));
  registry.add(with_text(make_remote_file_read_tool(env), text));
  registry.add(with_text(make_remote_hosts_tool(env), text));
  for (auto& tool : make_sandbox_tools(env)) {
    registry.add(with_text(std::move(tool), text));
  }
}

std::string server_instructions() {
  return "sandbox-mcp runs commands on this machine ('local') and on SSH hosts (GPU boxes), with durable "
         "background jobs.\n"
         "- remote_bash runs a command and returns exit_code/stdout/stderr. Pass host to pick a machine (default "
         "shown in errors and results). Long output is cut in the middle; the full text stays readable by bash_id.\n"
         "- For anything long (training, builds, servers) use run_in_background: true; you get a bash_id at once. "
         "Jobs survive dropped connections and server restarts.\n"
         "- Read a job with remote_bash_output: only new output since your last read. Use filter (regex per line, "
         "e.g. \"epoch|loss|Error\") to keep it short, and WAIT instead of polling: wait_ms up to 600000 with "
         "until: \"Traceback|Saved checkpoint|done\" returns as soon as such a line appears or the job ends.\n"
         "- remote_bash_kill ends a job's whole process tree; remote_bash_list shows jobs.\n"
         "- remote_file_read reads a window of a file (offset -200 = last 200 lines) without pulling the whole "
         "file: use it for big logs.\n"
         "- remote_hosts lists the hosts (local and SSH) with their connection state; probe: true checks each one.\n"
         "- sandbox_new / sandbox_ls / sandbox_rm / sandbox_attach manage isolated worktree+container sandboxes; "
         "run inside one with remote_bash {sandbox: NAME}.";
}

} // namespace smcp::tools
