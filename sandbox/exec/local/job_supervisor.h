// The supervisor of a durable job (local/jobs.cpp starts it): a process of its own that outlives
// the server, runs the command, copies its output to <dir>/output and records how it ended in
// <dir>/status. Runs between fork and _exit: async-signal-safe only.
#pragma once

#include <cstddef>
#include <cstdint>

namespace smcp::exec {

// Everything the supervisor needs, prepared before fork.
struct SupervisorPlan {
  const char* output;
  const char* status;
  const char* status_tmp;
  const char* pid_file;
  const char* pid_tmp;
  const char* cwd; // null: inherit
  const char* program;
  char* const* argv;
  char* const* envp;
  std::uint64_t output_cap;
  int report_fd; // receives the supervisor's pid
  long grace_ms; // TERM -> KILL for processes the command leaves behind
};

// Its status file reads "exit N" or "signal N", then "output-error ERRNO WRITTEN LOST" when the
// output file could not be written (local/jobs.cpp parses it).
[[noreturn]] void supervise_job(const SupervisorPlan& plan);

} // namespace smcp::exec
