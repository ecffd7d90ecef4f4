#include "sandbox/process_tree.h"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <thread>
#include <unistd.h>

namespace smcp::exec {

namespace {

struct ProcStat {
  char state = '?';
  pid_t session = -1;
};

// Parses /proc/PID/stat: "pid (comm) state ppid pgrp session ...". comm may contain spaces and
// parentheses, so fields are counted from the last ')'.
bool read_stat(pid_t pid, ProcStat& out) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return false;
  }
  char buf[1024];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) {
    return false;
  }
  buf[n] = '\0';
  char* close_paren = std::strrchr(buf, ')');
  if (!close_paren || close_paren[1] == '\0') {
    return false;
  }
  char state = '?';
  int ppid = 0, pgrp = 0, session = 0;
  if (std::sscanf(close_paren + 2, "%c %d %d %d", &state, &ppid, &pgrp, &session) != 4) {
    return false;
  }
  out.state = state;
  out.session = session;
  return true;
}

} // namespace

bool process_alive(pid_t pid) {
  ProcStat st;
  return pid > 0 && read_stat(pid, st) && st.state != 'Z' && st.state != 'X';
}

std::vector<pid_t> session_members(pid_t sid, pid_t exclude) {
  std::vector<pid_t> out;
  DIR* dir = ::opendir("/proc");
  if (!dir) {
    return out;
  }
  while (dirent* e = ::readdir(dir)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (*end != '\0' || pid <= 0 || pid == exclude) {
      continue;
    }
    ProcStat st;
    if (read_stat(static_cast<pid_t>(pid), st) && st.session == sid && st.state != 'Z' && st.state != 'X') {
      out.push_back(static_cast<pid_t>(pid));
    }
  }
  ::closedir(dir);
  return out;
}

bool end_session(pid_t sid, int signal, std::chrono::milliseconds grace, pid_t exclude, void (*reap)(void*),
                 void* reap_arg) {
  using Clock = std::chrono::steady_clock;
  auto signal_all = [&](int sig) {
    auto members = session_members(sid, exclude);
    for (pid_t p : members) {
      ::kill(p, sig);
      if (sig != SIGKILL && sig != SIGCONT) {
        ::kill(p, SIGCONT); // a stopped process would never see the signal
      }
    }
    return !members.empty();
  };
  auto wait_gone = [&](std::chrono::milliseconds limit) {
    auto deadline = Clock::now() + limit;
    auto pause = std::chrono::milliseconds(1);
    for (;;) {
      if (reap) {
        reap(reap_arg);
      }
      if (session_members(sid, exclude).empty()) {
        return true;
      }
      if (Clock::now() >= deadline) {
        return false;
      }
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::milliseconds(20));
    }
  };
  if (!signal_all(signal)) {
    return true;
  }
  if (signal != SIGKILL && wait_gone(grace)) {
    return true;
  }
  // Members may have forked meanwhile: repeat KILL until nothing is left or time runs out.
  for (int round = 0; round < 10; ++round) {
    if (!signal_all(SIGKILL)) {
      return true;
    }
    if (wait_gone(std::chrono::milliseconds(200))) {
      return true;
    }
  }
  return session_members(sid, exclude).empty();
}

} // namespace smcp::exec
