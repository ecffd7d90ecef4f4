#include "mcp-server/app/app.h"

#include "mcp-server/app/config.h"
#include "sandbox/exec/local_host.h"
#include "sandbox/exec/run_process.h"
#include "ssh/ssh_config.h"
#include "ssh/ssh_host.h"
#include "tools/job_resources.h"
#include "tools/profile_runner.h"
#include "tools/tools.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
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

std::optional<std::string> take_secret_env(const std::string& name) {
  const char* value = name.empty() ? nullptr : std::getenv(name.c_str());
  if (!value) {
    return std::nullopt;
  }
  std::string taken = value;
  ::unsetenv(name.c_str());
  return taken;
}

namespace {

[[noreturn]] void state_error(const std::string& dir, const std::string& what) {
  throw std::runtime_error("state directory " + dir + ": " + what);
}

bool trusted_owner(uid_t uid) {
  return uid == 0 || uid == ::geteuid();
}

bool others_can_write(const struct stat& st) {
  return (st.st_mode & (S_IWGRP | S_IWOTH)) != 0;
}

} // namespace

// The state holds job records whose paths and pids the server acts on, and the server keeps
// creating files in it: nobody else may be able to redirect it. Resolved once, here, component by
// component from /: each directory and symbolic link on the way must belong to root or to us, and
// may sit in a directory others can write only if that directory is sticky (like /tmp, where others
// cannot rename or replace our entries). Missing directories are created (0700). The result is the
// real path, used from then on, so re-pointing a link afterwards changes nothing.
std::string secure_state_dir(const std::string& dir) {
  if (dir.empty()) {
    state_error("(empty)", "no path given");
  }
  std::deque<std::string> todo;
  auto push_front_path = [&todo](const std::string& path) {
    std::vector<std::string> parts;
    std::size_t i = 0;
    while (i <= path.size()) {
      std::size_t j = path.find('/', i);
      if (j == std::string::npos) {
        j = path.size();
      }
      if (j > i && path.compare(i, j - i, ".") != 0) {
        parts.push_back(path.substr(i, j - i));
      }
      i = j + 1;
    }
    todo.insert(todo.begin(), parts.begin(), parts.end());
  };
  push_front_path(dir);
  if (dir[0] != '/') {
    std::error_code ec;
    const std::string cwd = std::filesystem::current_path(ec).string();
    if (ec) {
      state_error(dir, "cannot resolve a relative path: " + ec.message());
    }
    push_front_path(cwd);
  }
  std::string real = "/";
  struct stat here {};
  if (::lstat("/", &here) != 0 || !trusted_owner(here.st_uid) || others_can_write(here)) {
    state_error(dir, "/ can be changed by other users");
  }
  int links = 0;
  int creations = 0; // mkdir attempts: bounded, should something keep removing what we create
  while (!todo.empty()) {
    const std::string name = todo.front();
    todo.pop_front();
    if (name == "..") {
      real = std::filesystem::path(real).parent_path().string();
      ::lstat(real.c_str(), &here);
      continue;
    }
    const std::string path = real == "/" ? "/" + name : real + "/" + name;
    // Others who can write the directory holding `name` could replace it, unless the directory is
    // sticky (then only an entry's owner can, and every entry must be root's or ours).
    if (others_can_write(here) && !(here.st_mode & S_ISVTX)) {
      state_error(dir, real + " (holding " + name +
                           ") can be written by other users and has no sticky bit: they could replace " + path +
                           "; use a directory of your own (--state-dir)");
    }
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
      if (errno != ENOENT) {
        state_error(dir, "cannot inspect " + path + ": " + std::strerror(errno));
      }
      if (++creations > 64 || (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST)) {
        state_error(dir, "cannot create " + path + ": " + std::strerror(errno) +
                             " (set --state-dir or SANDBOX_MCP_STATE_DIR)");
      }
      todo.push_front(name); // look again at what is there now
      continue;
    }
    if (!trusted_owner(st.st_uid)) {
      state_error(dir, path + (S_ISLNK(st.st_mode) ? " is a symbolic link owned by" : " belongs to") +
                           " another user (uid " + std::to_string(st.st_uid) +
                           "), who could redirect it; use a directory of your own (--state-dir)");
    }
    if (S_ISLNK(st.st_mode)) {
      if (++links > 40) {
        state_error(dir, "too many symbolic links");
      }
      std::string target(static_cast<std::size_t>(st.st_size > 0 ? st.st_size : 4096) + 1, '\0');
      ssize_t n = ::readlink(path.c_str(), target.data(), target.size());
      if (n < 0 || static_cast<std::size_t>(n) >= target.size()) {
        state_error(dir, "cannot read the symbolic link " + path);
      }
      target.resize(static_cast<std::size_t>(n));
      push_front_path(target);
      if (!target.empty() && target[0] == '/') {
        real = "/";
        ::lstat("/", &here);
      }
      continue;
    }
    if (!S_ISDIR(st.st_mode)) {
      state_error(dir, path + " is not a directory");
    }
    real = path;
    here = st;
  }
  if (here.st_uid != ::geteuid()) {
    state_error(dir, "it belongs to another user (uid " + std::to_string(here.st_uid) +
                         "); use a directory of your own (--state-dir)");
  }
  if (others_can_write(here)) {
    state_error(dir, "it is writable by other users; `chmod go-w " + real + "` or use another --state-dir");
  }
  return real;
}

