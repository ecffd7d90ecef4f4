// A RemoteExecutor on this machine: runs an exec string with /bin/sh the way sshd runs it with the
// user's login shell, or a command's argv directly (execvp, never through a shell): in a new
// session, stdin fed with the command's input and then closed, stdout and stderr kept apart, exit
// status or signal reported. It is LocalHost's executor (what the sandbox manager drives git,
// podman and tmux with on `local`), and lets ScriptHost's remote scripts be tested without an SSH
// server. Collected output keeps the head of each stream (captured_output.h: 16 MiB, then a note).
// cancel(), and so a run() that times out, ends the command's process group (its session's, as
// the command leads one): SIGTERM, SIGKILL when the group outlives k_kill_grace, then the child is
// reaped; a descendant that left the group (setsid) is not found.
#pragma once

#include "sandbox/exec/remote_executor.h"

#include <atomic>
#include <chrono>

namespace smcp::exec {

constexpr std::chrono::milliseconds k_kill_grace{2000};

class LocalExecutor final : public RemoteExecutor {
public:
  std::shared_ptr<RemoteCall> start(RemoteCommand command) override;
  int calls() const { return m_calls; }

private:
  std::atomic<int> m_calls{0};
};

} // namespace smcp::exec
