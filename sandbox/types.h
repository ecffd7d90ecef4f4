// The sandbox manager's vocabulary: its options, what `new` asks for, and what ls / rm / sync /
// attach answer. Shared by the manager (manager.h) and its backends (backend.h).
#pragma once

#include "sandbox/container/runtime.h"
#include "sandbox/registry.h"
#include "sandbox/slurm/slurm.h"
#include "sandbox/workspace.h"

#include <chrono>
#include <functional>
#include <map>
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

// What a sandbox is doing, as `ls` shows it: the kind the manager decides by, and the word its
// backend read (a container's "running" / "exited", a Slurm job's "RUNNING" / "PENDING") that the
// tools and the CLI print as it is.
struct SandboxState {
  enum class Kind {
    running,  // commands can go inside
    starting, // not yet (a queued Slurm job)
    stopped,  // exited, created, paused; a Slurm job that is over
    missing,  // its container is gone
    unknown,  // its host or its scheduler could not be asked
    creating, // half-made: `new` did not finish (or still runs)
    removing,
  };
  Kind kind = Kind::unknown;
  std::string text = "unknown";
  bool running() const { return kind == Kind::running; }
};
SandboxState state_of_phase(Phase phase);

struct SandboxInfo {
  SandboxRow row;
  SandboxState state;
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

// The container runtime of a host, as the manager found it (and caches per host).
struct HostRuntime {
  Runtime runtime = Runtime::podman;
  bool rootless = false;
};

} // namespace smcp::sandbox
