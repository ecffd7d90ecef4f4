// A RemoteExecutor into a container: each command becomes `podman|docker exec -i C sh -c EXEC` (or
// `exec -i C ARGV...`) run by the executor of the container's host, local or SSH. A ScriptHost over
// it is the sandbox as a Host: remote_bash, jobs, kills and file reads work inside unchanged.
#pragma once

#include "sandbox/container/runtime.h"
#include "sandbox/exec/remote_executor.h"

#include <memory>
#include <string>
#include <vector>

namespace smcp::sandbox {

class ContainerExecutor final : public exec::RemoteExecutor {
public:
  // How `podman ARGS` (or docker) is run for this container on its host: {"podman"}, or for a
  // Slurm sandbox {"srun", "--jobid=J", "--overlap", ..., "podman-srun", "podman"}.
  struct Target {
    std::vector<std::string> runtime_prefix;
    std::string container;
    std::string where; // for messages: "on local", "in Slurm job 12 (via login1)"
    // Exit statuses after which the container is asked whether it still runs (the runtime's own
    // failures: 125, 126, 137, 255; srun's and docker exec's: 1).
    std::vector<int> suspect_statuses = {125, 126, 137, 255};
    // After a kill (137, a signal) the container is asked again this many times, 250 ms apart,
    // while it still says "running": docker's exec can report the kill before its engine has
    // marked the container exited.
    int kill_rechecks = 0;
    std::string kind = "sandbox"; // for remote_hosts
  };
  ContainerExecutor(std::shared_ptr<exec::RemoteExecutor> base, Target target);
  ContainerExecutor(std::shared_ptr<exec::RemoteExecutor> base, Runtime runtime, std::string container,
                    const std::string& host);
  std::shared_ptr<exec::RemoteCall> start(exec::RemoteCommand command) override;
  exec::HostStatus status() const override;

private:
  std::shared_ptr<exec::RemoteExecutor> m_base;
  std::shared_ptr<const Target> m_target;
};

} // namespace smcp::sandbox
