// Finding and ending every process of a session on this machine (Linux /proc). A command runs in
// its own session, so its whole tree — children, grandchildren, background `&` jobs — shares the
// session id even after re-grouping, and can be ended and verified gone as one unit.
#pragma once

#include <chrono>
#include <sys/types.h>
#include <vector>

namespace smcp::exec {

// Live (non-zombie) processes whose session id is `sid`, except `exclude`.
std::vector<pid_t> session_members(pid_t sid, pid_t exclude = 0);

// Sends `signal` to every live member of session `sid` (except `exclude`), waits up to `grace`
// for them to go, then sends SIGKILL to the rest and waits briefly. `reap` is called while
// waiting so the caller can collect its own children. Returns true when none remains.
bool end_session(pid_t sid, int signal, std::chrono::milliseconds grace, pid_t exclude = 0,
                 void (*reap)(void*) = nullptr, void* reap_arg = nullptr);

// True when `pid` exists and is not a zombie.
bool process_alive(pid_t pid);

} // namespace smcp::exec
