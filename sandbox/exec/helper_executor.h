// A RemoteExecutor in front of an SSH host's pool that makes a call cost the same whatever the
// user's ~/.bashrc costs. sshd runs every exec request through the login shell, and bash sources
// ~/.bashrc for it (Debian's SSH_SOURCE_BASHRC): 200 ms of conda/pyenv/module init per call on a
// typical GPU host. So one helper (sandbox/exec/scripts/helper.pl) is started per host over one
// long-lived exec channel; it takes a snapshot of the shell the startup files produce (the
// exported environment; functions, aliases and options in a file each command's bash loads) and
// listens on a Unix socket; each call is then a direct-streamlocal channel to it: no login shell,
// no sshd session setup, one fork per call. The requests and exec strings are the inner
// executor's, unchanged, so ScriptHost and its scripts do not know the difference.
//
// The snapshot is taken again when a startup file or the snapshot file itself changes (the helper
// compares their stat on every call and answers "stale"; the call then waits for a new helper) and
// on refresh_environment. The helper's socket and snapshot live in a run directory it checks from
// / down (no one but root and the user can change any directory on the way), under names that say
// the host (a home on NFS is shared with other hosts' helpers, which it never reaps), and each
// request names the token the helper printed when it started: reaching the socket is not enough.
// When the helper cannot run (no perl, a startup file that exits, streamlocal forwarding disabled
// by the server), calls go through the inner executor as before, with a log line; the helper is
// tried again after a while. A helper starts on a thread of its own: while it starts, reads, kills
// and probes (retry-safe calls) go through the inner executor, and commands wait for it no longer
// than their own deadline. A request the helper does not take in time (a stopped or hung helper)
// is sent again to a new one; a helper that cannot fork says so and the request is sent again
// after a pause; a stream lost after the command started is an `unreachable` error.
#pragma once

#include "sandbox/exec/remote_executor.h"

#include <chrono>
#include <memory>
#include <string>

namespace smcp::exec {

struct HelperOptions {
  std::string name;                               // the host, for messages
  bool snapshot = true;                           // false: the login shell's environment only, no functions or aliases
  std::string perl = "perl";                      // how the login shell finds perl
  std::chrono::milliseconds start_timeout{60000}; // the helper's start, snapshot included
  // A request the helper has not taken (its "accepted" frame) this long after it was sent: the
  // helper is taken as stopped or hung (SIGSTOP, a frozen cgroup, a suspended node), a new one is
  // started and the request sent again (nothing ran). Doubled for each resend of one call; 1 ms
  // more per 256 bytes of the request (the helper reads a perl program whole before taking it).
  std::chrono::milliseconds accept_timeout{1500};
  std::chrono::milliseconds retry_after{300000}; // after a failed start, calls go direct this long
};

std::shared_ptr<RemoteExecutor> make_helper_executor(std::shared_ptr<RemoteExecutor> inner, HelperOptions options);

} // namespace smcp::exec
