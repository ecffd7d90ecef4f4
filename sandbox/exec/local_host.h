// The `local` host: commands run on this machine with argv vectors (never a re-quoted shell
// string), each in its own session so the whole tree can be ended; durable jobs run under a small
// supervisor process that outlives the server and records how the job ended. Its parts live in
// sandbox/exec/local/: foreground runs, durable jobs (server side and supervisor), file windows.
#pragma once

#include "sandbox/exec/host.h"
#include "sandbox/exec/local/file_window.h" // read_file_window, shared with tests of other hosts

#include <chrono>
#include <memory>
#include <string>

namespace smcp::exec {

struct LocalHostOptions {
  std::string name = "local";
  std::string jobs_root; // where durable jobs keep their directories (created on demand)
  std::string shell = "/bin/bash";
  std::chrono::milliseconds kill_grace{3000};
  // A durable job's output file stops growing here (a marker says so; the rest is discarded).
  std::uint64_t job_output_cap = 1ull << 30;
  // Tail reads of files up to this size count all lines, so line numbers are absolute.
  std::uint64_t count_lines_below = 64ull * 1024 * 1024;
};

std::shared_ptr<Host> make_local_host(LocalHostOptions options);

} // namespace smcp::exec
