#include "tests/support/recording_executor.h"

namespace smcp::testing {

namespace {

bool starts_with(const std::vector<std::string>& argv, const std::vector<std::string>& prefix) {
  if (prefix.size() > argv.size()) {
    return false;
  }
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    if (argv[i] != prefix[i]) {
      return false;
    }
  }
  return true;
}

class DoneCall final : public exec::RemoteCall {
public:
  explicit DoneCall(exec::RemoteResult r) : m_result(std::move(r)) {}
  bool wait_until(std::chrono::steady_clock::time_point, std::stop_token) override { return true; }
  void cancel() override {}
  exec::RemoteResult result() override { return m_result; }

private:
  exec::RemoteResult m_result;
};

} // namespace

void RecordingExecutor::answer(std::vector<std::string> prefix, int status, std::string out, std::string err) {
  std::lock_guard lock(m_mutex);
  m_rules.push_back({std::move(prefix), status, std::move(out), std::move(err)});
}

std::shared_ptr<exec::RemoteCall> RecordingExecutor::start(exec::RemoteCommand command) {
  std::lock_guard lock(m_mutex);
  // git's safety switches (sandbox/host_commands.cpp) are counted, then left out, so that rules and
  // assertions read `git -C REPO ...`.
  const std::vector<std::string> safety = {"git", "-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false"};
  if (!command.argv.empty() && command.argv[0] == "git") {
    if (starts_with(command.argv, safety)) {
      command.argv.erase(command.argv.begin() + 1, command.argv.begin() + 5);
    } else {
      ++m_unprotected_git;
    }
  }
  m_calls.push_back({command.argv, command.exec, command.input});
  exec::RemoteResult r;
  r.exit_status = 0;
  for (auto it = m_rules.rbegin(); it != m_rules.rend(); ++it) { // the latest answer wins
    const Rule& rule = *it;
    if (starts_with(command.argv, rule.prefix)) {
      r.exit_status = rule.status;
      r.out = rule.out;
      r.err = rule.err;
      break;
    }
  }
  return std::make_shared<DoneCall>(std::move(r));
}

std::vector<RecordingExecutor::Recorded> RecordingExecutor::calls() const {
  std::lock_guard lock(m_mutex);
  return m_calls;
}

std::vector<std::vector<std::string>> RecordingExecutor::matching(const std::vector<std::string>& prefix) const {
  std::lock_guard lock(m_mutex);
  std::vector<std::vector<std::string>> out;
  for (const auto& c : m_calls) {
    if (starts_with(c.argv, prefix)) {
      out.push_back(c.argv);
    }
  }
  return out;
}

} // namespace smcp::testing
