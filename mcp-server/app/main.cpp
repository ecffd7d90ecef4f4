// sandbox-mcp: the MCP server (`serve`) and the sandbox manager CLI. Thin: parse, wire, run.
#include "mcp-server/app/command_line.h"
#include "mcp-server/app/logging.h"
#include "mcp-server/app/sandbox_cli.h"
#include "mcp-server/app/signals.h"
#include "transport/stdio_transport.h"

#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdlib>
#include <iostream>
#include <malloc.h>

namespace {

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

// Serves MCP on stdio, or over HTTP with --http, until the client leaves or a signal ends it.
int serve(smcp::app::CommandLine& cl) {
  try {
    if (!cl.http.listen.empty()) {
      smcp::transport::HttpOptions options;
      try {
        options = smcp::app::http_options_from_cli(cl.http, cl.max_message_bytes);
      } catch (const std::exception& e) {
        spdlog::critical("--http: {}", e.what());
        return 2;
      }
      smcp::app::block_termination_signals();
      smcp::app::App app(cl.config);
      smcp::app::forward_logs_to(app.server());
      return finish(app, smcp::app::serve_http(app, std::move(options)));
    }
    smcp::app::block_termination_signals();
    smcp::app::App app(cl.config);
    smcp::app::forward_logs_to(app.server());
    smcp::transport::StdioOptions options;
    options.max_message_bytes = cl.max_message_bytes;
    smcp::transport::StdioTransport transport(options);
    return finish(app,
                  smcp::app::run_until_signal([&] { return transport.run(*app.server()); }, [&] { transport.stop(); }));
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }
}

} // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  // Blocks of 256 KiB and more (job output read in bulk, answers) are mapped and unmapped, so
  // their memory goes back to the system when freed. glibc's default threshold grows to the
  // largest block freed so far, after which such blocks stay in its arenas for good.
  mallopt(M_MMAP_THRESHOLD, 256 * 1024);

  smcp::app::CommandLine cl;
  if (auto rc = smcp::app::parse_command_line(argc, argv, cl)) {
    return *rc;
  }
  if (cl.command != "serve") {
    return smcp::app::run_sandbox_command(cl);
  }
  return serve(cl);
}
