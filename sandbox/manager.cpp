#include "sandbox/manager.h"

#include "sandbox/container/run_spec.h"
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

SandboxState state_of_phase(Phase phase) {
  switch (phase) {
  case Phase::ready:
    return {SandboxState::Kind::unknown, "unknown"}; // its backend says
  case Phase::removing:
    return {SandboxState::Kind::removing, phase_name(phase)};
  case Phase::creating:
    break;
  }
  return {SandboxState::Kind::creating, phase_name(phase)};
}

std::string sandbox_of_host(const std::string& host_name) {
  const std::string prefix = SandboxManager::k_host_prefix;
  return host_name.rfind(prefix, 0) == 0 ? host_name.substr(prefix.size()) : host_name;
}

SandboxManager::SandboxManager(ManagerOptions options, HostLookup hosts, const BackendTable& backends)
    : m_options(std::move(options)), m_hosts(std::move(hosts)) {
  for (const auto& entry : backends) {
    m_backends.emplace_back(entry, entry.make(*this));
  }
}

SandboxBackend& SandboxManager::backend_for(const NewRequest& request) const {
  for (const auto& [entry, backend] : m_backends) {
    if (entry.takes_request(request)) {
      return *backend;
    }
  }
  throw SandboxError(Kind::invalid, "no kind of sandbox takes this request");
}

SandboxBackend& SandboxManager::backend_for(const SandboxRow& row) const {
  for (const auto& [entry, backend] : m_backends) {
    if (entry.takes_row(row)) {
      return *backend;
    }
  }
  throw SandboxError(Kind::failed, "sandbox " + row.name + ": no kind of sandbox knows its registry row");
}

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

HostRuntime SandboxManager::runtime_on(const std::string& host, exec::RemoteExecutor& x) {
  {
    std::lock_guard lock(m_mutex);
    if (auto it = m_runtimes.find(host); it != m_runtimes.end()) {
      return it->second;
    }
  }
  const HostRuntime rt = find_runtime(x, host, m_options.container.runtime);
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
  std::vector<std::string> argv = backend_for(row).attach_argv(row);
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
  if (row->phase != Phase::ready) {
    throw SandboxError(Kind::failed, "sandbox " + name + " is not ready (" + phase_name(row->phase) +
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
  auto executor = backend_for(*row).executor(*row, executor_of(row->host), o);
  auto h = exec::make_script_host(std::move(o), std::move(executor));
  std::lock_guard lock(m_mutex);
  m_sandbox_hosts[name] = {key, h};
  return h;
}

std::vector<SandboxInfo> SandboxManager::list(bool with_work) {
  std::vector<SandboxRow> rows = this->rows();
  std::vector<SandboxInfo> out(rows.size());
  // The ready ones by backend: each reads its states in one pass (one listing per host).
  std::vector<std::pair<SandboxBackend*, std::vector<SandboxInfo*>>> ready;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    SandboxInfo& info = out[i];
    const SandboxRow& row = rows[i];
    info.row = row;
    info.attach_command = row.runtime.empty() ? "" : attach_command(row);
    if (row.phase != Phase::ready) {
      info.state = state_of_phase(row.phase);
      info.note = row.phase == Phase::creating ? "half-made (new did not finish): sandbox_rm cleans it up" : "";
      continue;
    }
    SandboxBackend* backend = &backend_for(row);
    auto group = std::find_if(ready.begin(), ready.end(), [&](const auto& g) { return g.first == backend; });
    if (group == ready.end()) {
      group = ready.insert(ready.end(), {backend, {}});
    }
    group->second.push_back(&info);
  }
  for (auto& [backend, infos] : ready) {
    backend->read_states(infos);
  }
  for (SandboxInfo& info : out) {
    const SandboxRow& row = info.row;
    info.work.why_unknown = "the sandbox is not running";
    if (with_work && row.phase == Phase::ready && info.state.running()) {
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
  SandboxBackend& backend = backend_for(*row);
  auto send = [&](const std::vector<std::string>& words, bool literal) {
    CommandOutcome o =
        run_argv(*x, backend.runtime_argv(*row, tmux_send_argv(rt, row->container_id, words, literal)), k_quick);
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
  CommandOutcome o = run_argv(*x, backend.runtime_argv(*row, tmux_capture_argv(rt, row->container_id)), k_quick);
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
