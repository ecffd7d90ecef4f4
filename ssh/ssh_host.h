// An SSH host: an exec::ScriptHost whose executor is a pool of libssh2 sessions (ssh/pool.h). The
// alias is resolved with `ssh -G` on first use, so ~/.ssh/config applies exactly as it does for
// `ssh ALIAS`; the pool connects lazily, on the first call.
#pragma once

#include "sandbox/exec/host.h"
#include "sandbox/exec/script_host.h"
#include "ssh/pool.h"
#include "ssh/ssh_config.h"

#include <memory>
#include <optional>
#include <string>

namespace smcp::ssh {

// How a command gets the user's shell environment ("bashrc" in the config):
//   snapshot  a helper per host runs commands with a snapshot of what the startup files produce
//             (exported variables, functions, aliases, options): they run once per helper, not
//             per call (sandbox/exec/helper_executor.h);
//   skip      the helper, with the login shell's exported environment only;
//   source    no helper: every command goes through the login shell, and its bash sources
//             ~/.bashrc again (what `ssh host cmd` does).
enum class ShellEnv { snapshot, skip, source };
std::optional<ShellEnv> parse_shell_env(const std::string& text);

struct SshHostOptions : exec::ScriptHostOptions {
  ShellEnv shell_env = ShellEnv::snapshot;
  ResolveOptions resolve;
  HostKeyPolicy host_key_policy = HostKeyPolicy::accept_new;
  PassphraseSource passphrase;
  PoolLimits limits;
};

std::shared_ptr<exec::Host> make_ssh_host(SshHostOptions options);

} // namespace smcp::ssh
