// sandbox-mcp: the MCP server (`serve`) and the sandbox manager CLI. Thin: parse, wire, run.
#include "mcp-server/app/app.h"
#include "mcp-server/app/logging.h"
#include "mcp-server/app/serve_http.h"
#include "mcp-server/app/signals.h"
#include "transport/stdio_transport.h"

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdlib>
#include <iostream>
#include <malloc.h>

namespace {

int not_yet(const std::string& what) {
  std::cerr << "sandbox-mcp " << what
            << ": the sandbox backends (podman/docker, Slurm, bubblewrap) are not built into this version yet.\n";
  return 3;
}

// The transport has closed its sessions (cancelling their calls). The App's objects must outlive
// every request thread: wait for them; if one ignores cancellation, leave without destroying them.
int finish(smcp::app::App& app, int rc) {
  if (!app.server()->wait_idle(std::chrono::seconds(30))) {
    spdlog::critical("requests still running 30 s after shutdown began; exiting without cleanup");
    spdlog::shutdown();
    std::_Exit(rc ? rc : 1);
  }
  return rc;
}

} // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  // Blocks of 256 KiB and more (job output read in bulk, answers) are mapped and unmapped, so
  // their memory goes back to the system when freed. glibc's default threshold grows to the
  // largest block freed so far, after which such blocks stay in its arenas for good.
  mallopt(M_MMAP_THRESHOLD, 256 * 1024);

  CLI::App cli{"sandbox-mcp: an MCP server that gives AI agents fast, durable, safe hands on this machine, SSH "
               "hosts, containers and Slurm nodes; and the sandbox manager CLI."};
  cli.set_version_flag("--version", std::string("sandbox-mcp ") + SMCP_VERSION);
  cli.require_subcommand(1);
  std::string repo_base;
  cli.add_option("--repo_base", repo_base, "Repository the sandboxes' worktrees come from");

  smcp::app::AppConfig config;
  // Default: warnings and errors only on stdio (clients show the server's stderr as errors), info on HTTP.
  std::string log_level = std::getenv("SANDBOX_MCP_LOG_LEVEL") ? std::getenv("SANDBOX_MCP_LOG_LEVEL") : "";
  smcp::app::HttpCli http;
  std::size_t max_message_bytes = 4 * 1024 * 1024;
  long long promote_after_ms = config.jobs.promote_after.count();
  long long retention_hours = config.jobs.retention.count();

  auto* serve = cli.add_subcommand("serve", "Serve MCP on stdio (default) or Streamable HTTP (--http)");
  smcp::app::add_http_options(*serve, http);
  serve->add_option("--state-dir", config.state_dir,
                    "State directory (default: $SANDBOX_MCP_STATE_DIR, "
                    "$XDG_STATE_HOME/sandbox-mcp or ~/.local/state/sandbox-mcp)");
  serve->add_option("--default-host", config.default_host,
                    "Default host for the tools (default: $SSH_HOST, else local)");
  serve
      ->add_option("--log-level", log_level,
                   "trace, debug, info, warn, error, off: what goes to stderr (default: warn on stdio, info with "
                   "--http); clients that send logging/setLevel also get info and above as notifications/message")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  std::string result_text =
      std::getenv("SANDBOX_MCP_RESULT_TEXT") ? std::getenv("SANDBOX_MCP_RESULT_TEXT") : "terminal";
  serve
      ->add_option("--result-text", result_text,
                   "What a result's text block holds: 'terminal' (the output, then a short status line; what the "
                   "model reads) or 'json' (the structuredContent again); env SANDBOX_MCP_RESULT_TEXT")
      ->check(CLI::IsMember({"terminal", "json"}));
  std::string structured =
      std::getenv("SANDBOX_MCP_STRUCTURED_CONTENT") ? std::getenv("SANDBOX_MCP_STRUCTURED_CONTENT") : "auto";
  serve
      ->add_option("--structured-content", structured,
                   "Whether results carry structuredContent (and tools/list outputSchema): 'auto' (every client but "
                   "Claude Code, which shows structuredContent to the model as JSON instead of the text), 'always', "
                   "'never'; env SANDBOX_MCP_STRUCTURED_CONTENT")
      ->check(CLI::IsMember({"auto", "always", "never"}));
  serve->add_option("--max-message-bytes", max_message_bytes, "Largest accepted JSON-RPC message")
      ->check(CLI::Range(std::size_t{1024}, std::size_t{1} << 30));
  serve
      ->add_option("--output-cap", config.jobs.max_output_chars,
                   "Characters of stdout/stderr returned per stream (the rest is cut in the middle)")
      ->check(CLI::Range(std::size_t{256}, std::size_t{1} << 30));
  serve->add_option("--ring-bytes", config.jobs.ring_bytes, "In-memory output ring per background job")
      ->check(CLI::Range(std::size_t{4096}, std::size_t{1} << 32));
  serve
      ->add_option("--promote-after-ms", promote_after_ms,
                   "A foreground command still running after this long becomes a background job (0: never)")
      ->check(CLI::Range(0LL, 86400000LL));
  serve
      ->add_option("--job-retention-hours", retention_hours,
                   "Ended jobs older than this are deleted with their output files (0: keep forever)")
      ->check(CLI::Range(0LL, 24LL * 365 * 10));

  std::string name, branch;
  bool ccr = false, slurm = false;
  auto* cmd_new = cli.add_subcommand("new", "Create a sandbox (git worktree + container with tmux)");
  cmd_new->add_option("-n,--name", name, "Sandbox name")->required();
  cmd_new->add_option("-b,--branch", branch, "Branch (default: the name)");
  cmd_new->add_flag("--ccr", ccr, "Claude Code Router mode");
  cmd_new->add_flag("-s,--slurm", slurm, "Run on a Slurm compute node");
  cli.add_subcommand("ls", "List sandboxes");
  cli.add_subcommand("rm", "Remove a sandbox")->add_option("-n,--name", name, "Sandbox name")->required();
  cli.add_subcommand("attach", "Attach to a sandbox's tmux")->add_option("-n,--name", name, "Sandbox name")->required();
  cli.add_subcommand("reset", "Remove every sandbox and forget the state");

  CLI11_PARSE(cli, argc, argv);
  // Our own secret leaves the environment before any thread or child exists: no command, job
  // supervisor or `ssh -G` may inherit it.
  http.env_token = smcp::app::take_secret_env("SANDBOX_MCP_HTTP_TOKEN");
  if (log_level.empty()) {
    log_level = serve->parsed() && !http.listen.empty() ? "info" : "warn";
  }
  smcp::app::setup_logging(log_level);

  if (!serve->parsed()) {
    return not_yet(cli.get_subcommands().front()->get_name());
  }
  if (result_text != "terminal" && result_text != "json") {
    spdlog::critical("SANDBOX_MCP_RESULT_TEXT must be 'terminal' or 'json', not '{}'", result_text);
    return 2;
  }
  if (structured != "auto" && structured != "always" && structured != "never") {
    spdlog::critical("SANDBOX_MCP_STRUCTURED_CONTENT must be auto, always or never, not '{}'", structured);
    return 2;
  }
  config.structured_content = structured == "always"  ? smcp::mcp::StructuredContent::always
                              : structured == "never" ? smcp::mcp::StructuredContent::never
                                                      : smcp::mcp::StructuredContent::automatic;
  config.result_text = result_text == "json" ? smcp::tools::ResultText::json : smcp::tools::ResultText::terminal;
  config.jobs.promote_after = std::chrono::milliseconds(promote_after_ms);
  config.jobs.retention = std::chrono::hours(retention_hours);
  try {
    if (!http.listen.empty()) {
      smcp::transport::HttpOptions options;
      try {
        options = smcp::app::http_options_from_cli(http, max_message_bytes);
      } catch (const std::exception& e) {
        spdlog::critical("--http: {}", e.what());
        return 2;
      }
      smcp::app::block_termination_signals();
      smcp::app::App app(config);
      smcp::app::forward_logs_to(app.server());
      return finish(app, smcp::app::serve_http(app, std::move(options)));
    }
    smcp::app::block_termination_signals();
    smcp::app::App app(config);
    smcp::app::forward_logs_to(app.server());
    smcp::transport::StdioOptions options;
    options.max_message_bytes = max_message_bytes;
    smcp::transport::StdioTransport transport(options);
    return finish(app,
                  smcp::app::run_until_signal([&] { return transport.run(*app.server()); }, [&] { transport.stop(); }));
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }
}
