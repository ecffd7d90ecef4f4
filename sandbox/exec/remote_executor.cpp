#include "sandbox/exec/remote_executor.h"

#include "sandbox/exec/quote.h"

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

void argv_to_exec(RemoteCommand& command) {
  if (command.argv.empty()) {
    return;
  }
  command.exec.clear();
  for (const auto& word : command.argv) {
    if (contains_nul(word)) {
      throw HostError(HostError::Kind::invalid, command.what + ": an argument contains a NUL byte");
    }
    command.exec += (command.exec.empty() ? "" : " ") + sh_quote(word);
  }
  command.argv.clear();
}

} // namespace smcp::exec
