#include "tests/support/processes.h"

#include "sandbox/exec/proc_stat.h"

#include <algorithm>
#include <filesystem>
#include <cstdio>
#include <system_error>

namespace smcp::testing {

namespace {

// A /proc file's contents; empty or partial when the process is gone. (Reading the file of a
// process that just exited fails with ESRCH, which istreambuf_iterator turns into an exception.)
std::string read_proc_file(const std::filesystem::path& path) {
  std::string out;
  if (FILE* f = std::fopen(path.c_str(), "re")) {
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
      out.append(buf, n);
    }
    std::fclose(f);
  }
  return out;
}

} // namespace

std::vector<pid_t> live_processes(const std::string& command_prefix) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/proc", ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) {
      continue;
    }
    const auto pid = static_cast<pid_t>(std::stol(name));
    std::string args = read_proc_file(it->path() / "cmdline");
    exec::ProcStat st;
    const bool zombie = exec::read_proc_stat(pid, st) && st.state == 'Z';
    std::replace(args.begin(), args.end(), '\0', ' ');
    if (!zombie && args.rfind(command_prefix, 0) == 0) {
      out.push_back(pid);
    }
  }
  return out;
}

} // namespace smcp::testing
