// The one reader of /proc/PID/stat (Linux): "pid (comm) state ppid pgrp session ... starttime ...".
// Async-signal-safe: the process-tree walk uses it between fork and _exit.
#pragma once

#include <cstddef>
#include <sys/types.h>

namespace smcp::exec {

struct ProcStat {
  pid_t pid = 0;
  char comm[64] = {}; // the command name (at most 15 bytes on Linux), NUL-terminated
  char state = '?';   // R, S, D, Z (zombie), X (dead), ...
  pid_t ppid = 0;
  pid_t pgrp = 0;
  pid_t sid = 0;
  unsigned long long start_time = 0; // field 22: clock ticks after boot when the process started

  bool live() const { return state != 'Z' && state != 'X'; } // exists and is not a zombie
};

// Parses the text of a stat file. comm may contain spaces and parentheses, so the fields after it
// are counted from the last ')'. False when the text is not a stat line.
bool parse_proc_stat(const char* text, ProcStat& out);

// Reads and parses /proc/PID/stat; false when the process does not exist (any more).
bool read_proc_stat(pid_t pid, ProcStat& out);

// "/proc/PID/<leaf>" into `buf` (room for 32 bytes plus the leaf).
void proc_path(char* buf, pid_t pid, const char* leaf);

// One read of at most `size` bytes of /proc/PID/<leaf> into `buf`; -1 when it cannot be read.
ssize_t read_proc_file(pid_t pid, const char* leaf, char* buf, std::size_t size);

} // namespace smcp::exec
