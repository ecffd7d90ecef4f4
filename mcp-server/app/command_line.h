// The sandbox-mcp command line: `serve` with its options (stdio or --http) and the sandbox
// manager's subcommands. Kept out of main.cpp so that main stays a thin dispatcher.
#pragma once

#include "mcp-server/app/app.h"
#include "mcp-server/app/serve_http.h"

#include <cstddef>
#include <optional>
#include <string>

namespace smcp::app {

// The sandbox manager's subcommands' values (the original manager's flags, plus --host and --image).
struct SandboxCli {
  std::string name;
  std::string branch = "main";
  bool ccr = false;
  bool slurm = false;
  std::string host = "local";
  std::string image;
  std::string host_repo_base;
  std::string cpus;
  std::string memory;
  long pids = 0;
  std::string partition;
  std::string time_limit;
  std::string gres;
  std::string gpus;        // --gpus (empty: the config's default)
  bool gpu_shared = false; // the repository on --host (default: the host's repo_base in the config)
  bool rebuild = false;    // image build --rebuild
  bool force = false;      // rm / reset --force: remove sandboxes holding work (kept as rescue refs first)
};

struct CommandLine {
  std::string command; // the subcommand given ("serve", "new", "ls", ..., "image")
  SandboxCli sandbox;
  AppConfig config;
  HttpCli http;
  std::size_t max_message_bytes = 4 * 1024 * 1024;
};

// Parses argv, takes the HTTP token out of the environment (before any thread or child exists),
// sets up logging and checks `serve`'s values. Returns the exit code when the program ends here
// (--help, --version, a usage error), else nullopt with `out` filled in.
std::optional<int> parse_command_line(int argc, char** argv, CommandLine& out);

} // namespace smcp::app
