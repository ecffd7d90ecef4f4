// sandbox_new / sandbox_ls / sandbox_rm / sandbox_attach over the sandbox manager (sandbox/).
#include "sandbox/manager.h"
#include "tools/common.h"
#include "tools/profile_runner.h"
#include "tools/tools.h"

namespace smcp::tools {

namespace {

const char* k_sandbox_item = R"json({
  "type": "object",
  "properties": {
    "name": {"type": "string"},
    "host": {"type": "string", "description": "where the container runs: 'local' or an SSH host"},
    "branch": {"type": "string"},
    "state": {"type": "string", "description": "live from the runtime: running, exited, created, paused, missing (container gone), creating (half-made), unknown (host unreachable)"},
    "work_dir": {"type": "string", "description": "the sandbox's own git clone on the host, mounted at /workspace (never run git or its scripts there on the host: it is the agent's)"},
    "work": {"type": "object", "description": "the sandbox's work as git inside it sees it: state clean | dirty (uncommitted changes or untracked files) | unmerged (commits no branch of the repository has) | unknown (not running)",
             "properties": {"state": {"type": "string", "enum": ["clean", "dirty", "unmerged", "unknown"]},
                            "changed": {"type": "integer"}, "untracked": {"type": "integer"},
                            "unmerged_commits": {"type": "integer"}, "summary": {"type": "string"}},
             "required": ["state", "summary"]},
    "container": {"type": "string"},
    "slurm_job_id": {"type": "string"},
    "node": {"type": "string", "description": "Slurm: the compute node the job runs on"},
    "created_at": {"type": "string"},
    "ccr_mode": {"type": "boolean"},
    "image": {"type": "string"},
    "runtime": {"type": "string"},
    "gpus": {"type": "string", "description": "the GPU indices it holds on its host (\"0,2\"; empty: none; Slurm: the count it asked for)"},
    "gpu_shared": {"type": "boolean"},
    "attach_command": {"type": "string"},
    "note": {"type": "string"}
  },
  "required": ["name", "host", "branch", "state", "work_dir", "container", "slurm_job_id", "created_at"]
})json";

const char* k_new_input = R"json({
  "type": "object",
  "properties": {
    "name": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$",
             "description": "Sandbox name (letters, digits, '.', '_', '-'); default cnt_N."},
    "branch": {"type": "string", "minLength": 1, "description": "Git branch for the worktree (default main; created from HEAD when it does not exist)."},
    "ccr": {"type": "boolean", "default": false, "description": "Claude Code Router mode: recorded, and SANDBOX_CCR=1 in the container."},
    "slurm": {"type": "boolean", "default": false, "description": "Run the container on a Slurm compute node: submitted with sbatch from host (this machine or a login node), commands go in with srun --overlap. state is then the Slurm state."},
    "partition": {"type": "string", "pattern": "^[A-Za-z0-9_.,-]+$", "description": "Slurm partition (default: the config's, else the cluster's)."},
    "time_limit": {"type": "string", "pattern": "^[0-9:-]+$", "description": "Slurm time limit, e.g. \"8:00:00\" (default: the config's, else the partition's)."},
    "gres": {"type": "string", "pattern": "^[A-Za-z0-9_:.,-]+$", "description": "Slurm generic resources, e.g. \"gpu:1\"."},
    "host": {"type": "string", "minLength": 1, "description": "Where: 'local' (default) or an SSH host with podman or docker."},
    "image": {"type": "string", "minLength": 1, "description": "Container image (default: the configured one, localhost/sandbox-mcp:latest)."},
    "repo_base": {"type": "string", "minLength": 1, "description": "The git repository on the host (default: the server's repo_base on local, the host's configured repo_base over SSH)."},
    "cpus": {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?$", "description": "CPU limit, e.g. \"2\" or \"0.5\" (default: the config's, else none)."},
    "memory": {"type": "string", "pattern": "^[0-9]+[bkmgBKMG]?$", "description": "Memory limit, e.g. \"4g\" (default: the config's, else none)."},
    "pids": {"type": "integer", "minimum": 16, "maximum": 4194304, "description": "Most processes in the container (default: the config's, else the runtime's)."},
    "gpus": {"type": ["string", "integer"], "description": "GPUs the container gets: \"all\", \"none\", a count (2) or indices (\"0,2\"; one index: \"3,\"). Never one another sandbox on the host holds, unless both ask gpu_shared. Through CDI (nvidia-ctk cdi generate) or docker --gpus. Slurm: a count, as --gres=gpu:N. Default: the config's, else none. remote_hosts {probe: true} shows which are free."},
    "gpu_shared": {"type": "boolean", "default": false, "description": "May use GPUs other sandboxes asking gpu_shared hold (and share these)."}
  },
  "additionalProperties": false
})json";

