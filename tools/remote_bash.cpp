#include "tools/common.h"
#include "tools/profile_runner.h"
#include "tools/tools.h"

#include <string_view>

namespace smcp::tools {

namespace {

constexpr long long k_default_timeout_ms = 120000;

const char* k_input_schema = R"json({
  "type": "object",
  "properties": {
    "command": {"type": "string", "minLength": 1,
      "description": "The bash command line to run (run as `bash -c COMMAND` on the host)."},
    "description": {"type": "string", "maxLength": 1024,
      "description": "A few words saying what the command does (at most 1024 characters); recorded in the audit log."},
    "timeout": {"type": "integer", "minimum": 1, "maximum": 600000, "default": 120000,
      "description": "Milliseconds before a foreground command's whole process tree is ended (default 120000, max 600000). Ignored for background jobs."},
    "run_in_background": {"type": "boolean", "default": false,
      "description": "Start a durable background job and return its bash_id at once; it survives dropped connections and server restarts. Read it with remote_bash_output."},
    "host": {"type": "string", "minLength": 1,
      "description": "Where to run: 'local' or an ssh alias. Default: the configured default host (SSH_HOST, else local)."},
    "sandbox": {"type": "string", "minLength": 1,
      "description": "Run inside this sandbox's container, in /workspace (see sandbox_new / sandbox_ls); instead of host."},
    "cwd": {"type": "string", "minLength": 1,
      "description": "Working directory on the host. Default: the server's directory on local, the home directory over SSH."},
    "env": {"type": "object", "additionalProperties": {"type": "string"},
      "description": "Extra environment variables for the command."},
    "profile": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$",
      "description": "Confine the command with a bubblewrap profile: restrictive (no network, 512 MB, 60 s CPU, 64 MB files, cleared environment), standard (network, 1 GB, 300 s, 256 MB), permissive (4 GB, 600 s, 1 GB, all of /etc and /var), or one from the config. System directories are read-only; /work is this run's writable directory, deleted when the command ends; cwd, when given, is bound read-only (writable only under a profile with cwd_writable) and must not be /, a system directory, the home directory or one holding it, or hold credentials; /tmp is fresh. A host's configured profile is a ceiling: a call may only name one at least as strict, unless the config's allowed_profiles lists it."}
  },
  "required": ["command"],
  "additionalProperties": false
})json";

const char* k_output_schema = R"json({
  "type": "object",
  "properties": {
    "exit_code": {"type": ["integer", "null"], "description": "null while running or when ended by a signal"},
    "signal": {"type": ["string", "null"], "description": "e.g. SIGTERM when a signal ended the command"},
    "stdout": {"type": "string"},
    "stderr": {"type": "string"},
    "duration_ms": {"type": "integer"},
    "truncated": {"type": "boolean", "description": "stdout or stderr was cut in the middle; see full_output"},
    "timed_out": {"type": "boolean"},
    "status": {"type": "string", "enum": ["running", "exited", "killed"]},
    "bash_id": {"type": "string", "description": "set for background jobs, promoted commands and truncated output"},
    "host": {"type": "string"},
    "stdout_bytes": {"type": "integer"},
    "stderr_bytes": {"type": "integer"},
    "full_output": {"type": "string", "description": "file on host 'local' with the full combined output"},
    "note": {"type": "string"},
    "profile": {"type": "string", "description": "the bubblewrap profile the command ran under"},
    "limit": {"type": "string", "enum": ["cpu", "memory", "file_size", "open_files"], "description": "the profile's limit that ended or failed the command"},
    "work_dir": {"type": "string", "description": "the run's work directory on the host (/work inside); deleted when the command ends"}
  },
  "required": ["exit_code", "stdout", "stderr", "duration_ms", "truncated", "status", "host"],
  "additionalProperties": false
})json";

exec::CommandSpec spec_from(const json& args) {
  exec::CommandSpec spec;
  spec.command = arg_string(args, "command");
  spec.cwd = arg_string(args, "cwd");
  spec.timeout = std::chrono::milliseconds(arg_int(args, "timeout", k_default_timeout_ms));
  spec.profile = arg_string(args, "profile");
  if (auto env = args.find("env"); env != args.end()) {
    for (const auto& [key, value] : env->items()) {
      if (key.empty()) {
        throw mcp::InvalidArgument("env", "environment variable names must not be empty");
      }
      if (key.find('=') != std::string::npos) {
        throw mcp::InvalidArgument("env." + key, "environment variable names must not contain '='");
      }
      if (key.find('\0') != std::string::npos) { // refused by validate_arguments already
        throw mcp::InvalidArgument("env", "environment variable names must not contain NUL (\\u0000)");
      }
      spec.env.emplace_back(key, value.get<std::string>());
    }
  }
  return spec;
}

