// The MCP tools of sandbox-mcp: one file per tool (schema + handler), each talking only to the
// interfaces in ToolEnv. register_tools() adds them all to a registry.
#pragma once

#include "mcp-server/store/state_store.h"
#include "mcp-server/core/tool_registry.h"
#include "tools/jobs/hosts.h"
#include "tools/jobs/jobs.h"

namespace smcp::sandbox {
class SandboxManager;
}

namespace smcp::tools {

class ProfileRunner; // tools/profile_runner.h

struct ToolEnv {
  HostRegistry& hosts;
  JobManager& jobs;
  state::StateStore& store;
  sandbox::SandboxManager* sandboxes = nullptr; // null: the sandbox tools say they are unavailable
  ProfileRunner* profiles = nullptr;            // null: `profile` is refused
};

// The host name of a sandbox named in a call ("sandbox:NAME"), empty when `sandbox` is; throws a
// -32602 naming the known sandboxes when there is no such sandbox.
std::string sandbox_host_name(ToolEnv& env, const std::string& tool, const std::string& sandbox);

mcp::Tool make_remote_bash_tool(ToolEnv& env);
mcp::Tool make_remote_bash_output_tool(ToolEnv& env);
mcp::Tool make_remote_bash_kill_tool(ToolEnv& env);
mcp::Tool make_remote_bash_list_tool(ToolEnv& env);
mcp::Tool make_remote_file_read_tool(ToolEnv& env);
mcp::Tool make_remote_hosts_tool(ToolEnv& env);
std::vector<mcp::Tool> make_sandbox_tools(ToolEnv& env);

// What the text block of a result holds: text written for the model (the output, then a short
// status line; see result_text.h) or the structuredContent JSON again (for clients that want it).
enum class ResultText { terminal, json };

void register_tools(mcp::ToolRegistry& registry, ToolEnv& env, ResultText text = ResultText::terminal);

// The initialize result's instructions: how the tools fit together, for an agent.
std::string server_instructions();

} // namespace smcp::tools
