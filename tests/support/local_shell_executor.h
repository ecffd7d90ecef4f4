// A RemoteExecutor that runs exec strings with the local /bin/sh the way sshd runs them with the
// user's login shell: in a new session, stdin fed with the command's input and then closed,
// stdout and stderr kept apart, exit status or signal reported. Lets SshHost's remote scripts be
// tested without an SSH server. cancel() closes the pipes (like closing a channel): the process
// is not signalled.
#pragma once

#include "sandbox/exec/remote_executor.h"

#include <atomic>

namespace smcp::testing {

class LocalShellExecutor final : public exec::RemoteExecutor {
public:
  std::shared_ptr<exec::RemoteCall> start(exec::RemoteCommand command) override;
  int calls() const { return m_calls; }

private:
  std::atomic<int> m_calls{0};
};

} // namespace smcp::testing