App::App(AppConfig config) : m_config(std::move(config)) {
  // The config file first: a passphrase it takes from the environment leaves the environment
  // before any host, thread or child exists.
  const std::string config_path = m_config.config_file.empty() ? default_config_path() : m_config.config_file;
  auto file_config = std::make_shared<FileConfig>(load_config(config_path));
  if (!file_config->passphrase.env.empty()) {
    file_config->passphrase.env_value = take_secret_env(file_config->passphrase.env);
  }
  if (m_config.state_dir.empty()) {
    m_config.state_dir = default_state_dir();
  }
  m_config.state_dir = secure_state_dir(m_config.state_dir);
  m_store = state::open_sqlite_store(m_config.state_dir + "/state.db");

  exec::LocalHostOptions local;
  local.jobs_root = m_config.state_dir + "/jobs";
  local.kill_grace = m_config.kill_grace;
  m_hosts.add(exec::make_local_host(local));

  add_ssh_hosts(file_config);
  add_sandbox_manager(*file_config);
  m_profiles = std::make_unique<tools::ProfileRunner>(file_config->profiles);
  spdlog::info("default host: {}; state: {}", m_hosts.default_name(), m_config.state_dir);

  if (m_config.sandbox_cli) {
    return;
  }
  if (m_config.jobs.spill_dir.empty()) {
    m_config.jobs.spill_dir = m_config.state_dir + "/spill";
  }
  m_config.jobs.kill_grace = m_config.kill_grace;
  m_jobs = std::make_unique<tools::JobManager>(m_hosts, *m_store, m_config.jobs);

  m_registry = std::make_shared<mcp::ToolRegistry>();
  m_env =
      std::make_unique<tools::ToolEnv>(tools::ToolEnv{m_hosts, *m_jobs, *m_store, m_sandboxes.get(), m_profiles.get()});
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

void App::add_sandbox_manager(const FileConfig& fc) {
  sandbox::ManagerOptions options = fc.sandbox;
  if (!m_config.repo_base.empty()) {
    options.repo_base = m_config.repo_base;
  }
  if (options.repo_base.empty()) {
    std::error_code ec;
    options.repo_base = std::filesystem::current_path(ec).string();
  }
  std::error_code ec;
  if (auto real = std::filesystem::weakly_canonical(options.repo_base, ec); !ec) {
    options.repo_base = real.string();
  }
  for (const auto& e : fc.hosts) {
    if (!e.repo_base.empty()) {
      options.host_repo_base[e.name] = e.repo_base;
    }
  }
  options.kill_grace = m_config.kill_grace;
  options.forbidden_repo_roots = {fc.profiles.work_root};
  options.ssh_attach = {fc.ssh_program};
  if (!fc.ssh_config.empty()) {
    options.ssh_attach.insert(options.ssh_attach.end(), {"-F", fc.ssh_config});
  }
  options.ssh_attach.push_back("-t");
  m_image = fc.image;
  m_sandboxes = std::make_unique<sandbox::SandboxManager>(
      std::move(options), [this](const std::string& name) { return m_hosts.get(name); });
}

namespace {

// Which names the agent may use as SSH hosts without listing them in the sandbox-mcp config:
// those with a literal `Host NAME` block in the ssh config ssh itself reads (so a typo or a
// made-up name never opens a connection or adds a known_hosts entry).
bool defined_in_ssh_config(const std::string& name, const FileConfig& fc) {
  const std::string home = exec::local_home();
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
  o.shell_env = fc.shell_env;
  if (entry) {
    if (entry->shell_env) {
      o.shell_env = *entry->shell_env;
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

void App::add_ssh_hosts(std::shared_ptr<const FileConfig> fc) {
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
  m_hosts.set_factory([this, fc, grace](const std::string& name) -> std::shared_ptr<exec::Host> {
    if (name.rfind(sandbox::SandboxManager::k_host_prefix, 0) == 0) {
      try {
        return m_sandboxes ? m_sandboxes->host(name) : nullptr;
      } catch (const std::exception& e) {
        spdlog::warn("{}: {}", name, e.what());
        return nullptr;
      }
    }
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
