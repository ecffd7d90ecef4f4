// `sandbox-mcp serve --http HOST:PORT`: the Streamable HTTP options of the command line, turning
// them into transport options (token file / environment, safety checks), and serving the App over
// HTTP until SIGINT or SIGTERM. Kept out of main.cpp so that main stays a thin dispatcher.
#pragma once

#include "mcp-server/app/app.h"
#include "transport/http_transport.h"

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace smcp::app {

struct HttpCli {
  std::string listen; // HOST:PORT from --http; empty: stdio
  std::string token_file;
  std::vector<std::string> allow_origins;
  std::vector<std::string> allow_hosts;
  std::size_t max_sessions = 1024;
  long long session_idle_timeout_s = 3600;
  std::size_t max_body_bytes = 0; // 0: --max-message-bytes
  std::size_t max_connections = 512;
  std::optional<std::string> env_token; // SANDBOX_MCP_HTTP_TOKEN, taken out of the environment by main()
};

// Adds --http and the options that go with it to the `serve` subcommand.
void add_http_options(CLI::App& serve, HttpCli& cli);

// Builds the transport options: reads the token (--auth-token-file, else cli.env_token)
// and checks that serving is safe. Throws std::runtime_error with a message for the user.
transport::HttpOptions http_options_from_cli(const HttpCli& cli, std::size_t max_message_bytes);

// Serves the App over Streamable HTTP until SIGINT or SIGTERM; returns the exit code.
int serve_http(App& app, transport::HttpOptions options);

} // namespace smcp::app
