// The sandbox manager: new / ls / rm / attach / reset over the registry and the container backend,
// on any host the server reaches. It drives git, podman|docker and tmux only through a host's
// executor (exec::Host::executor()), so a sandbox on an SSH host is the same code; and each sandbox
// is itself a Host (a ScriptHost over a ContainerExecutor) named "sandbox:NAME", so every tool works
// inside it. `new` is a transaction: worktree -> container -> tmux -> row, undone on failure.
#pragma once

#include "sandbox/container/runtime.h"
#include "sandbox/exec/host.h"
#include "sandbox/registry.h"
#include "sandbox/slurm/slurm.h"
#include "sandbox/workspace.h"

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace smcp::sandbox {

struct ManagerOptions {
  std::string repo_base; // on this machine: the registry lives here; local sandboxes' repository
  std::map<std::string, std::string> host_repo_base; // per SSH host: the repository there
  ContainerOptions container;
  // Where the sandboxes' clones go: empty (the default) is the repository's git directory
  // (GIT_COMMON_DIR/sandbox-mcp/sandboxes), where no checkout or merge writes; else a directory
  // relative to the work tree (the original manager's ".sandboxes": then a branch that holds files
  // under it writes into the sandboxes when it is checked out).
  std::string worktrees_dir;
  std::chrono::milliseconds step_timeout{300000};
  std::chrono::milliseconds kill_grace{3000}; // for the sandbox hosts' jobs
  SlurmOptions slurm;
  // How a human reaches an SSH host's sandbox: `ssh_attach... HOST podman exec -it ...`.
  std::vector<std::string> ssh_attach = {"ssh", "-t"};
  // GPUs (sandbox/gpu/gpus.h): what a sandbox gets when it does not say, and the CDI device kind.
  std::string default_gpus = "none";
  std::string cdi_kind = "nvidia.com/gpu";
  // Directories no sandbox's repository may be in (the profiles' work root: a confined command
  // writes there, and the host runs git in a sandbox's repository).
  std::vector<std::string> forbidden_repo_roots;
};

struct NewRequest {
  std::string name; // empty: cnt_N
  std::string branch = "main";
  bool ccr = false;
  bool slurm = false;
  std::string host = "local";
  std::string image;     // empty: the configured one
  std::string repo_base; // empty: the host's configured repository
  // Resource limits for this sandbox; empty / 0: the config's.
  std::string cpus;
  std::string memory;
  long pids = 0;
  // Slurm: per-sandbox job options; empty: the config's.
  std::string partition;
  std::string time_limit;
  std::string gres;
  // "all" | "none" | "N" | "I,J" (empty: the config's); shared: may use GPUs other sandboxes share.
  std::string gpus;
  bool gpu_shared = false;
  std::function<void(const std::string&)> progress;
};

struct SandboxInfo {
  SandboxRow row;
  std::string state; // running | exited | created | ... | missing | creating (half-made)
  std::string attach_command;
  std::string note;
  std::string node; // Slurm: where the job runs (or ran)
  WorkStatus work;  // uncommitted and unmerged work (read inside a running sandbox; else unknown)
};

struct RemoveResult {
  std::string name;
  bool removed = false;
  std::vector<std::string> notes; // what was already gone, what could not be removed
  WorkStatus work;                // what the sandbox held when it was removed
  std::string rescued;            // force: where its work was kept (a ref prefix, or a directory)
};

// What `sync` brought from a sandbox to its repository.
struct SyncResult {
  std::string name;
  std::string branch;
  std::string branch_head;       // the host branch's commit after the sync ("" when not moved)
  std::string note;              // why the branch was not fast-forwarded, when it was not
  std::vector<std::string> refs; // "SHA REF" of the sandbox's refs on the host
  WorkStatus work;
};

struct AttachResult {
  std::string name;
  std::string attach_command;
  std::string pane;
};

class SandboxManager {
public:
  using HostLookup = std::function<std::shared_ptr<exec::Host>(const std::string& name)>;
  static constexpr const char* k_host_prefix = "sandbox:";

  SandboxManager(ManagerOptions options, HostLookup hosts);
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
  // Removes every sandbox on `local` that is not a Slurm job, the worktrees directory and the
  // sandbox images; returns one line per thing done.
  std::vector<std::string> reset(const std::vector<std::string>& images, bool force = false);

  // The sandbox as a Host ("sandbox:NAME" or NAME); null when no such sandbox is registered.
  std::shared_ptr<exec::Host> host(const std::string& name);
  // The registry, created on first use (by `new`).
  SandboxRegistry& registry();
  // Reads that create nothing: no registry file yet means no sandboxes.
  std::optional<SandboxRow> find(const std::string& name);
  std::vector<SandboxRow> rows();
  const ManagerOptions& options() const { return m_options; }

private:
  struct HostRuntime {
    Runtime runtime = Runtime::podman;
    bool rootless = false;
  };
  std::shared_ptr<exec::RemoteExecutor> executor_of(const std::string& host);
  HostRuntime runtime_on(const std::string& host, exec::RemoteExecutor& x);
  std::string repo_for(const NewRequest& request) const;
  // Refuses a repository the host must not run git in: one inside a git directory or a sandboxes
  // directory, under a forbidden root, or not the server user's.
  void check_repository(exec::RemoteExecutor& x, const std::string& top, const std::string& common,
                        const std::string& host);
  std::string attach_command(const SandboxRow& row) const;
  std::string registry_path();
  bool registry_exists();
  std::vector<std::string> attach_argv_of(const SandboxRow& row) const;
  // The steps of create() after the row is reserved; `undo` collects how to take each back.
  bool make_workspace(SandboxRow& row, exec::RemoteExecutor& x, const HostRuntime& rt, const std::string& git_common,
                      std::vector<std::function<void()>>& undo, std::string& note);
  RunSpec run_spec(const SandboxRow& row, const NewRequest& request, exec::RemoteExecutor& x, const HostRuntime& rt,
                   const std::string& objects);
  ContainerOptions container_options(const SandboxRow& row, const NewRequest& request) const;
  void start_container(SandboxRow& row, const NewRequest& request, exec::RemoteExecutor& x, const HostRuntime& rt,
                       RunSpec& spec, std::vector<std::function<void()>>& undo);
  // Slurm (sandbox/slurm/slurm_lifecycle.cpp): the tools and the wrapper (its path), the job.
  std::string check_slurm(exec::RemoteExecutor& x, const std::string& host, const std::string& repo);
  SlurmJobState submit(SandboxRow& row, const NewRequest& request, exec::RemoteExecutor& x, const HostRuntime& rt,
                       RunSpec& spec, std::vector<std::function<void()>>& undo, std::string& note);
  void remove_slurm(const SandboxRow& row, exec::RemoteExecutor& x, RemoveResult& result);
  // `podman ARGS` for this sandbox on its host: as is, or through srun and the wrapper (Slurm).
  std::vector<std::string> podman_for(const SandboxRow& row, std::vector<std::string> runtime_argv) const;
  std::vector<Mount> existing_mounts(exec::RemoteExecutor& x, bool slurm);
  std::string unstick_podman(exec::RemoteExecutor& x, const std::string& container);
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
  std::mutex m_mutex;
  std::unique_ptr<SandboxRegistry> m_registry;
  std::string m_registry_path;
  std::map<std::string, HostRuntime> m_runtimes;
  std::map<std::string, std::pair<std::string, std::shared_ptr<exec::Host>>> m_sandbox_hosts; // name -> (row key, host)
};

// "sandbox:NAME" -> "NAME"; other names unchanged.
std::string sandbox_of_host(const std::string& host_name);

} // namespace smcp::sandbox
