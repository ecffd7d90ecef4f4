// What every container a sandbox runs is made of, whichever backend starts it (on its host, or in
// a Slurm job): the runtime of a host, who owns the sandbox's files, the RunSpec of its row, its
// resource limits, the mounts that exist on the host.
#pragma once

#include "sandbox/container/runtime.h"
#include "sandbox/exec/remote_executor.h"
#include "sandbox/types.h"

#include <string>
#include <vector>

namespace smcp::sandbox {

// podman or docker on `host`: `wanted` ("podman" | "docker"), else the first that works; whether
// podman runs rootless. Throws SandboxError(missing) naming the packages.
HostRuntime find_runtime(exec::RemoteExecutor& x, const std::string& host, const std::string& wanted);

// Who must own a sandbox's files on the host for its user inside to write them ("UID:GID"), or ""
// when the files' owner is already that user (rootless podman, docker run by a user).
std::string workspace_owner(exec::RemoteExecutor& x, const HostRuntime& rt, const ContainerOptions& o);

// Which configured mounts a container gets: on a host, the user's tool configs (read-only) and
// every configured mount; in a batch job, only those the config marks "slurm" (the secrets rule).
enum class MountSet { host, batch_job };
// Those of them whose source exists on the host (`~/` is the host user's home).
std::vector<Mount> existing_mounts(exec::RemoteExecutor& x, const ContainerOptions& o, MountSet set);

// The config's container options with this sandbox's image and the request's limits.
ContainerOptions container_options(const ContainerOptions& base, const SandboxRow& row, const NewRequest& request);

// The row's container: its name, repository, worktree, the host's object store (`objects`, "" when
// the clone is self-contained), the id mapping of the host's runtime.
RunSpec run_spec(const SandboxRow& row, const HostRuntime& rt, const std::string& objects, std::vector<Mount> mounts);

// A one-off container over a sandbox's files whose own container is gone (or whose Slurm job is
// over), to read its work: no network, as the agent, small limits; `objects` as in run_spec().
// The argv prefix: the program to run inside follows.
std::vector<std::string> reader_argv(const SandboxRow& row, const ContainerOptions& co, Runtime rt,
                                     const HostRuntime& hr, const std::string& objects);

} // namespace smcp::sandbox
