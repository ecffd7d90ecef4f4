#include "sandbox/exec/remote_executor.h"

namespace smcp::exec {

RemoteResult RemoteExecutor::run(RemoteCommand command, std::chrono::milliseconds timeout) {
  std::string what = command.what;
  auto call = start(std::move(command));
  if (!call->wait_until(std::chrono::steady_clock::now() + timeout)) {
    call->cancel();
    call->wait_until(std::chrono::steady_clock::now() + std::chrono::seconds(5));
    throw exec::HostError(exec::HostError::Kind::io,
                          what + " did not finish within " + std::to_string(timeout.count() / 1000) + " s");
  }
  return call->result();
}

} // namespace smcp::exec
