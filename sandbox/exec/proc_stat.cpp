#include "sandbox/exec/proc_stat.h"

#include "sandbox/exec/fd.h"
#include "sandbox/exec/signal_safe.h"

#include <cerrno>
#include <fcntl.h>
#include <unistd.h>

namespace smcp::exec {

namespace {

// Skips one space-separated field and the space after it.
bool skip_field(const char*& p) {
  while (*p && *p != ' ') {
    ++p;
  }
  if (*p != ' ') {
    return false;
  }
  ++p;
  return true;
}

bool number_field(const char*& p, long& value) {
  if ((*p < '0' || *p > '9') && *p != '-') {
    return false;
  }
  value = parse_long(p);
  return *p == ' ' ? (++p, true) : *p == '\0' || *p == '\n';
}

} // namespace

void proc_path(char* buf, pid_t pid, const char* leaf) {
  std::size_t n = append_text(buf, 0, "/proc/");
  n += format_int(buf + n, pid);
  buf[n++] = '/';
  n = append_text(buf, n, leaf);
  buf[n] = '\0';
}

bool parse_proc_stat(const char* text, ProcStat& out) {
  const char* open_paren = nullptr;
  const char* close_paren = nullptr;
  for (const char* p = text; *p; ++p) {
    if (*p == '(' && !open_paren) {
      open_paren = p;
    } else if (*p == ')') {
      close_paren = p;
    }
  }
  if (!open_paren || !close_paren || close_paren < open_paren || close_paren[1] != ' ' || close_paren[2] == '\0') {
    return false;
  }
  const char* p = text;
  out.pid = static_cast<pid_t>(parse_long(p));
  std::size_t n = 0;
  for (const char* c = open_paren + 1; c < close_paren && n + 1 < sizeof out.comm; ++c) {
    out.comm[n++] = *c;
  }
  out.comm[n] = '\0';
  p = close_paren + 2;
  out.state = *p++;
  if (*p++ != ' ') {
    return false;
  }
  long ppid = 0, pgrp = 0, sid = 0;
  if (!number_field(p, ppid) || !number_field(p, pgrp) || !number_field(p, sid)) {
    return false;
  }
  out.ppid = static_cast<pid_t>(ppid);
  out.pgrp = static_cast<pid_t>(pgrp);
  out.sid = static_cast<pid_t>(sid);
  // Fields 7 to 21, then the start time (field 22). Older stat lines may end earlier.
  out.start_time = 0;
  for (int field = 7; field < 22; ++field) {
    if (!skip_field(p)) {
      return true;
    }
  }
  while (*p >= '0' && *p <= '9') {
    out.start_time = out.start_time * 10 + static_cast<unsigned long long>(*p - '0');
    ++p;
  }
  return true;
}

ssize_t read_proc_file(pid_t pid, const char* leaf, char* buf, std::size_t size) {
  char path[64];
  proc_path(path, pid, leaf);
  UniqueFd fd(::open(path, O_RDONLY | O_CLOEXEC));
  if (!fd) {
    return -1;
  }
  ssize_t n;
  while ((n = ::read(fd.get(), buf, size)) < 0 && errno == EINTR) {
  }
  return n;
}

bool read_proc_stat(pid_t pid, ProcStat& out) {
  char buf[1024];
  ssize_t n = read_proc_file(pid, "stat", buf, sizeof buf - 1);
  if (n <= 0) {
    return false;
  }
  buf[n] = '\0';
  return parse_proc_stat(buf, out);
}

} // namespace smcp::exec