const char* k_name_only = R"json({
  "type": "object",
  "properties": {"name": {"type": "string", "minLength": 1}},
  "required": ["name"],
  "additionalProperties": false
})json";

const char* k_rm_input = R"json({
  "type": "object",
  "properties": {
    "name": {"type": "string", "minLength": 1},
    "force": {"type": "boolean", "default": false,
              "description": "Remove even when the sandbox holds uncommitted changes, untracked files or commits no branch has: they are kept first under refs/sandbox-rescue/NAME/TIME/ in the repository (the answer says where)."}
  },
  "required": ["name"],
  "additionalProperties": false
})json";

const char* k_rm_output = R"json({
  "type": "object",
  "properties": {"name": {"type": "string"}, "removed": {"type": "boolean"},
                 "rescued": {"type": "string", "description": "force: where the sandbox's work was kept (git refs prefix, e.g. refs/sandbox-rescue/t1/20261207T120000Z/: heads/*, HEAD, worktree = the uncommitted files)"},
                 "work": {"type": "string", "description": "what the sandbox held"},
                 "note": {"type": "string"}},
  "required": ["name", "removed"],
  "additionalProperties": false
})json";

const char* k_sync_output = R"json({
  "type": "object",
  "properties": {"name": {"type": "string"}, "branch": {"type": "string"},
                 "branch_head": {"type": "string", "description": "the repository's branch after the sync (fast-forwarded to the sandbox's); empty when it was not moved"},
                 "refs": {"type": "array", "items": {"type": "string"}, "description": "\"SHA refs/remotes/sandbox/NAME/BRANCH\" for each of the sandbox's branches, now in the repository"},
                 "work": {"type": "object"},
                 "note": {"type": "string"}},
  "required": ["name", "branch", "refs"],
  "additionalProperties": false
})json";

json work_json(const sandbox::WorkStatus& w) {
  json out = {{"state", w.state()}, {"summary", w.summary()}};
  if (w.known) {
    out["changed"] = w.changed;
    out["untracked"] = w.untracked;
    if (w.unmerged >= 0) {
      out["unmerged_commits"] = w.unmerged;
    }
  }
  return out;
}

const char* k_attach_input = R"json({
  "type": "object",
  "properties": {
    "name": {"type": "string", "minLength": 1},
    "keys": {"type": "string", "description": "Text typed into the pane as it is; each newline presses Enter."},
    "special_keys": {"type": "array", "items": {"type": "string", "minLength": 1},
                     "description": "tmux key names sent after `keys`, e.g. [\"C-c\"] or [\"Up\", \"Enter\"]."},
    "wait_ms": {"type": "integer", "minimum": 0, "maximum": 60000, "default": 500,
                "description": "How long to let the pane react to the keys before reading it."}
  },
  "required": ["name"],
  "additionalProperties": false
})json";

const char* k_attach_output = R"json({
  "type": "object",
  "properties": {
    "name": {"type": "string"},
    "attach_command": {"type": "string", "description": "What a human runs in a terminal to join the same tmux session."},
    "pane": {"type": "string", "description": "The pane's current screen."}
  },
  "required": ["name", "attach_command", "pane"],
  "additionalProperties": false
})json";

