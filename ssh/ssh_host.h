// An SSH host: exec::Host over a pool of libssh2 sessions. Commands, durable jobs, kills and file
// windows are small programs (ssh/remote_scripts.h) run as exec channels; the alias is resolved
// with `ssh -G` on first use, so ~/.ssh/config applies exactly as it does for `ssh ALIAS`.
#pragma once

#include "sandbox/exec.h"
#include "ssh/host_status.h"
#include "ssh/pool.h"
#include "ssh/remote_executor.h"
#include "ssh/ssh_config.h"

#include <chrono>
#include <memory>
#include <string>

namespace smcp::ssh {

struct SshHostOptions {
  std::string name; // the alias the agent uses (and `ssh -G` resolves)
  ResolveOptions resolve;
  HostKeyPolicy host_key_policy = HostKeyPolicy::accept_new;
  PassphraseSource passphrase;
  PoolLimits limits;
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

// The host resolves its alias and connects lazily, on the first call.
std::shared_ptr<exec::Host> make_ssh_host(SshHostOptions options);

// An SshHost over any executor (tests run the remote scripts with a local shell this way).
std::shared_ptr<exec::Host> make_ssh_host(SshHostOptions options, std::shared_ptr<RemoteExecutor> executor);

} // namespace smcp::ssh
