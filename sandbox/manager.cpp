#include "sandbox/manager.h"

#include "sandbox/container/container_executor.h"
#include "sandbox/exec/script_host.h"
#include "sandbox/host_commands.h"

#include <algorithm>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <sys/stat.h>
#include <unistd.h>

namespace smcp::sandbox {

namespace {

using Kind = SandboxError::Kind;
constexpr auto k_quick = k_quick_step;

} // namespace

std::string sandbox_of_host(const std::string& host_name) {
  const std::string prefix = SandboxManager::k_host_prefix;
  return host_name.rfind(prefix, 0) == 0 ? host_name.substr(prefix.size()) : host_name;
}

SandboxManager::SandboxManager(ManagerOptions options, HostLookup hosts)
    : m_options(std::move(options)), m_hosts(std::move(hosts)) {}

SandboxManager::~SandboxManager() = default;

SandboxRegistry& SandboxManager::registry() {
  if (m_options.repo_base.empty()) {
    throw SandboxError(Kind::invalid, "no repository base: pass --repo_base PATH (or set repo_base in the config)");
  }
  const std::string path = registry_path();
  std::lock_guard lock(m_mutex);
  if (!m_registry) {
    if (const std::string dir = path.substr(0, path.rfind('/'));
        dir.size() > 11 && dir.substr(dir.size() - 11) == "sandbox-mcp") {
      ::mkdir(dir.c_str(), 0700); // the registry's directory in the git directory (EEXIST is fine)
    }
    m_registry = SandboxRegistry::open(path);
  }
  return *m_registry;
}

// In the repository's git directory, where no checkout, merge or sandbox writes (a registry in the
// work tree could be replaced by a branch that adds the file); `.sandbox_db.sqlite` in repo_base
// when repo_base is not in a git repository (then nothing merges into it).
std::string SandboxManager::registry_path() {
  std::lock_guard lock(m_mutex);
  if (m_registry_path.empty()) {
    std::string common;
    try {
      auto x = m_hosts("local") ? m_hosts("local")->executor() : nullptr;
      CommandOutcome o =
          x ? run_argv(*x,
                       {"git", "-C", m_options.repo_base, "rev-parse", "--path-format=absolute", "--git-common-dir"},
                       k_quick)
            : CommandOutcome{};
      common = o.ok() ? trim(o.out) : std::string();
    } catch (const std::exception&) {
      common.clear();
    }
    if (!common.empty() && common[0] == '/') {
      m_registry_path = common + "/sandbox-mcp/sandboxes.sqlite";
    } else if (::access((m_options.repo_base + "/.git").c_str(), F_OK) == 0) {
      // A repository git would not read (not ours: "dubious ownership", or broken): never fall
      // back to a registry in its work tree.
      throw SandboxError(Kind::invalid, m_options.repo_base +
                                            " has a .git that git cannot read here (another user's repository, or "
                                            "broken): sandboxes need a repository of the user running sandbox-mcp");
    } else {
      m_registry_path = m_options.repo_base + "/.sandbox_db.sqlite";
    }
  }
  return m_registry_path;
}

bool SandboxManager::registry_exists() {
  {
    std::lock_guard lock(m_mutex);
    if (m_registry) {
      return true;
    }
  }
  return !m_options.repo_base.empty() && ::access(registry_path().c_str(), F_OK) == 0;
}

std::optional<SandboxRow> SandboxManager::find(const std::string& name) {
  return registry_exists() ? registry().get(name) : std::nullopt;
}

std::vector<SandboxRow> SandboxManager::rows() {
  return registry_exists() ? registry().list() : std::vector<SandboxRow>{};
}

std::shared_ptr<exec::RemoteExecutor> SandboxManager::executor_of(const std::string& host) {
  std::shared_ptr<exec::Host> h;
  try {
    h = m_hosts(host);
  } catch (const std::out_of_range& e) {
    throw SandboxError(Kind::invalid, e.what());
  }
  auto x = h ? h->executor() : nullptr;
  if (!x) {
    throw SandboxError(Kind::invalid, "host '" + host + "' cannot hold sandboxes (it runs no programs for them)");
  }
  return x;
}

SandboxManager::HostRuntime SandboxManager::runtime_on(const std::string& host, exec::RemoteExecutor& x) {
  {
    std::lock_guard lock(m_mutex);
    if (auto it = m_runtimes.find(host); it != m_runtimes.end()) {
      return it->second;
    }
  }
  HostRuntime rt;
  const std::string& wanted = m_options.container.runtime;
  if (wanted == "podman" || wanted == "docker") {
    rt.runtime = parse_runtime(wanted);
    if (CommandOutcome v = run_argv(x, version_argv(rt.runtime), k_quick); v.status == 127) {
      throw SandboxError(Kind::missing,
                         wanted + " is not installed on " + host + " (the config asks for it): " +
                             (wanted == "podman" ? "apt-get install podman" : "apt-get install docker.io"));
    } else if (!v.ok()) { // a docker client without its engine (`docker info` cannot reach it)
      throw SandboxError(Kind::missing,
                         wanted + " does not work on " + host + " (the config asks for it): " + v.message());
    }
  } else if (run_argv(x, version_argv(Runtime::podman), k_quick).ok()) {
    rt.runtime = Runtime::podman;
  } else if (CommandOutcome docker = run_argv(x, version_argv(Runtime::docker), k_quick); docker.ok()) {
    rt.runtime = Runtime::docker;
  } else {
    throw SandboxError(Kind::missing,
                       "neither podman nor docker works on " + host +
                           ": install podman (Debian: `apt-get install podman runc`) or docker (`apt-get install "
                           "docker.io`)" +
                           (docker.status == 127 ? std::string() : " (docker is there but: " + docker.message() + ")"));
  }
  if (rt.runtime == Runtime::podman) {
    rt.rootless = trim(run_argv(x, rootless_argv(rt.runtime), k_quick).out) == "true";
  }
  std::lock_guard lock(m_mutex);
  m_runtimes[host] = rt;
  return rt;
}

std::string SandboxManager::repo_for(const NewRequest& request) const {
  if (!request.repo_base.empty()) {
    return request.repo_base;
  }
  if (request.host == "local") {
    return m_options.repo_base;
  }
  if (auto it = m_options.host_repo_base.find(request.host); it != m_options.host_repo_base.end()) {
    return it->second;
  }
  throw SandboxError(Kind::invalid, "no repository on " + request.host +
                                        ": pass repo_base (sandbox_new) or "
                                        "--host_repo_base (CLI) naming a git repository on " +
                                        request.host +
                                        ", or set \"repo_base\" for that host in the config file's hosts");
}

std::string SandboxManager::attach_command(const SandboxRow& row) const {
  std::string cmd = display_command(attach_argv_of(row));
  return cmd;
}

std::vector<std::string> SandboxManager::attach_argv(const std::string& name) {
  auto row = find(sandbox_of_host(name));
  if (!row) {
    throw SandboxError(Kind::not_found, "no sandbox named '" + name + "'");
  }
  return attach_argv_of(*row);
}

std::vector<std::string> SandboxManager::attach_argv_of(const SandboxRow& row) const {
  std::vector<std::string> argv = sandbox::attach_argv(parse_runtime(row.runtime), row.container_id);
  if (!row.slurm_job_id.empty()) { // a terminal through Slurm itself: srun --pty into the job
    argv = srun_podman_argv(row.slurm_job_id, row.repo_base, {argv.begin() + 1, argv.end()}, /*pty=*/true,
                            m_options.slurm.shipped_wrapper);
  }
  if (row.host != "local") {
    // ssh joins its words for the remote shell: the command goes as one shell-quoted word.
    std::vector<std::string> ssh = m_options.ssh_attach;
    ssh.push_back(row.host);
    ssh.push_back(display_command(argv));
    argv = std::move(ssh);
  }
  return argv;
}

std::shared_ptr<exec::Host> SandboxManager::host(const std::string& host_name) {
  const std::string name = sandbox_of_host(host_name);
  // Checked against the registry each time: the CLI or another server may have removed the
  // sandbox and made a new one by this name since.
  auto row = find(name);
  if (!row || row->container_id.empty()) {
    return nullptr;
  }
  if (row->phase != "ready") {
    throw SandboxError(Kind::failed, "sandbox " + name + " is not ready (" + row->phase +
                                         "): its new is still running, or died half-way (sandbox_rm cleans it up)");
  }
  const std::string key = row->host + "\n" + row->container_id + "\n" + row->slurm_job_id + "\n" + row->runtime;
  {
    std::lock_guard lock(m_mutex);
    if (auto it = m_sandbox_hosts.find(name); it != m_sandbox_hosts.end() && it->second.first == key) {
      return it->second.second;
    }
  }
  exec::ScriptHostOptions o;
  o.name = k_host_prefix + name;
  o.kill_grace = m_options.kill_grace;
  std::shared_ptr<ContainerExecutor> executor;
  if (row->slurm_job_id.empty()) {
    executor = std::make_shared<ContainerExecutor>(executor_of(row->host), parse_runtime(row->runtime),
                                                   row->container_id, row->host);
  } else {
    // Through Slurm itself; job files on the shared filesystem (the worktree), so they outlive the
    // container's own disk and a server restart.
    ContainerExecutor::Target t;
    t.runtime_prefix = srun_podman_argv(row->slurm_job_id, row->repo_base, {}, false,
                                        m_options.slurm.shipped_wrapper); // the wrapper found on the node
    t.container = row->container_id;
    t.where = "in Slurm job " + row->slurm_job_id + " (via " + row->host + ")";
    t.suspect_statuses = {1, 125, 126, 137, 255};
    t.kind = "slurm sandbox";
    executor = std::make_shared<ContainerExecutor>(executor_of(row->host), std::move(t));
    o.jobs_root = std::string(k_workspace) + "/.sandbox-mcp-jobs";
  }
  auto h = exec::make_script_host(std::move(o), std::move(executor));
  std::lock_guard lock(m_mutex);
  m_sandbox_hosts[name] = {key, h};
  return h;
}

std::vector<SandboxInfo> SandboxManager::list(bool with_work) {
  std::vector<SandboxRow> rows = this->rows();
  // One listing per host: every container of ours with its state.
  std::map<std::string, std::map<std::string, std::string>> states;
  std::map<std::string, std::string> host_errors;
  for (const auto& row : rows) {
    if (states.count(row.host) || host_errors.count(row.host) || row.runtime.empty() || !row.slurm_job_id.empty()) {
      continue;
    }
    try {
      auto x = executor_of(row.host);
      CommandOutcome o = run_argv(*x, list_argv(parse_runtime(row.runtime)), k_quick);
      if (!o.ok()) {
        host_errors[row.host] = row.runtime + " ps failed on " + row.host + ": " + o.message();
        continue;
      }
      auto& m = states[row.host];
      for (const auto& line : lines_of(o.out)) {
        auto space = line.find(' ');
        if (space != std::string::npos) {
          // podman prints the status ("Up 3 minutes", "Exited (137) 2 seconds ago"), docker the state.
          std::string state = line.substr(space + 1);
          state = state.substr(0, state.find(' '));
          std::transform(state.begin(), state.end(), state.begin(), [](unsigned char c) { return std::tolower(c); });
          m[line.substr(0, space)] = state == "up" ? "running" : state;
        }
      }
    } catch (const std::exception& e) {
      host_errors[row.host] = e.what();
    }
  }
  std::vector<SandboxInfo> out;
  for (const auto& row : rows) {
    SandboxInfo info;
    info.row = row;
    info.attach_command = row.runtime.empty() ? "" : attach_command(row);
    if (row.phase != "ready") {
      info.state = row.phase;
      info.note = row.phase == "creating" ? "half-made (new did not finish): sandbox_rm cleans it up" : "";
    } else if (!row.slurm_job_id.empty()) {
      try {
        SlurmJobState job = slurm_job_state(*executor_of(row.host), row.slurm_job_id);
        info.state = job.state;
        info.node = job.node;
        if (!job.reason.empty()) {
          info.note = job.state + ": " + job.reason;
        }
        if (!job.active()) {
          info.note += (info.note.empty() ? "" : "; ") + std::string("the job is over: sandbox_rm cleans up");
        }
      } catch (const std::exception& e) {
        info.state = "unknown";
        info.note = e.what();
      }
    } else if (auto err = host_errors.find(row.host); err != host_errors.end()) {
      info.state = "unknown";
      info.note = err->second;
    } else {
      const auto& m = states[row.host];
      auto it = m.find(row.container_id);
      info.state = it == m.end() ? "missing" : it->second;
      if (info.state == "missing") {
        info.note = "its container is gone; sandbox_rm removes its directory and the row (after keeping its work)";
      }
    }
    info.work.why_unknown = "the sandbox is not running";
    if (with_work && row.phase == "ready" && (info.state == "running" || info.state == "RUNNING")) {
      try {
        auto x = executor_of(row.host);
        std::string why;
        std::vector<std::string> in = inside(row, *x, false, why);
        // A hostile sandbox can make its git slow: ls waits for it only so long.
        info.work = in.empty() ? WorkStatus{} : inspect(*x, in, std::chrono::seconds(10));
        count_unmerged(row, *x, info.work);
        if (in.empty()) {
          info.work.why_unknown = why;
        }
      } catch (const std::exception& e) {
        info.work = WorkStatus{};
        info.work.why_unknown = e.what();
      }
    }
    out.push_back(std::move(info));
  }
  return out;
}

AttachResult SandboxManager::attach(const std::string& name, const std::string& keys,
                                    const std::vector<std::string>& special, std::chrono::milliseconds settle) {
  for (const auto& key : special) {
    if (key.empty() || key[0] == '-') {
      throw SandboxError(Kind::invalid, "special_keys: '" + key + "' is not a tmux key name (e.g. C-c, Enter, Up)");
    }
  }
  auto row = find(sandbox_of_host(name));
  if (!row) {
    throw SandboxError(Kind::not_found, "no sandbox named '" + name + "' (see sandbox_ls)");
  }
  auto x = executor_of(row->host);
  const Runtime rt = parse_runtime(row->runtime);
  auto send = [&](const std::vector<std::string>& words, bool literal) {
    CommandOutcome o = run_argv(*x, podman_for(*row, tmux_send_argv(rt, row->container_id, words, literal)), k_quick);
    if (!o.ok()) {
      step_failed("cannot type into sandbox " + row->name + "'s tmux: " + o.message());
    }
  };
  if (!keys.empty()) {
    std::size_t start = 0;
    while (start <= keys.size()) {
      std::size_t nl = keys.find('\n', start);
      std::string part = keys.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
      if (!part.empty()) {
        send({part}, true);
      }
      if (nl == std::string::npos) {
        break;
      }
      send({"Enter"}, false);
      start = nl + 1;
    }
  }
  if (!special.empty()) {
    send(special, false);
  }
  if ((!keys.empty() || !special.empty()) && settle.count() > 0) {
    std::this_thread::sleep_for(settle);
  }
  CommandOutcome o = run_argv(*x, podman_for(*row, tmux_capture_argv(rt, row->container_id)), k_quick);
  if (!o.ok()) {
    step_failed("cannot read sandbox " + row->name + "'s tmux pane: " + o.message() +
                (mentions(o.message(), "no such container") ? " (the container is gone: sandbox_rm cleans up)" : ""));
  }
  // The pane's trailing blank lines say nothing.
  std::string pane = o.out;
  while (!pane.empty() && (pane.back() == '\n' || pane.back() == ' ')) {
    pane.pop_back();
  }
  return {row->name, attach_command(*row), pane + "\n"};
}

} // namespace smcp::sandbox
