#include "mcp-server/app/app.h"

#include "mcp-server/app/config.h"
#include "sandbox/local_host.h"
#include "ssh/ssh_config.h"
#include "ssh/ssh_host.h"
#include "tools/job_resources.h"
#include "tools/tools.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <pwd.h>
#include <stdexcept>
#include <sys/stat.h>
#include <unistd.h>

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
  std::string home;
  if (const char* env = std::getenv("HOME"); env && *env) {
    home = env;
  } else if (const passwd* pw = ::getpwuid(::getuid()); pw && pw->pw_dir && *pw->pw_dir) {
    home = pw->pw_dir;
  } else {
    throw std::runtime_error("cannot find a home directory for the state; set --state-dir or SANDBOX_MCP_STATE_DIR");
  }
  return home + "/.local/state/sandbox-mcp";
}

namespace {

// The state holds job records whose paths and pids the server acts on: it must be ours alone.
void prepare_state_dir(const std::string& dir) {
  std::error_code ec;
  const bool existed = std::filesystem::exists(dir, ec);
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    throw std::runtime_error("cannot create state directory " + dir + ": " + ec.message() +
                             " (set --state-dir or SANDBOX_MCP_STATE_DIR)");
  }
  if (!existed) {
    ::chmod(dir.c_str(), 0700);
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    throw std::runtime_error("state directory " + dir + " is not a directory");
  }
  if (st.st_uid != ::geteuid()) {
    throw std::runtime_error("state directory " + dir + " belongs to another user (uid " + std::to_string(st.st_uid) +
                             "); use a directory of your own (--state-dir)");
  }
  if (st.st_mode & (S_IWGRP | S_IWOTH)) {
    throw std::runtime_error("state directory " + dir + " is writable by other users; `chmod go-w " + dir +
                             "` or use another --state-dir");
  }
}

} // namespace

App::App(AppConfig config) : m_config(std::move(config)) {
  if (m_config.state_dir.empty()) {
    m_config.state_dir = default_state_dir();
  }
  prepare_state_dir(m_config.state_dir);
  m_store = state::open_sqlite_store(m_config.state_dir + "/state.db");

  exec::LocalHostOptions local;
  local.jobs_root = m_config.state_dir + "/jobs";
  local.kill_grace = m_config.kill_grace;
  m_hosts.add(exec::make_local_host(local));

  add_ssh_hosts();
  spdlog::info("default host: {}; state: {}", m_hosts.default_name(), m_config.state_dir);

  if (m_config.jobs.spill_dir.empty()) {
    m_config.jobs.spill_dir = m_config.state_dir + "/spill";
  }
  m_config.jobs.kill_grace = m_config.kill_grace;
  m_jobs = std::make_unique<tools::JobManager>(m_hosts, *m_store, m_config.jobs);

  m_registry = std::make_shared<mcp::ToolRegistry>();
  m_env = std::make_unique<tools::ToolEnv>(tools::ToolEnv{m_hosts, *m_jobs, *m_store});
  tools::register_tools(*m_registry, *m_env, m_config.result_text);

  mcp::ServerOptions options;
  options.version = SMCP_VERSION;
  options.instructions = tools::server_instructions();
  options.structured_content = m_config.structured_content;
  m_server = std::make_shared<mcp::Server>(options, m_registry, tools::make_job_resources(*m_jobs));
  // Subscribers to job://ID/output hear when the job's output grows or it ends. The server outlives
  // no job manager: ~App stops the manager (and its threads) before the server goes.
  std::weak_ptr<mcp::Server> server = m_server;
  m_jobs->set_change_listener([server](const std::string& id) {
    if (auto s = server.lock()) {
      s->notify_resource_updated(tools::job_resource_uri(id));
    }
  });
}

App::~App() = default;