json info_json(const sandbox::SandboxInfo& info) {
  const auto& r = info.row;
  json out = {{"name", r.name},
              {"host", r.host},
              {"branch", r.branch},
              {"state", info.state.text},
              {"work_dir", r.work_dir},
              {"container", r.container_id},
              {"slurm_job_id", r.slurm_job_id},
              {"created_at", r.created_at},
              {"ccr_mode", r.ccr_mode},
              {"image", r.image},
              {"runtime", r.runtime},
              {"gpus", r.gpus},
              {"gpu_shared", r.gpu_shared},
              {"attach_command", info.attach_command}};
  if (!info.node.empty()) {
    out["node"] = info.node;
  }
  out["work"] = work_json(info.work);
  add_note(out, info.note);
  return out;
}

sandbox::SandboxManager& manager(ToolEnv& env, const std::string& tool) {
  if (!env.sandboxes) {
    throw mcp::ToolError(tool + ": sandboxes are not available in this server (no sandbox manager configured)");
  }
  return *env.sandboxes;
}

// Runs `body`, turning sandbox failures into -32602 (a bad request) or a tool error.
// `host`: where the work happens, for the advice on an unreachable host ("sandbox:NAME" for a
// sandbox's own, whose messages say what to do).
mcp::ToolResult sandbox_guarded(const std::string& tool, const std::string& host,
                                const std::function<mcp::ToolResult()>& body) {
  try {
    return guarded(tool, host, body);
  } catch (const sandbox::SandboxError& e) {
    if (e.kind() == sandbox::SandboxError::Kind::invalid) {
      throw mcp::InvalidArgument(e.field().empty() ? "name" : e.field(), tool + ": " + e.what());
    }
    throw mcp::ToolError(tool + ": " + e.what());
  }
}

// A caller confined by a host's profile must not name a repository: the host runs git in it (its
// config included), and a confined command can write one.
void refuse_named_repository_when_confined(ToolEnv& env, const json& args) {
  if (!args.contains("repo_base") || !env.profiles) {
    return;
  }
  for (const std::string& h : {arg_string(args, "host", "local"), std::string("local")}) {
    if (env.profiles->resolve("", h) != nullptr) {
      throw mcp::InvalidArgument("repo_base",
                                 "sandbox_new: calls on " + h +
                                     " are confined by a profile (the config's default_profile / hosts[].profile), "
                                     "so they cannot name a repository: sandboxes come from the configured one "
                                     "(repo_base in the config, or hosts[].repo_base)");
    }
  }
}

mcp::Tool make_sync_tool(ToolEnv& env) {
  mcp::Tool t_sync = declare_tool(
      "sandbox_sync", "Bring a sandbox's commits to its repository",
      "Fetch every branch of a running sandbox into its repository as sandbox/NAME/BRANCH (git fetch from "
      "inside the sandbox, objects checked) and fast-forward the sandbox's branch there when that is a "
      "fast-forward and the branch is not checked out; says what it did and what work is still only in the "
      "sandbox.",
      json::parse(k_name_only), json::parse(k_sync_output),
      {.read_only = false, .destructive = false, .idempotent = true, .open_world = true});
  t_sync.handler = [&env](const json& args, mcp::ToolContext&) -> mcp::ToolResult {
    return sandbox_guarded("sandbox_sync", std::string("sandbox:") + arg_string(args, "name"),
                           [&]() -> mcp::ToolResult {
                             auto r = manager(env, "sandbox_sync").sync(arg_string(args, "name"));
                             json out = {{"name", r.name},
                                         {"branch", r.branch},
                                         {"branch_head", r.branch_head},
                                         {"refs", r.refs},
                                         {"work", work_json(r.work)}};
                             add_note(out, r.note);
                             return mcp::ToolResult::ok(std::move(out));
                           });
  };
  return t_sync;
}

} // namespace

