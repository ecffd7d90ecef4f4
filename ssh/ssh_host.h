// An SSH host: an exec::ScriptHost whose executor is a pool of libssh2 sessions (ssh/pool.h). The
// alias is resolved with `ssh -G` on first use, so ~/.ssh/config applies exactly as it does for
// `ssh ALIAS`; the pool connects lazily, on the first call.
#pragma once

#include "sandbox/exec/host.h"
#include "sandbox/exec/script_host.h"
#include "ssh/pool.h"
#include "ssh/ssh_config.h"

#include <memory>

namespace smcp::ssh {

struct SshHostOptions : exec::ScriptHostOptions {
  ResolveOptions resolve;
  HostKeyPolicy host_key_policy = HostKeyPolicy::accept_new;
  PassphraseSource passphrase;
  PoolLimits limits;
};

std::shared_ptr<exec::Host> make_ssh_host(SshHostOptions options);

} // namespace smcp::ssh
