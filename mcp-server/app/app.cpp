#include "mcp-server/app/app.h"

#include "sandbox/local_host.h"
#include "tools/tools.h"

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <filesystem>
#include <stdexcept>

#ifndef SMCP_VERSION
#define SMCP_VERSION "0.0.0"
#endif

namespace smcp::app {

std::string default_state_dir() {
  if (const char* dir = std::getenv("SANDBOX_MCP_STATE_DIR"); dir && *dir) {
    return dir;
  }
  if (const char* xdg = std::getenv("XDG_STATE_HOME"); xdg && *xdg) {
    return std::string(xdg) + "/sandbox-mcp";
  }
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : "/tmp") + "/.local/state/sandbox-mcp";
}

App::App(AppConfig config) : m_config(std::move(config)) {
  if (m_config.state_dir.empty()) {
    m_config.state_dir = default_state_dir();
  }
  std::error_code ec;
  std::filesystem::create_directories(m_config.state_dir, ec);
  if (ec) {
    throw std::runtime_error("cannot create state directory " + m_config.state_dir + ": " + ec.message() +
                             " (set --state-dir or SANDBOX_MCP_STATE_DIR)");
  }
  std::filesystem::permissions(m_config.state_dir, std::filesystem::perms::owner_all,
                               std::filesystem::perm_options::replace, ec);
  m_store = state::open_sqlite_store(m_config.state_dir + "/state.db");

  exec::LocalHostOptions local;
  local.jobs_root = m_config.state_dir + "/jobs";
  local.kill_grace = m_config.kill_grace;
  m_hosts.add(exec::make_local_host(local));

  std::string default_host = m_config.default_host;
  if (default_host.empty()) {
    if (const char* ssh_host = std::getenv("SSH_HOST"); ssh_host && *ssh_host) {
      default_host = ssh_host;
    }
  }
  if (!default_host.empty()) {
    m_hosts.set_default(default_host);
  }
  spdlog::info("default host: {}; state: {}", m_hosts.default_name(), m_config.state_dir);

  if (m_config.jobs.spill_dir.empty()) {
    m_config.jobs.spill_dir = m_config.state_dir + "/spill";
  }
  m_config.jobs.kill_grace = m_config.kill_grace;
  m_jobs = std::make_unique<tools::JobManager>(m_hosts, *m_store, m_config.jobs);

  m_registry = std::make_shared<mcp::ToolRegistry>();
  m_env = std::make_unique<tools::ToolEnv>(tools::ToolEnv{m_hosts, *m_jobs, *m_store});
  tools::register_tools(*m_registry, *m_env);

  mcp::ServerOptions options;
  options.version = SMCP_VERSION;
  options.instructions = tools::server_instructions();
  m_server = std::make_shared<mcp::Server>(options, m_registry);
}

App::~App() = default;

} // namespace smcp::app
