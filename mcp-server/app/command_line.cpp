#include "mcp-server/app/command_line.h"

#include "mcp-server/app/logging.h"

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <cstdlib>

namespace smcp::app {

namespace {

std::string env_or(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value ? value : fallback;
}

// The values of `serve` that need checks or conversion after parsing.
struct ServeValues {
  std::string log_level;
  std::string result_text;
  std::string structured;
  long long promote_after_ms = 0;
  long long retention_hours = 0;
};

void add_serve_options(CLI::App& serve, CommandLine& out, ServeValues& values) {
  add_http_options(serve, out.http);
  serve.add_option("--state-dir", out.config.state_dir,
                   "State directory (default: $SANDBOX_MCP_STATE_DIR, "
                   "$XDG_STATE_HOME/sandbox-mcp or ~/.local/state/sandbox-mcp)");
  serve.add_option("--default-host", out.config.default_host,
                   "Default host for the tools (default: $SSH_HOST, else local)");
  serve
      .add_option("--log-level", values.log_level,
                  "trace, debug, info, warn, error, off: what goes to stderr (default: warn on stdio, info with "
                  "--http); clients that send logging/setLevel also get info and above as notifications/message")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  serve
      .add_option("--result-text", values.result_text,
                  "What a result's text block holds: 'terminal' (the output, then a short status line; what the "
                  "model reads) or 'json' (the structuredContent again); env SANDBOX_MCP_RESULT_TEXT")
      ->check(CLI::IsMember({"terminal", "json"}));
  serve
      .add_option("--structured-content", values.structured,
                  "Whether results carry structuredContent (and tools/list outputSchema): 'auto' (every client but "
                  "Claude Code, which shows structuredContent to the model as JSON instead of the text), 'always', "
                  "'never'; env SANDBOX_MCP_STRUCTURED_CONTENT")
      ->check(CLI::IsMember({"auto", "always", "never"}));
  serve.add_option("--max-message-bytes", out.max_message_bytes, "Largest accepted JSON-RPC message")
      ->check(CLI::Range(std::size_t{1024}, std::size_t{1} << 30));
  serve
      .add_option("--output-cap", out.config.jobs.max_output_chars,
                  "Characters of stdout/stderr returned per stream (the rest is cut in the middle)")
      ->check(CLI::Range(std::size_t{256}, std::size_t{1} << 30));
  serve.add_option("--ring-bytes", out.config.jobs.ring_bytes, "In-memory output ring per background job")
      ->check(CLI::Range(std::size_t{4096}, std::size_t{1} << 32));
  serve
      .add_option("--promote-after-ms", values.promote_after_ms,
                  "A foreground command still running after this long becomes a background job (0: never)")
      ->check(CLI::Range(0LL, 86400000LL));
  serve
      .add_option("--job-retention-hours", values.retention_hours,
                  "Ended jobs older than this are deleted with their output files (0: keep forever)")
      ->check(CLI::Range(0LL, 24LL * 365 * 10));
}

// The sandbox manager's subcommands, with the original manager's flags (mcp-server/app/sandbox_cli.cpp).
void add_sandbox_commands(CLI::App& cli, SandboxCli& s) {
  auto* cmd_new = cli.add_subcommand("new", "Create a sandbox (git worktree + container with tmux)");
  cmd_new->add_option("-n,--name", s.name, "Sandbox name (default: cnt_N)");
  cmd_new->add_option("-b,--branch", s.branch, "Branch (default: main; created from HEAD when missing)");
  cmd_new->add_flag("--ccr", s.ccr, "Claude Code Router mode (recorded; SANDBOX_CCR=1 in the container)");
  cmd_new->add_flag("-s,--slurm", s.slurm, "Run on a Slurm compute node");
  cmd_new->add_option("--host", s.host, "Where: local (default) or an SSH host");
  cmd_new->add_option("--host_repo_base", s.host_repo_base,
                      "With --host: the git repository on that host (default: its repo_base in the config)");
  cmd_new->add_option("--cpus", s.cpus, "CPU limit (e.g. 2)")->check(CLI::Number);
  cmd_new->add_option("--memory", s.memory, "Memory limit (e.g. 4g)");
  cmd_new->add_option("--pids", s.pids, "Most processes in the container")->check(CLI::Range(16L, 4194304L));
  cmd_new->add_option("--partition", s.partition, "With -s: the Slurm partition");
  cmd_new->add_option("--time", s.time_limit, "With -s: the Slurm time limit (e.g. 8:00:00)");
  cmd_new->add_option("--gres", s.gres, "With -s: Slurm generic resources (e.g. gpu:1)");
  cmd_new->add_option(
      "--gpus", s.gpus,
      "GPUs for the container: all, none, a count (2) or indices (0,2); with -s a count (--gres=gpu:N)");
  cmd_new->add_flag("--gpu-shared", s.gpu_shared, "May share GPUs with other sandboxes that pass --gpu-shared");
  cmd_new->add_option("--image", s.image, "Container image (default: localhost/sandbox-mcp:latest or the config's)");
  cli.add_subcommand("ls", "List sandboxes");
  auto* rm = cli.add_subcommand("rm", "Remove a sandbox (refused while it holds work no branch has, unless --force)");
  rm->add_option("-n,--name", s.name, "Sandbox name")->required();
  rm->add_flag("-f,--force", s.force,
               "Remove even with uncommitted or unmerged work: it is kept under refs/sandbox-rescue/NAME/ first");
  cli.add_subcommand("sync", "Fetch a sandbox's branches into the repository (sandbox/NAME/*) and fast-forward its "
                             "branch")
      ->add_option("-n,--name", s.name, "Sandbox name")
      ->required();
  cli.add_subcommand("attach", "Attach to a sandbox's tmux")
      ->add_option("-n,--name", s.name, "Sandbox name")
      ->required();
  cli.add_subcommand("reset", "Remove every local sandbox (not Slurm jobs, nor ones holding work unless --force), "
                              "the work directories and the images")
      ->add_flag("-f,--force", s.force, "Remove sandboxes holding work too (kept under refs/sandbox-rescue/ first)");
  auto* image = cli.add_subcommand("image", "The sandbox image");
  image->require_subcommand(1);
  image->add_subcommand("build", "Build the default sandbox image here (debootstrap + podman import; no registry)")
      ->add_flag("--rebuild", s.rebuild, "Build again even when the image exists");
}

// Fills the config from the checked values; an exit code when one is invalid.
std::optional<int> apply_serve_values(const ServeValues& values, AppConfig& config) {
  if (values.result_text != "terminal" && values.result_text != "json") {
    spdlog::critical("SANDBOX_MCP_RESULT_TEXT must be 'terminal' or 'json', not '{}'", values.result_text);
    return 2;
  }
  if (values.structured != "auto" && values.structured != "always" && values.structured != "never") {
    spdlog::critical("SANDBOX_MCP_STRUCTURED_CONTENT must be auto, always or never, not '{}'", values.structured);
    return 2;
  }
  config.structured_content = values.structured == "always"  ? mcp::StructuredContent::always
                              : values.structured == "never" ? mcp::StructuredContent::never
                                                             : mcp::StructuredContent::automatic;
  config.result_text = values.result_text == "json" ? tools::ResultText::json : tools::ResultText::terminal;
  config.jobs.promote_after = std::chrono::milliseconds(values.promote_after_ms);
  config.jobs.retention = std::chrono::hours(values.retention_hours);
  return std::nullopt;
}

} // namespace

std::optional<int> parse_command_line(int argc, char** argv, CommandLine& out) {
  CLI::App cli{"sandbox-mcp: an MCP server that gives AI agents fast, durable, safe hands on this machine, SSH "
               "hosts, containers and Slurm nodes; and the sandbox manager CLI."};
  cli.set_version_flag("--version", std::string("sandbox-mcp ") + SMCP_VERSION);
  cli.require_subcommand(1);
  cli.add_option("--repo_base", out.config.repo_base,
                 "Repository the sandboxes' worktrees come from, holding .sandbox_db.sqlite (default: the current "
                 "directory)");

  // Default log level: warnings and errors only on stdio (clients show the server's stderr as
  // errors), info on HTTP.
  ServeValues values{env_or("SANDBOX_MCP_LOG_LEVEL", ""), env_or("SANDBOX_MCP_RESULT_TEXT", "terminal"),
                     env_or("SANDBOX_MCP_STRUCTURED_CONTENT", "auto"), out.config.jobs.promote_after.count(),
                     out.config.jobs.retention.count()};
  auto* serve = cli.add_subcommand("serve", "Serve MCP on stdio (default) or Streamable HTTP (--http)");
  add_serve_options(*serve, out, values);
  add_sandbox_commands(cli, out.sandbox);

  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return cli.exit(e);
  }
  // Our own secret leaves the environment before any thread or child exists: no command, job
  // supervisor or `ssh -G` may inherit it.
  out.http.env_token = take_secret_env("SANDBOX_MCP_HTTP_TOKEN");
  if (values.log_level.empty()) {
    values.log_level = serve->parsed() && !out.http.listen.empty() ? "info" : "warn";
  }
  setup_logging(values.log_level);
  out.command = cli.get_subcommands().front()->get_name();
  if (!serve->parsed()) {
    return std::nullopt;
  }
  return apply_serve_values(values, out.config);
}

} // namespace smcp::app
