// Wiring: builds the state store, hosts, job manager, tool registry and MCP server from a
// configuration. Everything main() does besides parsing arguments lives here, so tests can
// build the whole server in-process.
#pragma once

#include "mcp-server/protocol.h"
#include "mcp-server/state_store.h"
#include "tools/hosts.h"
#include "tools/jobs.h"
#include "tools/tools.h"

#include <memory>
#include <string>

namespace smcp::app {

struct AppConfig {
  std::string state_dir;    // holds state.db, jobs/ and spill/
  std::string default_host; // empty: SSH_HOST if set, else the config file's, else "local"
  std::string config_file;  // empty: $SANDBOX_MCP_CONFIG or ~/.config/sandbox-mcp/config.json (see config.h)
  tools::JobOptions jobs;
  std::chrono::milliseconds kill_grace{3000};
  tools::ResultText result_text = tools::ResultText::terminal; // the text block of results
  mcp::StructuredContent structured_content = mcp::StructuredContent::automatic;
};

// SANDBOX_MCP_STATE_DIR, else $XDG_STATE_HOME/sandbox-mcp, else ~/.local/state/sandbox-mcp.
std::string default_state_dir();

class App {
public:
  explicit App(AppConfig config);
  ~App();

  std::shared_ptr<mcp::Server> server() const { return m_server; }
  tools::JobManager& jobs() { return *m_jobs; }
  tools::HostRegistry& hosts() { return m_hosts; }
  state::StateStore& store() { return *m_store; }
  const AppConfig& config() const { return m_config; }

private:
  void add_ssh_hosts(); // configured SSH hosts, the default host, and the factory for other aliases

  AppConfig m_config;
  std::unique_ptr<state::StateStore> m_store;
  tools::HostRegistry m_hosts;
  std::unique_ptr<tools::JobManager> m_jobs;
  std::unique_ptr<tools::ToolEnv> m_env; // the tools keep a reference to it: it lives as long as the App
  std::shared_ptr<mcp::ToolRegistry> m_registry;
  std::shared_ptr<mcp::Server> m_server;
};

} // namespace smcp::app