std::vector<mcp::Tool> make_sandbox_tools(ToolEnv& env) {
  std::vector<mcp::Tool> tools;
  json item = json::parse(k_sandbox_item);

  mcp::Tool t_new = declare_tool(
      "sandbox_new", "Create a sandbox",
      "Create an isolated sandbox: its own git clone of the repository on a branch plus a long-running container "
      "(podman or docker, detected) with the clone at /workspace and a tmux session, on this machine or on an "
      "SSH host (host). Then run commands inside with remote_bash {sandbox: NAME} (foreground or background), read "
      "files with remote_file_read {sandbox: NAME}, and share the tmux with a human through sandbox_attach. Takes "
      "a few seconds; progress is reported.",
      json::parse(k_new_input), item,
      {.read_only = false, .destructive = false, .idempotent = false, .open_world = true});
  t_new.handler = [&env](const json& args, mcp::ToolContext& ctx) -> mcp::ToolResult {
    return sandbox_guarded("sandbox_new", arg_string(args, "host", "local"), [&]() -> mcp::ToolResult {
      refuse_named_repository_when_confined(env, args);
      sandbox::NewRequest req;
      req.name = arg_string(args, "name");
      req.branch = arg_string(args, "branch", "main");
      req.ccr = arg_bool(args, "ccr", false);
      req.slurm = arg_bool(args, "slurm", false);
      req.host = arg_string(args, "host", "local");
      req.image = arg_string(args, "image");
      req.repo_base = arg_string(args, "repo_base");
      req.cpus = arg_string(args, "cpus");
      req.memory = arg_string(args, "memory");
      req.pids = static_cast<long>(arg_int(args, "pids", 0));
      req.partition = arg_string(args, "partition");
      req.time_limit = arg_string(args, "time_limit");
      req.gres = arg_string(args, "gres");
      if (args.contains("gpus")) {
        req.gpus =
            args["gpus"].is_number_integer() ? std::to_string(args["gpus"].get<long long>()) : arg_string(args, "gpus");
      }
      req.gpu_shared = arg_bool(args, "gpu_shared", false);
      if (ctx.wants_progress()) {
        req.progress = [&ctx](const std::string& line) { ctx.progress(line); };
      }
      auto info = manager(env, "sandbox_new").create(req);
      env.hosts.remove(sandbox::SandboxManager::k_host_prefix + info.row.name); // a stale host of an earlier one
      return mcp::ToolResult::ok(info_json(info));
    });
  };
  tools.push_back(std::move(t_new));

  mcp::Tool t_ls = declare_tool(
      "sandbox_ls", "List sandboxes",
      "List the sandboxes with their host, branch, live state (running / exited / missing when the container was "
      "removed behind our back), work directory, container, its work (clean, dirty: uncommitted changes, "
      "unmerged: commits no branch of the repository has) and the command a human runs to attach.",
      json::parse(R"json({"type": "object", "properties": {}, "additionalProperties": false})json"),
      {{"type", "object"},
       {"properties", {{"sandboxes", {{"type", "array"}, {"items", item}}}}},
       {"required", {"sandboxes"}},
       {"additionalProperties", false}},
      {.read_only = true, .destructive = false, .idempotent = true, .open_world = true});
  t_ls.handler = [&env](const json&, mcp::ToolContext&) -> mcp::ToolResult {
    return sandbox_guarded("sandbox_ls", "sandbox:", [&]() -> mcp::ToolResult {
      json list = json::array();
      for (const auto& info : manager(env, "sandbox_ls").list()) {
        list.push_back(info_json(info));
      }
      return mcp::ToolResult::ok({{"sandboxes", list}});
    });
  };
  tools.push_back(std::move(t_ls));

  mcp::Tool t_rm = declare_tool(
      "sandbox_rm", "Remove a sandbox",
      "Remove a sandbox: its commits are first fetched into the repository (sandbox/NAME/*, and its branch "
      "fast-forwarded when it can be), then its container (and what runs in it), its directory and its row go. "
      "Refused while it holds uncommitted changes, untracked files or commits no branch of the repository has, "
      "unless force (then they are kept under refs/sandbox-rescue/ first). Works when the container is gone.",
      json::parse(k_rm_input), json::parse(k_rm_output),
      {.read_only = false, .destructive = true, .idempotent = true, .open_world = true});
  t_rm.handler = [&env](const json& args, mcp::ToolContext&) -> mcp::ToolResult {
    return sandbox_guarded("sandbox_rm", std::string("sandbox:") + arg_string(args, "name"), [&]() -> mcp::ToolResult {
      const std::string name = arg_string(args, "name");
      auto r = manager(env, "sandbox_rm").remove(name, arg_bool(args, "force", false));
      env.hosts.remove(sandbox::SandboxManager::k_host_prefix + sandbox::sandbox_of_host(name));
      json out = {{"name", r.name}, {"removed", r.removed}, {"work", r.work.summary()}};
      if (!r.rescued.empty()) {
        out["rescued"] = r.rescued;
      }
      std::string note;
      for (const auto& n : r.notes) {
        note += (note.empty() ? "" : "; ") + n;
      }
      add_note(out, note);
      return mcp::ToolResult::ok(std::move(out));
    });
  };
  tools.push_back(std::move(t_rm));

  tools.push_back(make_sync_tool(env));

  mcp::Tool t_attach = declare_tool(
      "sandbox_attach", "Share a sandbox's tmux",
      "Return the command a human runs to attach to the sandbox's tmux session and the pane's current screen. "
      "keys are typed into the pane first (a newline presses Enter; special_keys sends tmux key names such as "
      "C-c): the agent and a human share one session.",
      json::parse(k_attach_input), json::parse(k_attach_output),
      {.read_only = false, .destructive = false, .idempotent = false, .open_world = true});
  t_attach.handler = [&env](const json& args, mcp::ToolContext&) -> mcp::ToolResult {
    return sandbox_guarded(
        "sandbox_attach", std::string("sandbox:") + arg_string(args, "name"), [&]() -> mcp::ToolResult {
          std::vector<std::string> special;
          if (auto it = args.find("special_keys"); it != args.end()) {
            special = it->get<std::vector<std::string>>();
          }
          auto r = manager(env, "sandbox_attach")
                       .attach(arg_string(args, "name"), arg_string(args, "keys"), special,
                               std::chrono::milliseconds(arg_int(args, "wait_ms", 500)));
          return mcp::ToolResult::ok({{"name", r.name}, {"attach_command", r.attach_command}, {"pane", r.pane}});
        });
  };
  tools.push_back(std::move(t_attach));
  return tools;
}

std::string sandbox_host_name(ToolEnv& env, const std::string& tool, const std::string& sandbox) {
  if (sandbox.empty()) {
    return {};
  }
  auto& m = manager(env, tool);
  std::shared_ptr<exec::Host> h;
  try {
    h = m.host(sandbox);
  } catch (const sandbox::SandboxError& e) {
    throw mcp::ToolError(tool + ": " + e.what());
  }
  if (!h) {
    std::string known;
    try {
      for (const auto& row : m.rows()) {
        known += (known.empty() ? "" : ", ") + row.name;
      }
    } catch (const std::exception&) {
    }
    throw mcp::InvalidArgument(
        "sandbox", tool + ": no sandbox named '" + sandbox + "'" +
                       (known.empty() ? " (there are none; create one with sandbox_new)" : "; sandboxes: " + known));
  }
  // The server's host table may hold an older sandbox by this name (removed and made again by the
  // CLI): the manager's, checked against the registry, wins.
  env.hosts.add(h);
  return h->name();
}

} // namespace smcp::tools
