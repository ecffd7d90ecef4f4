// The parsers of what the remote scripts (sandbox/exec/remote_scripts.h) print on a host. A host's
// answer is untrusted text: a parser returns what it understood or throws exec::HostError
// (tests/fuzz/fuzz_remote_scripts.cpp feeds them arbitrary bytes).
#pragma once

#include "sandbox/exec/host.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace smcp::exec {

// What ScriptHost learns about a host once, right after its first connection (probe_script).
struct HostFacts {
  std::string home;    // $HOME of the remote user
  std::string perl;    // path of perl, empty when missing
  std::string bash;    // path of bash, empty when missing (then /bin/sh runs commands)
  std::string setsid;  // path of setsid(1), empty when missing
  std::string boot_id; // /proc/sys/kernel/random/boot_id (empty on non-Linux)
  std::string uname;   // uname -s
};
HostFacts parse_probe(std::string_view out);

// ---- foreground runs ----

// Removes the foreground supervisor's records (`\x1e NONCE WORDS\n`, without the spaces around
// NONCE) from a stderr stream, however the stream is split into chunks.
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

// What the records said: "sid SID PID SUBREAPER" first, then "exit N", "signal N" or "signal N
// guessed", or "error cwd"; from the perl supervisor also "left K NAMES" and "gone" or "survived".
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

// Returns the job's session id (the supervisor's pid); throws exec::HostError.
long parse_job_start(std::string_view out, const std::string& job_dir);

// Throws exec::HostError(not_found) when the job's directory is gone.
exec::JobChunk parse_job_read(std::string_view out, const exec::JobRef& job);

struct KillOutcome {
  bool gone = false;      // no process was found
  bool untracked = false; // ... but processes that left the session could not be looked for
  std::string left;       // the pids that survived
};
KillOutcome parse_kill(std::string_view out);

// ---- file windows ----

// Same semantics as LocalHost's read_file_window; throws exec::HostError.
exec::FileWindow parse_file_window(std::string_view out, const exec::FileReadRequest& request,
                                   std::uint64_t count_lines_below);

} // namespace smcp::exec
