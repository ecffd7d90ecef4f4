// Looking for processes on this machine from tests (Linux /proc): which live (non-zombie)
// processes have a command line that starts with a given text, e.g. "sleep 1000.42".
#pragma once

#include <string>
#include <sys/types.h>
#include <vector>

namespace smcp::testing {

std::vector<pid_t> live_processes(const std::string& command_prefix);
inline int count_processes(const std::string& command_prefix) {
  return static_cast<int>(live_processes(command_prefix).size());
}

} // namespace smcp::testing
