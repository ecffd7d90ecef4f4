#include "tests/support/processes.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <system_error>

namespace smcp::testing {

std::vector<pid_t> live_processes(const std::string& command_prefix) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/proc", ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) {
      continue;
    }
    std::string args, st;
    try { // a process that ends meanwhile makes the read fail (ESRCH), and libstdc++ throw
      std::ifstream cmdline(it->path() / "cmdline");
      args.assign(std::istreambuf_iterator<char>(cmdline), std::istreambuf_iterator<char>());
      std::ifstream stat(it->path() / "stat");
      st.assign(std::istreambuf_iterator<char>(stat), std::istreambuf_iterator<char>());
    } catch (const std::exception&) {
      continue;
    }
    auto paren = st.rfind(')');
    const bool zombie = paren != std::string::npos && paren + 2 < st.size() && st[paren + 2] == 'Z';
    std::replace(args.begin(), args.end(), '\0', ' ');
    if (!zombie && args.rfind(command_prefix, 0) == 0) {
      out.push_back(static_cast<pid_t>(std::stol(name)));
    }
  }
  return out;
}

} // namespace smcp::testing
