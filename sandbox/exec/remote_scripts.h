// The small programs ScriptHost sends to a host (their parts are the files of
// sandbox/exec/scripts/, embedded in the binary). They are the remote half of exec::Host:
// foreground runs under a supervisor that reports the session id and how the command ended,
// durable jobs in a per-job directory laid out like LocalHost's, job reads by offset, kills of a
// whole session verified by a /proc scan, and file windows cut on the host. What they print is
// read by sandbox/exec/script_parsers.h.
//
// Everything here is text in, text out: no I/O, so the scripts are unit-tested by running them
// with a local /bin/sh (tests/unit/script_host_test.cpp). Every value a builder puts into a
// program (a command, a path, an environment value, a number) goes into a prologue of variable
// assignments, quoted by sandbox/exec/quote.h; the program text itself is fixed.
//
// How a command's end is reported: a POSIX shell sees only $?, where "killed by signal N" and
// "exit 128+N" look the same. When the host has perl (Debian and Ubuntu always do: perl-base is
// essential there), a perl supervisor waits for the command and reports WIFSIGNALED exactly. On
// hosts without perl, a /bin/sh supervisor is used and a status above 128 is reported as the
// signal 128+N ("guessed"), the shell convention.
#pragma once

#include "sandbox/exec/host.h"

#include <chrono>
#include <cstdint>
#include <string>

namespace smcp::exec {

// Exec strings: the login shell of the remote user runs these; the program arrives on stdin, so
// the login shell (bash, zsh, tcsh, fish...) never parses our quoting.
std::string sh_exec();                          // "exec /bin/sh -s"
std::string perl_exec(const std::string& perl); // "exec '/usr/bin/perl' -"

// Prints the facts parse_probe reads (run with sh_exec()).
std::string probe_script();

// A program and the exec string that runs it.
struct ForegroundScript {
  std::string exec;
  std::string input;
};

// ---- foreground runs ----

// The supervisor writes records to stderr (see MarkerFilter and SupervisorReport). The perl
// supervisor is a child subreaper (Linux): it ends what the command leaves running ("left K
// NAMES", then "gone" or "survived"), and ends the whole tree itself when the command outlives its
// timeout by far (the server that should have ended it is gone). The sh fallback cannot track
// processes that leave the command's session, and says so ("sid SID PID 0").
ForegroundScript foreground_script(const exec::CommandSpec& spec, const std::string& command_shell,
                                   const std::string& nonce, const std::string& perl,
                                   std::chrono::milliseconds grace = std::chrono::milliseconds(3000));

// ---- durable jobs ----

// With perl, the supervisor relays the command's output into <dir>/output up to `output_cap`
// bytes (then a marker; the rest is counted and discarded) and the job ends with its command, as
// LocalHost's supervisor does. The shell fallback appends the output directly, without a cap.
// Answered by parse_job_start.
ForegroundScript job_start_script(const exec::CommandSpec& spec, const std::string& job_dir,
                                  const std::string& command_shell, const std::string& perl,
                                  std::uint64_t output_cap = 1ull << 30,
                                  std::chrono::milliseconds grace = std::chrono::milliseconds(3000));

// In the environment of every durable job's command ("SANDBOX_MCP_JOB=ID", as on the local host):
// finds its processes after its supervisor is gone and they left its session.
constexpr const char* k_job_marker_name = "SANDBOX_MCP_JOB";
std::string job_marker(const std::string& job_id);

// Reads the job's state and output (parse_job_read). A job whose supervisor is gone without a
// status is "vanished"; whatever still runs of it (its session, its marker) is ended then.
std::string job_read_script(const exec::JobRef& job, std::uint64_t offset, std::size_t max_bytes);

// Ends every process of a command or job except its supervisor `exclude`: the members of session
// `sid`, the supervisor's descendants, and (with `marker`, "NAME=value") the processes whose
// environment holds it: `signal`, then KILL after `grace`. Prints "gone" when none remains, "gone
// untracked" when none was found but the supervisor cannot track processes that left the session
// (no subreaper: the sh fallback), "left PIDS" otherwise (parse_kill). With `job_dir`, a job from
// an earlier boot counts as gone, and the job's own `tracked` file says whether its supervisor is
// a subreaper.
std::string kill_session_script(long sid, long exclude, int signal, std::chrono::milliseconds grace,
                                const std::string& job_dir, const std::string& marker = {}, bool tracked = false);

// Prints "removed", or "gone" when the directory was already missing.
std::string remove_job_script(const std::string& job_dir);

// ---- file windows ----

// Answered by parse_file_window.
std::string file_window_script(const exec::FileReadRequest& request, std::uint64_t count_lines_below);

// "~" and "~/x" -> home-based paths (the agent often writes them; the remote shell would not
// expand a quoted tilde).
std::string expand_home(const std::string& path, const std::string& home);

} // namespace smcp::exec
