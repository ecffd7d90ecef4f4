// The execution seam: everything the tools do on a machine goes through Host, so a tool never
// knows whether it runs on this machine (LocalHost), through scripts over an executor (ScriptHost:
// SSH, a container sandbox's `podman exec`, later Slurm). Tests use FakeHost (tests/support). Errors are reported by
// throwing HostError.
#pragma once

#include "sandbox/exec/host_status.h"

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace smcp::exec {

class RemoteExecutor;

// A failure the caller can explain to the user; `kind` says what to do about it.
class HostError : public std::runtime_error {
public:
  enum class Kind {
    unreachable, // cannot reach or log in to the host (retry later, check the network/config)
    not_found,   // file, directory or job does not exist
    invalid,     // the request cannot be carried out as asked (binary file, directory, bad cwd)
    refused,     // host key mismatch, permission denied, policy
    io,          // anything else that went wrong on the host
  };
  HostError(Kind kind, const std::string& message) : std::runtime_error(message), m_kind(kind) {}
  Kind kind() const { return m_kind; }

private:
  Kind m_kind;
};

struct CommandSpec {
  std::string command; // a bash command line, run as `bash -c COMMAND` (argv, never re-quoted locally)
  std::string cwd;     // empty: the host's default directory
  std::vector<std::pair<std::string, std::string>> env; // added to the host's environment
  std::chrono::milliseconds timeout{0};                 // foreground only; 0 = no limit
  std::string profile; // execution profile (bubblewrap: restrictive/standard/permissive; empty = none)
  // Argv put before the command's own: `launcher... bash -c COMMAND` (e.g. `nice -n 10`, a
  // profile's `prlimit ... bwrap ...`). Its first word is looked up in PATH on the host.
  std::vector<std::string> launcher;
};

enum class Stream { out, err };

// Receives output of a foreground command as it arrives, on the runner's thread.
class OutputSink {
public:
  virtual ~OutputSink() = default;
  virtual void on_output(Stream stream, std::string_view data) = 0;
};

// How a process ended. Exactly one of exit_code/signal is set when the process ended on its own
// or was killed; timed_out/cancelled tell why we killed it.
struct ExitInfo {
  std::optional<int> exit_code;
  std::optional<int> signal;
  bool timed_out = false;
  bool cancelled = false;
  // Processes the command left running when it ended (`sleep 100 &`): they were ended (TERM,
  // then KILL after the grace period) when the call returned. A few of their names, comma-separated.
  int leftovers = 0;
  std::string leftover_names;
  // False when some process of the command's tree may remain: one survived SIGKILL, or the host
  // cannot track processes that left the command's session (no subreaper there). `tree_note` says which.
  bool tree_verified = true;
  std::string tree_note;
};

// A durable background job: it runs detached from the server (its own session), its combined
// stdout+stderr goes to `<dir>/output`, its pid to `<dir>/pid` and its end to `<dir>/status`.
struct JobRef {
  std::string id;
  std::string dir; // on the host
  long pid = 0;    // the job's process group / session leader on the host, 0 if unknown
};

struct JobState {
  enum class Phase { running, exited, signaled, vanished };
  Phase phase = Phase::running; // vanished: no status was written and no process remains
  int exit_code = 0;
  int signal = 0;
  // vanished: what was found of the job after its supervisor disappeared (processes still running
  // were ended), or empty.
  std::string note;
  // Set when the job's output file could not be written (errno, e.g. ENOSPC): it holds the first
  // `output_written` bytes; `output_lost` more were produced and not kept.
  int output_errno = 0;
  std::uint64_t output_written = 0;
  std::uint64_t output_lost = 0;
};

struct JobChunk {
  std::string data; // output bytes starting at `offset`
  std::uint64_t offset = 0;
  std::uint64_t size = 0; // total bytes the job has written so far
  JobState state;         // read before the data: when not running, the data is final
};

// A window of lines of a text file.
struct FileWindow {
  std::vector<std::string> lines;  // without newlines; over-long lines already cut with a marker
  long start_line = 1;             // 1-based number of lines[0]; negative: counted from the end (-1 = last)
  bool more_before = false;        // lines exist before the window
  bool more_after = false;         // lines exist after the window
  bool cut_lines = false;          // at least one line was cut
  std::optional<long> total_lines; // when known without reading the whole file
};

struct FileReadRequest {
  std::string path;
  long offset = 1;                          // 1-based first line; negative: |offset| lines from the end
  std::size_t limit = 2000;                 // lines
  std::size_t max_line_bytes = 2000;        // longer lines are cut with a marker
  std::size_t max_total_bytes = 256 * 1024; // the window stops early beyond this
};

class Host {
public:
  virtual ~Host() = default;
  virtual std::string name() const = 0;

  // Runs `spec` in the foreground until it ends, its timeout passes or `stop` is requested; on
  // timeout or stop the whole process tree is ended (TERM, then KILL after a grace period) and
  // verified gone. Output streams to `sink` as it arrives.
  virtual ExitInfo run(const CommandSpec& spec, OutputSink& sink, std::stop_token stop) = 0;

  // Starts a durable background job in `job_dir` (created; must not exist) and returns at once.
  virtual JobRef start_job(const CommandSpec& spec, const std::string& job_id, const std::string& job_dir) = 0;

  // Reads the job's state, then at most `max_bytes` of its output: the newest ones, starting no
  // earlier than `offset` (the gap, if any, is visible as chunk.offset > offset).
  virtual JobChunk read_job(const JobRef& job, std::uint64_t offset, std::size_t max_bytes) = 0;

  // Sends `signal` to the job's whole process tree; if it is still alive after `grace`, sends
  // SIGKILL. Returns true when no process of the job remains (verified). An ended job is checked
  // too: processes it left behind, or that outlived a supervisor killed from outside, are ended.
  // `detail`, when given, receives what limits the verification (empty when none).
  virtual bool kill_job(const JobRef& job, int signal, std::chrono::milliseconds grace,
                        std::string* detail = nullptr) = 0;

  // Deletes the job's directory (the job must have ended).
  virtual void remove_job(const JobRef& job) = 0;

  // A window of a text file; cost proportional to the window, not the file.
  virtual FileWindow read_file(const FileReadRequest& request) = 0;

  // Where durable jobs keep their directories on this host.
  virtual std::string jobs_root() const = 0;

  // What the host tells about itself (remote_hosts); the default: its name, kind "other", connected.
  virtual HostStatus status() const;

  // Runs programs on this host as they are (RemoteCommand::argv) or shell command lines: what the
  // sandbox manager drives git, podman and tmux with, and what a container's executor wraps. Null
  // when the host offers none (the default).
  virtual std::shared_ptr<RemoteExecutor> executor() { return nullptr; }
};

std::string signal_name(int signal);                    // "SIGTERM"
std::optional<int> parse_signal(std::string_view name); // "TERM", "SIGTERM", "15" -> 15

} // namespace smcp::exec
