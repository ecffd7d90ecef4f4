#include "sandbox/container/container_executor.h"

#include <algorithm>
#include <mutex>
#include <thread>

namespace smcp::sandbox {

namespace {

// The call of one command in the container. When it ends the way a vanished container ends things
// (podman's own failure statuses, or a kill), the container is asked whether it still runs: if
// not, the call fails as an unreachable host would, saying what happened, instead of passing
// podman's status off as the command's.
class ContainerCall final : public exec::RemoteCall {
public:
  ContainerCall(std::shared_ptr<exec::RemoteCall> inner, std::shared_ptr<exec::RemoteExecutor> base,
                std::shared_ptr<const ContainerExecutor::Target> target)
      : m_inner(std::move(inner)), m_base(std::move(base)), m_target(std::move(target)) {}

  bool wait_until(std::chrono::steady_clock::time_point deadline, std::stop_token stop) override {
    return m_inner->wait_until(deadline, std::move(stop));
  }
  void cancel() override { m_inner->cancel(); }

  exec::RemoteResult result() override {
    exec::RemoteResult r = m_inner->result();
    const int status = r.exit_status.value_or(-1);
    const auto& suspect = m_target->suspect_statuses;
    if (r.exit_signal || std::find(suspect.begin(), suspect.end(), status) != suspect.end()) {
      std::lock_guard lock(m_mutex);
      if (!m_checked) {
        m_checked = true;
        m_gone_state = gone_state();
        const bool killed = r.exit_signal || status == 137;
        for (int i = 0; killed && m_gone_state.empty() && i < m_target->kill_rechecks; ++i) {
          std::this_thread::sleep_for(std::chrono::milliseconds(250));
          m_gone_state = gone_state();
        }
      }
      if (!m_gone_state.empty()) {
        throw exec::HostError(exec::HostError::Kind::unreachable,
                              "the sandbox's container " + m_target->container + " " + m_target->where + " is " +
                                  m_gone_state +
                                  ": sandbox_ls shows it, sandbox_rm cleans up, sandbox_new makes a new one");
      }
    }
    return r;
  }

private:
  // Empty while the container runs; else what it is ("not running (exited)", "gone").
  std::string gone_state() {
    exec::RemoteCommand c;
    c.argv = m_target->runtime_prefix;
    for (const char* word : {"container", "inspect", "--format", "{{.State.Status}}"}) {
      c.argv.push_back(word);
    }
    c.argv.push_back(m_target->container);
    c.what = "inspecting container " + m_target->container;
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
  std::shared_ptr<const ContainerExecutor::Target> m_target;
  std::mutex m_mutex;
  bool m_checked = false;
  std::string m_gone_state;
};

} // namespace

ContainerExecutor::ContainerExecutor(std::shared_ptr<exec::RemoteExecutor> base, Target target)
    : m_base(std::move(base)), m_target(std::make_shared<const Target>(std::move(target))) {}

ContainerExecutor::ContainerExecutor(std::shared_ptr<exec::RemoteExecutor> base, Runtime runtime, std::string container,
                                     const std::string& host)
    : ContainerExecutor(std::move(base), Target{{runtime_name(runtime)},
                                                std::move(container),
                                                "on " + host,
                                                // docker's client exits 1 when the engine refuses an
                                                // exec ("No such container", "is not running").
                                                runtime == Runtime::docker ? std::vector<int>{1, 125, 126, 137, 255}
                                                                           : std::vector<int>{125, 126, 137, 255},
                                                // seen: exec 137 while inspect still said running
                                                runtime == Runtime::docker ? 4 : 0}) {}

std::shared_ptr<exec::RemoteCall> ContainerExecutor::start(exec::RemoteCommand command) {
  std::vector<std::string> argv = m_target->runtime_prefix;
  for (const char* word : {"exec", "-i"}) {
    argv.push_back(word);
  }
  argv.push_back(m_target->container);
  if (command.argv.empty()) {
    argv.insert(argv.end(), {"sh", "-c", command.exec});
  } else {
    argv.insert(argv.end(), command.argv.begin(), command.argv.end());
  }
  command.argv = std::move(argv);
  command.exec.clear();
  return std::make_shared<ContainerCall>(m_base->start(std::move(command)), m_base, m_target);
}

exec::HostStatus ContainerExecutor::status() const {
  exec::HostStatus st = m_base->status();
  st.kind = m_target->kind;
  st.target = "container " + m_target->container + " " + m_target->where;
  return st;
}

} // namespace smcp::sandbox
