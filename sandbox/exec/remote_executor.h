// The seam between what ScriptHost means (scripts that run, read and kill things on a host) and
// how the bytes travel. ssh::SshPool implements it over libssh2 sessions; any other way to run
// `sh -s` somewhere (`podman exec -i C`, `srun --overlap`) can too. Tests use a fake that runs the
// same exec strings with a local /bin/sh, so the remote scripts are tested without an SSH server.
#pragma once

#include "sandbox/exec/host.h"
#include "sandbox/exec/host_status.h"

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

namespace smcp::exec {

struct RemoteCommand {
  std::string exec;  // the exec request: run by the remote user's login shell
  std::string input; // written to the command's stdin, then EOF
  std::string what;  // for error messages, e.g. "remote_bash `make -j8`"
  // The command may be run again when the connection drops before it ends (reads, probes, kills).
  // Commands that were never sent are always re-queued, whatever this says.
  bool retry_safe = false;
  // Streaming output, called on the executor's thread. When empty, output is collected into
  // RemoteResult::out / err instead.
  std::function<void(exec::Stream, std::string_view)> on_output;
  // Or a program and its arguments, run as they are: locally with execvp (no shell), over SSH as
  // the words quoted one by one (the protocol carries one string). Takes precedence over `exec`.
  std::vector<std::string> argv;
  // Or, when set, no command at all: a stream to this Unix socket on the host (an SSH
  // direct-streamlocal channel); `input` is written to it and what comes back is Stream::out; the
  // call ends when the other end closes. Executors that cannot open one fail the call.
  std::string stream_socket;
  // Do not end the input after `input` (the remote program then sees its stdin end only when the
  // call is cancelled or the connection drops): for a long-lived helper that exits with it.
  bool keep_input_open = false;
  // Long-lived and idle: does not keep its session open when nothing else runs there (the pool
  // closes idle sessions; the call then ends).
  bool background = false;
};

struct RemoteResult {
  std::optional<int> exit_status;
  std::optional<int> exit_signal; // the signal that ended the command, as reported by the server
  std::string out;
  std::string err;
};

// For executors that carry one string run by a shell (SSH, the SSH helper): `argv`, when set,
// becomes `exec` with each word quoted on its own (and is cleared). Throws HostError (invalid) for
// a NUL byte in a word.
void argv_to_exec(RemoteCommand& command);

class RemoteCall {
public:
  virtual ~RemoteCall() = default;
  // Waits until the call ended, `deadline` passed or `stop` was requested; true when it ended.
  virtual bool wait_until(std::chrono::steady_clock::time_point deadline, std::stop_token stop = {}) = 0;
  // Closes the channel (the remote process is not signalled by this); the call then ends.
  virtual void cancel() = 0;
  // After the call ended: its result, or the exec::HostError that ended it.
  virtual RemoteResult result() = 0;
  // Appends `data` to the input of a call started with keep_input_open (written when the channel
  // takes it; from any thread, also from its own on_output). False when this executor cannot.
  virtual bool write(const std::string& /*data*/) { return false; }
  // The call reached the host: its channel is open (a stream connected, a command started), as
  // opposed to waiting in a queue or for a session. Executors without such a wait say true.
  virtual bool reached() const { return true; }
};

class RemoteExecutor {
public:
  virtual ~RemoteExecutor() = default;
  virtual std::shared_ptr<RemoteCall> start(RemoteCommand command) = 0;

  // The state of the way there, for remote_hosts (a connection's sessions and errors); the
  // default says nothing beyond "connected".
  virtual HostStatus status() const { return {}; }

  // Takes the user's shell environment again on the next call (remote_hosts {refresh_env}); what
  // it did, for the tool's answer. The default: nothing is kept, nothing to refresh.
  virtual std::string refresh_environment() { return "nothing to refresh: this host keeps no shell snapshot"; }

  // Starts `command` and waits for its result; throws exec::HostError (io) after `timeout`.
  RemoteResult run(RemoteCommand command, std::chrono::milliseconds timeout);
};

} // namespace smcp::exec
