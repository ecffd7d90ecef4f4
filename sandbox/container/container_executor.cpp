#include "sandbox/container/container_executor.h"

namespace smcp::sandbox {

ContainerExecutor::ContainerExecutor(std::shared_ptr<exec::RemoteExecutor> base, Runtime runtime, std::string container,
                                     std::string host)
    : m_base(std::move(base)), m_runtime(runtime), m_container(std::move(container)), m_host(std::move(host)) {}

std::shared_ptr<exec::RemoteCall> ContainerExecutor::start(exec::RemoteCommand command) {
  std::vector<std::string> inner = command.argv;
  if (inner.empty()) {
    inner = {"sh", "-c", command.exec};
  }
  command.argv = exec_argv(m_runtime, m_container, inner);
  command.exec.clear();
  return m_base->start(std::move(command));
}

exec::HostStatus ContainerExecutor::status() const {
  exec::HostStatus st = m_base->status();
  st.kind = "sandbox";
  st.target = std::string(runtime_name(m_runtime)) + " container " + m_container + " on " + m_host;
  return st;
}

} // namespace smcp::sandbox