// The structured result of a foreground run (or of one promoted to the background).
json foreground_json(ForegroundResult& r, const sandbox::Profile* profile, const std::string& work_dir,
                     const exec::CommandSpec& spec, ToolEnv& env) {
  json out = {
      {"exit_code", r.exit_code ? json(*r.exit_code) : json(nullptr)},
      {"signal", signal_json(r.signal)},
      {"stdout", r.stdout_text},
      {"stderr", r.stderr_text},
      {"duration_ms", r.duration_ms},
      {"truncated", r.truncated},
      {"timed_out", r.timed_out},
      {"status", r.status},
      {"host", r.host},
      {"stdout_bytes", r.stdout_bytes},
      {"stderr_bytes", r.stderr_bytes},
  };
  if (!r.bash_id.empty()) {
    out["bash_id"] = r.bash_id;
  }
  if (profile) {
    out["profile"] = profile->name;
    out["work_dir"] = work_dir;
    if (!r.running) {
      if (std::string limit = sandbox::limit_hit(*profile, r.signal, r.exit_code, r.stderr_text); !limit.empty()) {
        out["limit"] = limit;
        r.note += (r.note.empty() ? "" : " ") + std::string("The profile's ") + limit +
                  " limit ended or failed the command (profile " + profile->name + ").";
      }
    }
  }
  if (!r.spill_path.empty()) {
    out["full_output"] = r.spill_path;
  }
  if (r.running) {
    out["note"] = "still running after " + std::to_string(env.jobs.options().promote_after.count()) +
                  " ms; continued as background job " + r.bash_id +
                  " (its timeout still applies). Wait for it with remote_bash_output {bash_id: \"" + r.bash_id +
                  "\", wait_ms: 60000}.";
  } else if (r.timed_out) {
    out["note"] = "timed out after " + std::to_string(spec.timeout.count()) + " ms; " +
                  (r.tree_verified ? std::string("the whole process tree was ended") : r.tree_note) +
                  ". Use a larger timeout or run_in_background.";
  } else if (!r.tree_note.empty()) {
    out["note"] = r.tree_note + ".";
  }
  if (!r.note.empty()) {
    out["note"] = out.contains("note") ? out["note"].get<std::string>() + " " + r.note : r.note;
  }
  return out;
}

} // namespace

mcp::Tool make_remote_bash_tool(ToolEnv& env) {
  mcp::Tool tool = declare_tool(
      "remote_bash", "Run a bash command on a host",
      "Run a bash command on a host ('local' or an SSH host) and return exit_code, stdout, stderr and "
      "duration_ms. Output beyond the cap is cut in the middle (truncated: true) and stays readable in full "
      "through bash_id / full_output. A foreground command still running after the promotion budget becomes a "
      "background job (status 'running' with a bash_id) instead of failing. With run_in_background: true the "
      "command starts as a durable job and its bash_id returns at once; read new output with remote_bash_output "
      "(filter, wait_ms, until), stop it with remote_bash_kill, list jobs with remote_bash_list.",
      json::parse(k_input_schema), json::parse(k_output_schema),
      {.read_only = false, .destructive = true, .idempotent = false, .open_world = true});
  tool.handler = [&env](const json& args, mcp::ToolContext& ctx) -> mcp::ToolResult {
    exec::CommandSpec spec = spec_from(args);
    std::string host = arg_string(args, "host");
    const std::string description = arg_string(args, "description");
    if (const std::string sandbox = arg_string(args, "sandbox"); !sandbox.empty()) {
      if (!host.empty()) {
        throw mcp::InvalidArgument("sandbox", "remote_bash: give either host or sandbox, not both (a sandbox "
                                              "already knows its host)");
      }
      host = sandbox_host_name(env, "remote_bash", sandbox);
    }
    const std::string label = host_label(env.hosts, host);
    const sandbox::Profile* profile = env.profiles ? env.profiles->resolve(spec.profile, label) : nullptr;
    if (!spec.profile.empty() && !env.profiles) {
      throw mcp::ToolError("remote_bash: execution profiles are not available in this server");
    }
    return guarded("remote_bash", label, [&]() -> mcp::ToolResult {
      std::string work_dir;
      if (profile) {
        exec::Host& target = *env.hosts.get(host);
        env.profiles->check(target);
        work_dir = env.profiles->apply(*profile, spec, target);
        if (!args.contains("timeout") && env.profiles->settings().default_timeout_seconds > 0) {
          spec.timeout = std::chrono::seconds(env.profiles->settings().default_timeout_seconds);
        }
      }
      if (arg_bool(args, "run_in_background", false)) {
        auto rec = env.jobs.start(host, spec, description);
        json started = {
            {"exit_code", nullptr},
            {"signal", nullptr},
            {"stdout", ""},
            {"stderr", ""},
            {"duration_ms", 0},
            {"truncated", false},
            {"timed_out", false},
            {"status", "running"},
            {"bash_id", rec.id},
            {"host", rec.host},
            {"stdout_bytes", 0},
            {"stderr_bytes", 0},
            {"note", "started in the background; read its output with remote_bash_output {bash_id: \"" + rec.id +
                         "\"} (stdout and stderr are merged in " + rec.job_dir + "/output on " + rec.host + ")"},
        };
        if (profile) {
          started["profile"] = profile->name;
          started["work_dir"] = work_dir;
        }
        return mcp::ToolResult::ok(std::move(started));
      }
      std::function<void(const std::string&)> on_progress;
      if (ctx.wants_progress()) {
        on_progress = [&ctx](const std::string& line) { ctx.progress(line); };
      }
      std::optional<ProfileRunner::Slot> slot;
      if (profile) {
        slot.emplace(*env.profiles, on_progress);
      }
      ForegroundResult r = env.jobs.run(host, spec, description, on_progress, ctx.stop_token());
      slot.reset();
      if (profile && r.exit_code == 125 && r.stderr_text.rfind(sandbox::k_refused_prefix, 0) == 0) {
        // The launcher refused the cwd on the host (docs/profiles.md): nothing ran.
        std::string why = r.stderr_text.substr(std::string_view("sandbox-mcp: ").size());
        while (!why.empty() && (why.back() == '\n' || why.back() == '\r')) {
          why.pop_back();
        }
        throw mcp::ToolError("remote_bash: " + why);
      }
      return mcp::ToolResult::ok(foreground_json(r, profile, work_dir, spec, env));
    });
  };
  return tool;
}

} // namespace smcp::tools
