// A RemoteExecutor into a container: each command becomes `podman|docker exec -i C sh -c EXEC` (or
// `exec -i C ARGV...`) run by the executor of the container's host, local or SSH. A ScriptHost over
// it is the sandbox as a Host: remote_bash, jobs, kills and file reads work inside unchanged.
#pragma once

#include "sandbox/container/runtime.h"
#include "sandbox/exec/remote_executor.h"

#include <memory>
#include <string>

namespace smcp::sandbox {

class ContainerExecutor final : public exec::RemoteExecutor {
public:
  ContainerExecutor(std::shared_ptr<exec::RemoteExecutor> base, Runtime runtime, std::string container,
                    std::string host);
  std::shared_ptr<exec::RemoteCall> start(exec::RemoteCommand command) override;
  exec::HostStatus status() const override;

private:
  std::shared_ptr<exec::RemoteExecutor> m_base;
  Runtime m_runtime;
  std::string m_container;
  std::string m_host;
};

} // namespace smcp::sandbox
