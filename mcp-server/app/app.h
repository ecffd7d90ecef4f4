// Wiring: builds the state store, hosts, job manager, tool registry and MCP server from a
// configuration. Everything main() does besides parsing arguments lives here, so tests can
// build the whole server in-process.
#pragma once

#include "mcp-server/core/protocol.h"
#include "mcp-server/store/state_store.h"
#include "sandbox/image.h"
#include "sandbox/manager.h"
#include "tools/jobs/hosts.h"
#include "tools/jobs/jobs.h"
#include "tools/tools.h"

#include <memory>
#include <optional>
#include <string>

namespace smcp::app {

struct FileConfig; // config.h

struct AppConfig {
  // The sandbox manager CLI: hosts and sandboxes only. No job manager (which would take over the
  // jobs a running server owns), no tools, no MCP server.
  bool sandbox_cli = false;
  std::string state_dir;    // holds state.db, jobs/ and spill/
  std::string default_host; // empty: SSH_HOST if set, else the config file's, else "local"
  std::string config_file;  // empty: $SANDBOX_MCP_CONFIG or ~/.config/sandbox-mcp/config.json (see config.h)
  std::string repo_base;    // sandboxes' repository and registry; empty: the config's, else the working directory
  tools::JobOptions jobs;
  std::chrono::milliseconds kill_grace{3000};
  tools::ResultText result_text = tools::ResultText::terminal; // the text block of results
  mcp::StructuredContent structured_content = mcp::StructuredContent::automatic;
};

// SANDBOX_MCP_STATE_DIR, else $XDG_STATE_HOME/sandbox-mcp, else ~/.local/state/sandbox-mcp.
std::string default_state_dir();

// Creates the state directory if needed and returns its real path, after checking that no one but
// root and us can change any directory or symbolic link leading to it and that it is ours alone;
// throws std::runtime_error saying what to fix otherwise.
std::string secure_state_dir(const std::string& dir);

// The value of the environment variable `name` (nullopt when unset), removed from the environment
// so that no command, supervisor or `ssh -G` the server starts inherits it. For the server's own
// secrets (SANDBOX_MCP_HTTP_TOKEN, the SSH key passphrase variable); call before threads start.
std::optional<std::string> take_secret_env(const std::string& name);

class App {
public:
  explicit App(AppConfig config);
  ~App();

  std::shared_ptr<mcp::Server> server() const { return m_server; }
  tools::JobManager& jobs() { return *m_jobs; }
  tools::HostRegistry& hosts() { return m_hosts; }
  state::StateStore& store() { return *m_store; }
  sandbox::SandboxManager& sandboxes() { return *m_sandboxes; }
  const sandbox::ImageOptions& image_options() const { return m_image; }
  const AppConfig& config() const { return m_config; }

private:
  // Configured SSH hosts, the default host, and the factory for other aliases.
  void add_ssh_hosts(std::shared_ptr<const FileConfig> file_config);
  // The sandbox manager over these hosts; its hosts ("sandbox:NAME") come from the host factory.
  void add_sandbox_manager(const FileConfig& file_config);

  AppConfig m_config;
  std::unique_ptr<state::StateStore> m_store;
  tools::HostRegistry m_hosts;
  std::unique_ptr<sandbox::SandboxManager> m_sandboxes;
  std::unique_ptr<tools::ProfileRunner> m_profiles;
  sandbox::ImageOptions m_image;
  std::unique_ptr<tools::JobManager> m_jobs;
  std::unique_ptr<tools::ToolEnv> m_env; // the tools keep a reference to it: it lives as long as the App
  std::shared_ptr<mcp::ToolRegistry> m_registry;
  std::shared_ptr<mcp::Server> m_server;
};

} // namespace smcp::app
