// A RemoteExecutor that records every command it is given and answers from a script: the latest
// rule whose words all appear, in order, at the start of the argv decides the outcome (default:
// exit 0, no output). With RecordingHost (a FakeHost whose executor() is one), the sandbox manager's
// command lines are tested without podman, docker, git or tmux.
#pragma once

#include "sandbox/exec/remote_executor.h"
#include "tests/support/fake_host.h"

#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace smcp::testing {

class RecordingExecutor final : public exec::RemoteExecutor {
public:
  struct Rule {
    std::vector<std::string> prefix;
    int status = 0;
    std::string out;
    std::string err;
  };
  struct Recorded {
    std::vector<std::string> argv;
    std::string exec;
    std::string input;
  };

  void answer(std::vector<std::string> prefix, int status, std::string out = {}, std::string err = {});
  std::shared_ptr<exec::RemoteCall> start(exec::RemoteCommand command) override;

  std::vector<Recorded> calls() const;
  // git commands run without core.hooksPath=/dev/null and core.fsmonitor=false.
  int unprotected_git() const { return m_unprotected_git; }
  // The recorded argvs starting with `prefix`.
  std::vector<std::vector<std::string>> matching(const std::vector<std::string>& prefix) const;

private:
  mutable std::mutex m_mutex;
  std::vector<Rule> m_rules;
  std::vector<Recorded> m_calls;
  int m_unprotected_git = 0;
};

class RecordingHost final : public FakeHost {
public:
  explicit RecordingHost(std::string name = "local")
      : FakeHost(std::move(name)), recorder(std::make_shared<RecordingExecutor>()) {}
  std::shared_ptr<exec::RemoteExecutor> executor() override { return recorder; }
  std::shared_ptr<RecordingExecutor> recorder;
};

} // namespace smcp::testing
