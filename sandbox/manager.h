// The sandbox manager: new / ls / rm / attach / reset over the registry and the backends (a
// container on a host, a container in a Slurm job: sandbox/backend.h, picked from one table), on
// any host the server reaches. It drives git, the runtimes, tmux and Slurm only through a host's
// executor (exec::Host::executor()), so a sandbox on an SSH host is the same code; and each sandbox
// is itself a Host (a ScriptHost over a ContainerExecutor) named "sandbox:NAME", so every tool works
// inside it. `new` is a transaction: validate -> check -> reserve -> worktree -> start -> commit,
// undone on failure.
#pragma once

#include "sandbox/backend.h"
#include "sandbox/exec/host.h"
#include "sandbox/types.h"

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace smcp::sandbox {

class SandboxManager final : private BackendEnv {
public:
  using HostLookup = std::function<std::shared_ptr<exec::Host>(const std::string& name)>;
  static constexpr const char* k_host_prefix = "sandbox:";

  // `backends`: the kinds of sandbox, first match first (default_backends(): Slurm, containers).
  SandboxManager(ManagerOptions options, HostLookup hosts, const BackendTable& backends = default_backends());
  ~SandboxManager();

  SandboxInfo create(const NewRequest& request);
  std::vector<SandboxInfo> list(bool with_work = true);
  // Refuses (SandboxError, Kind::has_work) a sandbox with uncommitted changes, untracked files or
  // commits no branch of the repository has, unless `force`: then they are kept under
  // refs/sandbox-rescue/NAME/STAMP/ first (or its directory moved aside when git cannot read it).
  RemoveResult remove(const std::string& name, bool force = false);
  // Fetches the sandbox's branches into refs/remotes/sandbox/NAME/* of its repository and
  // fast-forwards the sandbox's branch there when it can.
  SyncResult sync(const std::string& name);
  // `keys` typed literally into the pane (a "\n" presses Enter), `special` sent as tmux key names
  // (C-c, Up, ...), then the pane is captured after `settle`.
  AttachResult attach(const std::string& name, const std::string& keys, const std::vector<std::string>& special,
                      std::chrono::milliseconds settle);
  // The argv a human runs on this machine to attach (ssh -t HOST ... for a sandbox on an SSH host).
  std::vector<std::string> attach_argv(const std::string& name);
  // Removes every sandbox on `local` its backend does not keep (Slurm jobs), the worktrees
  // directory and the sandbox images; returns one line per thing done.
  std::vector<std::string> reset(const std::vector<std::string>& images, bool force = false);

  // The sandbox as a Host ("sandbox:NAME" or NAME); null when no such sandbox is registered.
  std::shared_ptr<exec::Host> host(const std::string& name);
  // The registry, created on first use (by `new`).
  SandboxRegistry& registry() override;
  // Reads that create nothing: no registry file yet means no sandboxes.
  std::optional<SandboxRow> find(const std::string& name);
  std::vector<SandboxRow> rows();
  const ManagerOptions& options() const override { return m_options; }

private:
  std::shared_ptr<exec::RemoteExecutor> executor_of(const std::string& host) override;
  HostRuntime runtime_on(const std::string& host, exec::RemoteExecutor& x) override;
  SandboxBackend& backend_for(const NewRequest& request) const;
  SandboxBackend& backend_for(const SandboxRow& row) const;
  std::string repo_for(const NewRequest& request) const;
  // Refuses a repository the host must not run git in: one inside a git directory or a sandboxes
  // directory, under a forbidden root, or not the server user's.
  void check_repository(exec::RemoteExecutor& x, const std::string& top, const std::string& common,
                        const std::string& host);
  std::string attach_command(const SandboxRow& row) const;
  std::string registry_path();
  bool registry_exists();
  std::vector<std::string> attach_argv_of(const SandboxRow& row) const;
  // create()'s steps (sandbox/manager_lifecycle.cpp), in order; `c.undo` collects how to take
  // each back.
  NewRequest validate(const NewRequest& request) const;
  void check(Creation& c, SandboxBackend& backend);
  void reserve(Creation& c);
  void make_workspace(Creation& c);
  void commit(Creation& c);
  void undo(Creation& c);
  SandboxInfo created(const Creation& c);
  // sandbox/manager_work.cpp: checks and reads that never trust what the sandbox (or a registry
  // file) says about paths: the id file, the container's label, git inside the sandbox.
  enum class Ownership { ours, nothing_made, not_ours };
  Ownership check_ownership(const SandboxRow& row, exec::RemoteExecutor& x, std::string& why);
  // argv prefix running a program inside the sandbox (starting a stopped container, or a one-off
  // container over its files when its own is gone); empty, with `why`, when there is none.
  std::vector<std::string> inside(const SandboxRow& row, exec::RemoteExecutor& x, bool may_start, std::string& why);
  WorkStatus inspect(exec::RemoteExecutor& x, const std::vector<std::string>& in,
                     std::chrono::milliseconds timeout = std::chrono::seconds(60));
  void count_unmerged(const SandboxRow& row, exec::RemoteExecutor& x, WorkStatus& w, bool fetched = false);
  std::string fetch_work(const SandboxRow& row, exec::RemoteExecutor& x, const std::vector<std::string>& in,
                         const WorkStatus& w);
  std::string fast_forward(const SandboxRow& row, exec::RemoteExecutor& x, std::string& head);
  void forget_refs(const SandboxRow& row, exec::RemoteExecutor& x, const std::string& prefix);
  bool move_refs(const SandboxRow& row, exec::RemoteExecutor& x, const std::string& from, const std::string& to);
  bool copy_host_refs(const SandboxRow& row, exec::RemoteExecutor& x, const std::string& to, const std::string& verb);
  std::string worktrees_dir_of(const SandboxRow& row, exec::RemoteExecutor& x);
  // The sandboxes' directory of the repository at `repo` (any folder of it) on a host; "" when it
  // is not a git repository.
  std::string sandboxes_dir(const std::string& repo, exec::RemoteExecutor& x);

  ManagerOptions m_options;
  HostLookup m_hosts;
  std::vector<std::pair<BackendEntry, std::unique_ptr<SandboxBackend>>> m_backends; // the table, made
  std::mutex m_mutex;
  std::unique_ptr<SandboxRegistry> m_registry;
  std::string m_registry_path;
  std::map<std::string, HostRuntime> m_runtimes;
  std::map<std::string, std::pair<std::string, std::shared_ptr<exec::Host>>> m_sandbox_hosts; // name -> (row key, host)
};

// "sandbox:NAME" -> "NAME"; other names unchanged.
std::string sandbox_of_host(const std::string& host_name);

} // namespace smcp::sandbox
