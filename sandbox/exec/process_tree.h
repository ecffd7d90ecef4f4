// Finding and ending every process of a command on this machine (Linux /proc).
//
// A command runs in its own session, so most of its tree shares the session id even after
// re-grouping. A descendant that calls setsid(2) leaves the session, though; it is still found
// through parent links, because every supervisor (foreground and durable) is a child subreaper
// (PR_SET_CHILD_SUBREAPER): orphans of its tree are re-parented to it instead of to init, so
// "the descendants of the supervisor" is the complete tree, and "the supervisor has no child
// left" (waitpid: ECHILD) proves that nothing of it remains.
//
// The functions marked async-signal-safe allocate nothing and are used between fork and _exit.
#pragma once

#include "sandbox/exec/proc_stat.h"

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace smcp::exec {

// One process as seen in /proc/PID/stat.
struct ProcEntry : ProcStat {
  bool mark = false; // scratch for descendants_in
};

// Async-signal-safe. Reads every process into `entries` (at most `max`, sorted by pid) and
// returns how many there are in total (more than `max` when the buffer was too small).
std::size_t scan_processes(ProcEntry* entries, std::size_t max);

// Async-signal-safe. Writes the live (non-zombie) descendants of `root` (not `root` itself) among
// `entries` (sorted by pid, as scan_processes leaves them) to `out`; returns how many (at most `max`).
std::size_t descendants_in(ProcEntry* entries, std::size_t n, pid_t root, pid_t* out, std::size_t max);

// Async-signal-safe. For a child subreaper: sends `signal` (and CONT) to every descendant,
// reaping children as they end, waits up to `grace_ms` for them to go, then sends KILL in rounds.
// `main`/`main_status`/`main_done` record the status of one particular child when it is reaped.
// Returns true when no child remains (ECHILD): the whole tree is gone. `signalled` receives how
// many processes got the first signal.
bool end_subtree(int signal, long grace_ms, pid_t main, int* main_status, bool* main_done, int* signalled);

// Async-signal-safe. Reaps every child that ended (WNOHANG); records `main`'s status. Returns
// false when no child is left at all.
bool reap_children(pid_t main, int* main_status, bool* main_done);

// Async-signal-safe. Writes up to `max` bytes of the names (comm) of the first live descendants
// of the caller, comma-separated, to `buf`; returns how many descendants there are.
std::size_t describe_descendants(char* buf, std::size_t max, std::size_t* len);

// Live (non-zombie) processes whose session id is `sid`, except `exclude`.
std::vector<pid_t> session_members(pid_t sid, pid_t exclude = 0);

// Live descendants of `root` (through parent links), not `root` itself.
std::vector<pid_t> descendants(pid_t root);

// Live processes whose environment holds exactly `entry` ("NAME=value"); only processes of this
// user can be read.
std::vector<pid_t> processes_with_env(const std::string& entry);

// Sends `signal` to every process `collect` returns, waits up to `grace` for them to go, then
// sends SIGKILL to the rest (collecting again each round: members may fork meanwhile) and waits
// briefly. `reap` is called while waiting so the caller can collect its own children. Returns
// true when `collect` finds none.
bool end_processes(const std::function<std::vector<pid_t>()>& collect, int signal, std::chrono::milliseconds grace,
                   const std::function<void()>& reap = {});

// end_processes over the members of session `sid` (except `exclude`).
bool end_session(pid_t sid, int signal, std::chrono::milliseconds grace, pid_t exclude = 0,
                 void (*reap)(void*) = nullptr, void* reap_arg = nullptr);

} // namespace smcp::exec
