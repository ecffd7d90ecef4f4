#include "mcp-server/app/serve_http.h"

#include "mcp-server/app/signals.h"

#include "mcp-server/core/protocol.h"

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <pthread.h>
#include <stdexcept>
#include <sys/stat.h>
#include <thread>

namespace smcp::app {

namespace {

std::string read_token_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    throw std::runtime_error("--auth-token-file " + path + ": cannot read the file");
  }
  std::string token;
  std::getline(in, token);
  while (!token.empty() && (token.back() == '\r' || token.back() == ' ' || token.back() == '\t')) {
    token.pop_back();
  }
  if (token.empty()) {
    throw std::runtime_error("--auth-token-file " + path + ": the first line (the token) is empty");
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    spdlog::warn("--auth-token-file {}: other users can read the token file; chmod 600 it", path);
  }
  return token;
}

} // namespace

void add_http_options(CLI::App& serve, HttpCli& cli) {
  serve.add_option("--http", cli.listen,
                   "Serve MCP Streamable HTTP at http://HOST:PORT/mcp instead of stdio, e.g. 127.0.0.1:8765 "
                   "(PORT 0: any free port; the URL is logged)");
  serve.add_option("--auth-token-file", cli.token_file,
                   "HTTP: require 'Authorization: Bearer TOKEN', TOKEN being the first line of this file "
                   "(default: $SANDBOX_MCP_HTTP_TOKEN; required when HOST is not loopback)");
  serve.add_option("--allow-origin", cli.allow_origins,
                   "HTTP: a browser Origin allowed besides http(s)://localhost|127.0.0.1|[::1] (repeatable)");
  serve.add_option("--allow-host", cli.allow_hosts,
                   "HTTP: a Host header name allowed besides localhost, 127.0.0.1 and [::1], e.g. the name a "
                   "reverse proxy forwards (repeatable)");
  serve
      .add_option("--max-sessions", cli.max_sessions,
                  "HTTP: sessions open at once; when full, the least recently used idle session is ended to "
                  "admit a new one (503 only when all are in use)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1000000}));
  serve
      .add_option("--session-idle-timeout", cli.session_idle_timeout_s,
                  "HTTP: seconds without requests after which a session ends")
      ->check(CLI::Range(1LL, 86400LL * 30));
  serve
      .add_option("--max-body-bytes", cli.max_body_bytes,
                  "HTTP: largest accepted request body (default: --max-message-bytes)")
      ->check(CLI::Range(std::size_t{1024}, std::size_t{1} << 30));
  serve
      .add_option("--max-connections", cli.max_connections,
                  "HTTP: open connections (each SSE stream is one); at the limit, connections still waiting for a "
                  "complete request give way to new ones")
      ->check(CLI::Range(std::size_t{8}, std::size_t{16384}));
}

transport::HttpOptions http_options_from_cli(const HttpCli& cli, std::size_t max_message_bytes) {
  transport::HttpOptions options;
  try {
    transport::parse_listen_address(cli.listen, options.host, options.port);
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(e.what());
  }
  if (!cli.token_file.empty()) {
    options.bearer_token = read_token_file(cli.token_file);
  } else if (cli.env_token && !cli.env_token->empty()) {
    options.bearer_token = *cli.env_token;
  }
  options.allowed_origins = cli.allow_origins;
  options.allowed_hosts = cli.allow_hosts;
  options.max_sessions = cli.max_sessions;
  options.session_idle_timeout = std::chrono::seconds(cli.session_idle_timeout_s);
  options.max_body_bytes = cli.max_body_bytes ? cli.max_body_bytes : max_message_bytes;
  options.max_connections = cli.max_connections;
  options.protocol_versions = mcp::supported_protocol_versions();
  if (auto err = transport::validate_http_options(options); !err.empty()) {
    throw std::runtime_error(err);
  }
  return options;
}

int serve_http(App& app, transport::HttpOptions options) {
  transport::HttpTransport transport(std::move(options), *app.server());
  transport.bind();

  // SIGINT/SIGTERM/SIGHUP (blocked in every thread by main) stop the server.
  return run_until_signal([&transport] { return transport.run(); }, [&transport] { transport.stop(); });
}

} // namespace smcp::app