namespace {

// Which names the agent may use as SSH hosts without listing them in the sandbox-mcp config:
// those with a literal `Host NAME` block in the ssh config ssh itself reads (so a typo or a
// made-up name never opens a connection or adds a known_hosts entry).
bool defined_in_ssh_config(const std::string& name, const FileConfig& fc) {
  const std::string home = ssh::local_home();
  if (!fc.ssh_config.empty()) {
    return ssh::literal_host_patterns(fc.ssh_config, home + "/.ssh").count(name) > 0;
  }
  return ssh::literal_host_patterns(home + "/.ssh/config", home + "/.ssh").count(name) > 0 ||
         ssh::literal_host_patterns("/etc/ssh/ssh_config", "/etc/ssh").count(name) > 0;
}

ssh::SshHostOptions ssh_options(const std::string& name, const SshHostEntry* entry, const FileConfig& fc,
                                std::chrono::milliseconds kill_grace) {
  ssh::SshHostOptions o;
  o.name = name;
  o.resolve.ssh_program = fc.ssh_program;
  o.resolve.config_file = fc.ssh_config;
  o.host_key_policy = fc.host_key_policy;
  o.passphrase = fc.passphrase;
  o.limits = fc.pool;
  o.kill_grace = kill_grace;
  o.skip_command_bashrc = fc.skip_command_bashrc;
  if (entry) {
    if (entry->skip_command_bashrc) {
      o.skip_command_bashrc = *entry->skip_command_bashrc;
    }
    if (entry->host_key_policy) {
      o.host_key_policy = *entry->host_key_policy;
    }
    if (entry->max_concurrency) {
      o.limits.max_concurrency = *entry->max_concurrency;
    }
    if (entry->max_sessions) {
      o.limits.max_sessions = *entry->max_sessions;
    }
    if (entry->max_channels_per_session) {
      o.limits.max_channels_per_session = *entry->max_channels_per_session;
    }
    o.jobs_root = entry->jobs_root;
  }
  return o;
}

} // namespace

void App::add_ssh_hosts() {
  const std::string path = m_config.config_file.empty() ? default_config_path() : m_config.config_file;
  auto fc = std::make_shared<const FileConfig>(load_config(path));
  if (!fc->path.empty()) {
    spdlog::info("configuration: {} ({} SSH host(s), host key policy {})", fc->path, fc->hosts.size(),
                 ssh::policy_name(fc->host_key_policy));
  }
  if (fc->host_key_policy == ssh::HostKeyPolicy::off) {
    spdlog::warn("!!! host_key_policy is OFF: SSH host keys are not verified; anyone on the network path can "
                 "impersonate your hosts. !!!");
  }
  for (const auto& e : fc->hosts) {
    m_hosts.add(ssh::make_ssh_host(ssh_options(e.name, &e, *fc, m_config.kill_grace)));
  }
  std::string default_host = m_config.default_host;
  if (default_host.empty()) {
    if (const char* ssh_host = std::getenv("SSH_HOST"); ssh_host && *ssh_host) {
      default_host = ssh_host;
    }
  }
  if (default_host.empty()) {
    default_host = fc->default_host;
  }
  if (!default_host.empty()) {
    m_hosts.set_default(default_host);
    auto names = m_hosts.names();
    if (std::find(names.begin(), names.end(), default_host) == names.end()) {
      // The default host is an explicit choice (SSH_HOST): no Host block is required.
      m_hosts.add(ssh::make_ssh_host(ssh_options(default_host, nullptr, *fc, m_config.kill_grace)));
    }
  }
  const auto grace = m_config.kill_grace;
  m_hosts.set_factory([fc, grace](const std::string& name) -> std::shared_ptr<exec::Host> {
    if (name.empty() || name == "local" || name[0] == '-' || name.find_first_of(" \t\r\n'\"") != std::string::npos) {
      return nullptr;
    }
    if (!fc->allow_unlisted_hosts && !defined_in_ssh_config(name, *fc)) {
      return nullptr;
    }
    return ssh::make_ssh_host(ssh_options(name, nullptr, *fc, grace));
  });
}

} // namespace smcp::app
