// The small programs SshHost sends to a host, and the parsers for what they print. They are the
// remote half of exec::Host: foreground runs under a supervisor that reports the session id and how
// the command ended, durable jobs in a per-job directory laid out like LocalHost's, job reads by
// offset, kills of a whole session verified by a /proc scan, and file windows cut on the host.
//
// Everything here is text in, text out: no I/O, so the scripts are unit-tested by running them
// with a local /bin/sh (tests/unit/ssh_scripts_test.cpp).
//
// How a command's end is reported: a POSIX shell sees only $?, where "killed by signal N" and
// "exit 128+N" look the same. When the host has perl (Debian and Ubuntu always do: perl-base is
// essential there), a perl supervisor waits for the command and reports WIFSIGNALED exactly. On
// hosts without perl, a /bin/sh supervisor is used and a status above 128 is reported as the
// signal 128+N ("guessed"), the shell convention.
#pragma once

#include "sandbox/exec/host.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace smcp::exec {

// What SshHost learns about a host once, right after its first connection.
struct HostFacts {
  std::string home;    // $HOME of the remote user
  std::string perl;    // path of perl, empty when missing
  std::string bash;    // path of bash, empty when missing (then /bin/sh runs commands)
  std::string setsid;  // path of setsid(1), empty when missing
  std::string boot_id; // /proc/sys/kernel/random/boot_id (empty on non-Linux)
  std::string uname;   // uname -s
};

// Exec strings: the login shell of the remote user runs these; the program arrives on stdin, so
// the login shell (bash, zsh, tcsh, fish...) never parses our quoting.
std::string sh_exec();                          // "exec /bin/sh -s"
std::string perl_exec(const std::string& perl); // "exec '/usr/bin/perl' -"

std::string probe_script();
HostFacts parse_probe(std::string_view out);

// ---- foreground runs ----

// The supervisor writes records to stderr, each `\x1e NONCE WORDS\n` (without the spaces around
// NONCE): "sid SID PID" first, then "exit N", "signal N" or "signal N guessed", or "error cwd".
struct ForegroundScript {
  std::string exec;
  std::string input;
};
//
// The perl supervisor is a child subreaper (Linux): it ends what the command leaves running
// ("left K NAMES", then "gone" or "survived"), and ends the whole tree itself when the command
// outlives its timeout by far (the server that should have ended it is gone). The sh fallback
// cannot track processes that leave the command's session, and says so ("sid SID PID 0").
ForegroundScript foreground_script(const exec::CommandSpec& spec, const std::string& command_shell,
                                   const std::string& nonce, const std::string& perl,
                                   std::chrono::milliseconds grace = std::chrono::milliseconds(3000));

// Removes supervisor records from a stderr stream, however the stream is split into chunks.
class MarkerFilter {
public:
  explicit MarkerFilter(const std::string& nonce);
  // Returns the bytes of `data` that belong to the command's stderr; records are kept.
  std::string feed(std::string_view data);
  // At the end of the stream: bytes held back because they might have started a record.
  std::string flush();
  std::vector<std::string> take_records();

private:
  std::string m_prefix; // "\x1e" NONCE " "
  std::string m_held;
  std::vector<std::string> m_records;
};

struct SupervisorReport {
  std::optional<long> sid;
  std::optional<long> supervisor_pid;
  std::optional<int> exit_code;
  std::optional<int> signal;
  bool guessed = false; // signal inferred from an exit status above 128 (no perl)
  bool cwd_missing = false;
  bool subreaper = false; // the supervisor tracks every descendant (perl on Linux)
  int leftovers = 0;      // processes the command left running (ended by the supervisor)
  std::string leftover_names;
  bool tree_done = false; // the supervisor finished ending the tree ("gone" / "survived")
  bool survivors = false; // ... and some process survived SIGKILL
};
void apply_record(const std::string& record, SupervisorReport& report);

// ---- durable jobs ----

// With perl, the supervisor relays the command's output into <dir>/output up to `output_cap`
// bytes (then a marker; the rest is counted and discarded) and the job ends with its command, as
// LocalHost's supervisor does. The shell fallback appends the output directly, without a cap.
ForegroundScript job_start_script(const exec::CommandSpec& spec, const std::string& job_dir,
                                  const std::string& command_shell, const std::string& perl,
                                  std::uint64_t output_cap = 1ull << 30,
                                  std::chrono::milliseconds grace = std::chrono::milliseconds(3000));
// Returns the job's session id (the supervisor's pid); throws exec::HostError.
long parse_job_start(std::string_view out, const std::string& job_dir);

// In the environment of every durable job's command ("SANDBOX_MCP_JOB=ID", as on the local host):
// finds its processes after its supervisor is gone and they left its session.
constexpr const char* k_job_marker_name = "SANDBOX_MCP_JOB";
std::string job_marker(const std::string& job_id);

// Reads the job's state and output. A job whose supervisor is gone without a status is
// "vanished"; whatever still runs of it (its session, its marker) is ended then.
std::string job_read_script(const exec::JobRef& job, std::uint64_t offset, std::size_t max_bytes);
// Throws exec::HostError(not_found) when the job's directory is gone.
exec::JobChunk parse_job_read(std::string_view out, const exec::JobRef& job);

// Ends every process of a command or job except its supervisor `exclude`: the members of session
// `sid`, the supervisor's descendants, and (with `marker`, "NAME=value") the processes whose
// environment holds it: `signal`, then KILL after `grace`. Prints "gone" when none remains, "gone
// untracked" when none was found but the supervisor cannot track processes that left the session
// (no subreaper: the sh fallback), "left PIDS" otherwise. With `job_dir`, a job from an earlier boot
// counts as gone, and the job's own `tracked` file says whether its supervisor is a subreaper.
std::string kill_session_script(long sid, long exclude, int signal, std::chrono::milliseconds grace,
                                const std::string& job_dir, const std::string& marker = {}, bool tracked = false);
struct KillOutcome {
  bool gone = false;      // no process was found
  bool untracked = false; // ... but processes that left the session could not be looked for
  std::string left;       // the pids that survived
};
KillOutcome parse_kill(std::string_view out);

std::string remove_job_script(const std::string& job_dir);

// ---- file windows ----

std::string file_window_script(const exec::FileReadRequest& request, std::uint64_t count_lines_below);
// Same semantics as sandbox/local_host.cpp read_file_window; throws exec::HostError.
exec::FileWindow parse_file_window(std::string_view out, const exec::FileReadRequest& request,
                                   std::uint64_t count_lines_below);

// "~" and "~/x" -> home-based paths (the agent often writes them; the remote shell would not
// expand a quoted tilde).
std::string expand_home(const std::string& path, const std::string& home);

} // namespace smcp::exec
