// The seam between the sandbox manager and the kinds of sandbox: what differs between a container
// on a host and a container in a Slurm job (the checks on the host, starting it, running a command
// inside, reading its state, attaching, removing it, GPUs) is one SandboxBackend each, in its own
// folder (sandbox/container/, sandbox/slurm/). The manager does everything else the same way for
// every kind, and picks the backend from ONE table (backends.cpp): adding a kind of sandbox is a
// folder and a line there.
#pragma once

#include "sandbox/exec/remote_executor.h"
#include "sandbox/exec/script_host.h"
#include "sandbox/gpu/gpus.h"
#include "sandbox/types.h"

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace smcp::sandbox {

// What the manager lends its backends.
class BackendEnv {
public:
  virtual const ManagerOptions& options() const = 0;
  virtual SandboxRegistry& registry() = 0;
  // The executor of a host that can hold sandboxes; throws SandboxError(invalid) for other hosts.
  virtual std::shared_ptr<exec::RemoteExecutor> executor_of(const std::string& host) = 0;
  // podman or docker on `host` (asked once per host); throws SandboxError(missing) naming packages.
  virtual HostRuntime runtime_on(const std::string& host, exec::RemoteExecutor& x) = 0;

protected:
  ~BackendEnv() = default;
};

// One `new` on its way through its steps (SandboxManager::create): what each hands the next.
struct Creation {
  NewRequest request;                      // checked; a backend may complete it (Slurm: gres from gpus)
  std::shared_ptr<exec::RemoteExecutor> x; // the sandbox's host
  HostRuntime rt;
  SandboxRow row;                          // what reserve() stores, then each step's result
  SandboxRegistry::Allocate allocate;      // runs inside reserve()'s transaction (GPUs)
  HostGpus gpu_host;                       // what the GPU probe found
  std::string git_common;                  // the repository's git directory
  std::string objects;                     // the host's object store when the clone shares it, else ""
  std::vector<std::function<void()>> undo; // how to take back each step done, in order
  std::string note;
  SandboxState state; // after start
  std::string node;   // Slurm: where it runs
  void say(const std::string& what) const {
    if (request.progress) {
      request.progress(what);
    }
  }
};

class SandboxBackend {
public:
  virtual ~SandboxBackend() = default;

  // new, before anything is made: the host's tools (container runtime, or Slurm and the wrapper),
  // the GPUs asked for, the image. Sets c.rt, and what the row records (wrapper, gpus) or reserve
  // allocates (c.allocate).
  virtual void check(Creation& c) = 0;
  // new, after the sandbox's clone: runs it (container run / sbatch and the bounded wait), each
  // step's undo pushed onto c.undo right after the step; records the row's container (and job),
  // and sets c.state (c.node, c.note).
  virtual void start(Creation& c) = 0;

  // `RUNTIME ARGS...` run on the sandbox's host for this sandbox: as they are, or through the
  // scheduler (Slurm: srun into the job, then the wrapper).
  virtual std::vector<std::string> runtime_argv(const SandboxRow& row, std::vector<std::string> argv) const = 0;
  // How commands reach the inside of the sandbox from its host's executor; may set `o` (where jobs
  // keep their files).
  virtual std::shared_ptr<exec::RemoteExecutor>
  executor(const SandboxRow& row, std::shared_ptr<exec::RemoteExecutor> host, exec::ScriptHostOptions& o) = 0;
  // ls: the state of each of these ready sandboxes (and its node, and a note): one pass, so that a
  // backend may ask each host once.
  virtual void read_states(const std::vector<SandboxInfo*>& infos) = 0;
  // The argv a human runs on the sandbox's host to reach its tmux.
  virtual std::vector<std::string> attach_argv(const SandboxRow& row) const = 0;
  // The argv prefix running a program inside the running sandbox (starting it first when
  // `may_start` and it is stopped); empty with `why` when it cannot be entered; nullopt when its
  // own container is gone and `may_start` (the manager then reads its files with a one-off one).
  virtual std::optional<std::vector<std::string>> enter(const SandboxRow& row, exec::RemoteExecutor& x, bool may_start,
                                                        std::string& why) = 0;
  // rm: a ready sandbox that never ran (a queued job) was never handed to an agent: no work to keep.
  virtual bool never_ran(const SandboxRow& row, exec::RemoteExecutor& x) = 0;
  // rm: the container (the job and its node) goes; each step tolerates "already gone".
  virtual void remove(const SandboxRow& row, exec::RemoteExecutor& x, RemoveResult& result) = 0;
  // reset: why this sandbox is kept ("" when reset removes it).
  virtual std::string kept_by_reset(const SandboxRow& row) const = 0;
};

// The table of backends (backends.cpp): the first entry that takes a request (a row) serves it.
struct BackendEntry {
  const char* kind;
  std::function<bool(const NewRequest&)> takes_request;
  std::function<bool(const SandboxRow&)> takes_row;
  std::function<std::unique_ptr<SandboxBackend>(BackendEnv&)> make;
};
using BackendTable = std::vector<BackendEntry>;
BackendTable default_backends();

// The GPUs a request asks for (the config's default when it does not say); throws
// SandboxError(invalid, field "gpus").
GpuRequest gpus_asked(const NewRequest& request, const std::string& default_gpus);

} // namespace smcp::sandbox
