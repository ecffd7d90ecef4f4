#include "sandbox/container/container_executor.h"

#include <mutex>

namespace smcp::sandbox {

namespace {

// The call of one command in the container. When it ends the way a vanished container ends things
// (podman's own failure statuses, or a kill), the container is asked whether it still runs: if
// not, the call fails as an unreachable host would, saying what happened, instead of passing
// podman's status off as the command's.
class ContainerCall final : public exec::RemoteCall {
public:
  ContainerCall(std::shared_ptr<exec::RemoteCall> inner, std::shared_ptr<exec::RemoteExecutor> base, Runtime runtime,
                std::string container, std::string host)
      : m_inner(std::move(inner)), m_base(std::move(base)), m_runtime(runtime), m_container(std::move(container)),
        m_host(std::move(host)) {}

  bool wait_until(std::chrono::steady_clock::time_point deadline, std::stop_token stop) override {
    return m_inner->wait_until(deadline, std::move(stop));
  }
  void cancel() override { m_inner->cancel(); }

  exec::RemoteResult result() override {
    exec::RemoteResult r = m_inner->result();
    const int status = r.exit_status.value_or(-1);
    if (r.exit_signal || status == 125 || status == 126 || status == 137 || status == 255) {
      std::lock_guard lock(m_mutex);
      if (!m_checked) {
        m_checked = true;
        m_gone_state = gone_state();
      }
      if (!m_gone_state.empty()) {
        throw exec::HostError(exec::HostError::Kind::unreachable,
                              "the sandbox's container " + m_container + " on " + m_host + " is " + m_gone_state +
                                  ": sandbox_ls shows it, sandbox_rm cleans up, sandbox_new makes a new one");
      }
    }
    return r;
  }

private:
  // Empty while the container runs; else what it is ("not running (exited)", "gone").
  std::string gone_state() {
    exec::RemoteCommand c;
    c.argv = {runtime_name(m_runtime), "container", "inspect", "--format", "{{.State.Status}}", m_container};
    c.what = "inspecting container " + m_container;
    c.retry_safe = true;
    try {
      exec::RemoteResult r = m_base->run(std::move(c), std::chrono::seconds(30));
      std::string state = r.out;
      while (!state.empty() && (state.back() == '\n' || state.back() == ' ')) {
        state.pop_back();
      }
      if (r.exit_status.value_or(1) != 0) {
        return "gone";
      }
      return state == "running" ? std::string() : "not running (" + state + ")";
    } catch (const exec::HostError&) {
      return {}; // cannot tell: keep the command's own result
    }
  }

  std::shared_ptr<exec::RemoteCall> m_inner;
  std::shared_ptr<exec::RemoteExecutor> m_base;
  Runtime m_runtime;
  std::string m_container;
  std::string m_host;
  std::mutex m_mutex;
  bool m_checked = false;
  std::string m_gone_state;
};

} // namespace

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
  return std::make_shared<ContainerCall>(m_base->start(std::move(command)), m_base, m_runtime, m_container, m_host);
}

exec::HostStatus ContainerExecutor::status() const {
  exec::HostStatus st = m_base->status();
  st.kind = "sandbox";
  st.target = std::string(runtime_name(m_runtime)) + " container " + m_container + " on " + m_host;
  return st;
}

} // namespace smcp::sandbox
