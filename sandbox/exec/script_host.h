// A host driven by small programs (sandbox/exec/remote_scripts.h) sent over any RemoteExecutor: a
// foreground run under a supervisor that reports how the command ended, durable jobs in a per-job
// directory, job reads by offset, verified kills of a whole tree and file windows cut on the host.
// Over SSH the executor is a pool of libssh2 sessions (ssh/); anything else that can run `sh -s`
// somewhere (a container, a Slurm step) gets the same behaviour by providing an executor.
#pragma once

#include "sandbox/exec/host.h"
#include "sandbox/exec/remote_executor.h"

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace smcp::exec {

struct ScriptHostOptions {
  std::string name;      // the name the agent uses
  std::string jobs_root; // on the host; empty: ~/.local/state/sandbox-mcp/jobs
  std::chrono::milliseconds kill_grace{3000};
  std::uint64_t job_output_cap = 1ull << 30;             // as LocalHostOptions (perl supervisor only)
  std::uint64_t count_lines_below = 64ull * 1024 * 1024; // as LocalHostOptions
  std::chrono::milliseconds script_timeout{120000};      // reads, probes and job starts
  // How command ends are observed: perl when the host has it (exact), else a POSIX sh (a status
  // above 128 is reported as a signal). Tests force one or the other.
  enum class Supervisor { automatic, perl, shell };
  Supervisor supervisor = Supervisor::automatic;
  // bash sources ~/.bashrc for commands started by sshd. The login shell does it once; the
  // command's own `bash -c` does it again (so functions it defines, e.g. `conda activate` or
  // `module`, work as with `ssh host cmd`). skip_command_bashrc: only the login shell's run, so
  // exported variables still apply but functions do not; halves the cost on hosts whose
  // ~/.bashrc is slow.
  bool skip_command_bashrc = false;
};

std::shared_ptr<Host> make_script_host(ScriptHostOptions options, std::shared_ptr<RemoteExecutor> executor);

} // namespace smcp::exec
