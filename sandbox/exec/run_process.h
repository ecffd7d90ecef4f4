// Running a short local program to its end and collecting its output (`ssh -G`, a passphrase
// command, `git`...): argv only, never a shell string; killed when it outlives its timeout.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace smcp::exec {

struct ProcessResult {
  int status = -1; // exit status; -1 when it could not run or was killed
  std::string out;
  std::string err;
};
ProcessResult run_process(const std::vector<std::string>& argv, std::chrono::milliseconds timeout);

// The local user's home directory: $HOME, else the password database, else "/".
std::string local_home();

} // namespace smcp::exec
