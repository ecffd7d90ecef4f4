// Figures the benchmarks report about a process (/proc/PID/status fields, open descriptors) and
// latency percentiles. Header-only; benchmarks only.
#pragma once

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <string>
#include <sys/types.h>
#include <vector>

namespace smcp::bench {

inline double percentile(std::vector<double> v, double p) {
  if (v.empty()) {
    return 0;
  }
  std::sort(v.begin(), v.end());
  std::size_t i = static_cast<std::size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

// A numeric field of /proc/PID/status, e.g. "VmRSS:" (KiB) or "Threads:"; -1 when unreadable.
inline long status_field(pid_t pid, const char* field) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  const std::size_t len = std::strlen(field);
  while (std::getline(status, line)) {
    if (line.compare(0, len, field) == 0) {
      return std::stol(line.substr(len));
    }
  }
  return -1;
}

inline long rss_kb(pid_t pid) {
  return status_field(pid, "VmRSS:");
}

// Open file descriptors of a process; -1 when unreadable.
inline int fd_count(pid_t pid) {
  DIR* d = ::opendir(("/proc/" + std::to_string(pid) + "/fd").c_str());
  if (!d) {
    return -1;
  }
  int n = 0;
  while (dirent* e = ::readdir(d)) {
    n += e->d_name[0] != '.';
  }
  ::closedir(d);
  return n;
}

} // namespace smcp::bench
