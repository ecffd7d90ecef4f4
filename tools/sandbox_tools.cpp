#include "tools/common.h"
#include "tools/tools.h"

namespace smcp::tools {

namespace {

// Said first in each description, so an agent does not spend a call to find out.
constexpr const char* k_not_yet = "[Not available in this build yet: the sandbox backends are still to come; calls "
                                  "return an error.] ";

const char* k_sandbox_item = R"({
  "type": "object",
  "properties": {
    "name": {"type": "string"},
    "branch": {"type": "string"},
    "container_id": {"type": "string"},
    "slurm_job_id": {"type": "string"},
    "work_dir": {"type": "string"},
    "ccr_mode": {"type": "boolean"},
    "backend": {"type": "string"},
    "status": {"type": "string"},
    "attach_command": {"type": "string"},
    "created_at": {"type": "string"},
    "updated_at": {"type": "string"}
  },
  "required": ["name", "work_dir"]
})";

const char* k_new_input = R"({
  "type": "object",
  "properties": {
    "name": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$",
             "description": "Sandbox name (letters, digits, '.', '_', '-'); generated when absent."},
    "branch": {"type": "string", "minLength": 1, "description": "Git branch for the worktree (default: the name)."},
    "ccr": {"type": "boolean", "default": false, "description": "Claude Code Router mode."},
    "slurm": {"type": "boolean", "default": false, "description": "Run the container on a Slurm compute node."},
    "repo": {"type": "string", "minLength": 1, "description": "Repository to take the worktree from (default: --repo_base)."}
  },
  "additionalProperties": false
})";

const char* k_ls_input = R"({"type": "object", "properties": {}, "additionalProperties": false})";

const char* k_rm_input = R"({
  "type": "object",
  "properties": {"name": {"type": "string", "minLength": 1}},
  "required": ["name"],
  "additionalProperties": false
})";

const char* k_rm_output = R"({
  "type": "object",
  "properties": {"name": {"type": "string"}, "removed": {"type": "boolean"}, "note": {"type": "string"}},
  "required": ["name", "removed"],
  "additionalProperties": false
})";

const char* k_attach_input = R"({
  "type": "object",
  "properties": {
    "name": {"type": "string", "minLength": 1},
    "keys": {"type": "string", "description": "Keys to send to the pane before capturing it, e.g. \"ls Enter\"."}
  },
  "required": ["name"],
  "additionalProperties": false
})";

const char* k_attach_output = R"({
  "type": "object",
  "properties": {
    "name": {"type": "string"},
    "attach_command": {"type": "string"},
    "pane": {"type": "string", "description": "The pane's current screen."}
  },
  "required": ["name", "attach_command", "pane"],
  "additionalProperties": false
})";

[[noreturn]] void not_built(const std::string& tool) {
  throw mcp::ToolError(tool + " is not available yet: the sandbox backends (podman/docker containers, Slurm, "
                              "bubblewrap) are not built into this version of sandbox-mcp. Use remote_bash on a host "
                              "in the meantime.");
}

// A sandbox tool as it will be declared, whose handler says that it is not built yet.
mcp::Tool not_built_tool(std::string name, std::string title, const std::string& description, json input_schema,
                         json output_schema, mcp::ToolAnnotations annotations) {
  mcp::Tool tool = declare_tool(name, std::move(title), std::string(k_not_yet) + description, std::move(input_schema),
                                std::move(output_schema), annotations);
  tool.handler = [name](const json&, mcp::ToolContext&) -> mcp::ToolResult { not_built(name); };
  return tool;
}

} // namespace

std::vector<mcp::Tool> make_sandbox_tools(ToolEnv&) {
  std::vector<mcp::Tool> tools;
  json item = json::parse(k_sandbox_item);

  tools.push_back(not_built_tool(
      "sandbox_new", "Create a sandbox",
      "Create an isolated sandbox: a git worktree of the repository on a new branch plus a container (podman or "
      "docker, detected) running tmux, on this machine or, with slurm: true, on a Slurm compute node. Run "
      "commands in it with remote_bash {sandbox: NAME}; let a human join with sandbox_attach.",
      json::parse(k_new_input), item,
      {.read_only = false, .destructive = false, .idempotent = false, .open_world = true}));

  tools.push_back(not_built_tool("sandbox_ls", "List sandboxes",
                                 "List sandboxes with their branch, container or Slurm job, work directory and status.",
                                 json::parse(k_ls_input),
                                 {{"type", "object"},
                                  {"properties", {{"sandboxes", {{"type", "array"}, {"items", item}}}}},
                                  {"required", {"sandboxes"}},
                                  {"additionalProperties", false}},
                                 {.read_only = true, .destructive = false, .idempotent = true, .open_world = true}));

  tools.push_back(
      not_built_tool("sandbox_rm", "Remove a sandbox",
                     "Remove a sandbox: stop its container or cancel its Slurm job, remove its worktree and "
                     "forget it. The branch is kept.",
                     json::parse(k_rm_input), json::parse(k_rm_output),
                     {.read_only = false, .destructive = true, .idempotent = true, .open_world = true}));

  tools.push_back(
      not_built_tool("sandbox_attach", "Attach to a sandbox's tmux",
                     "Return the command a human runs to attach to the sandbox's tmux session and the current "
                     "screen of its pane; `keys` are sent to the pane first (tmux send-keys syntax).",
                     json::parse(k_attach_input), json::parse(k_attach_output),
                     {.read_only = false, .destructive = false, .idempotent = false, .open_world = true}));
  return tools;
}

} // namespace smcp::tools
