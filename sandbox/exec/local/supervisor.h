// What the two supervisors of LocalHost (foreground: local/foreground.cpp; durable jobs:
// local/job_supervisor.cpp) share. They run between fork and _exit of a multithreaded server, so
// everything here is async-signal-safe: no allocation, no locks.
#pragma once

#include <cstddef>

namespace smcp::exec {

// Before exec'ing the command: every signal back to its default, none blocked.
void reset_signals_for_command();

// Supervisors ignore the signals meant for their command and take SIGCHLD through a signalfd,
// which this returns (-1 if none could be made: then waits poll for children every 50-100 ms).
int supervisor_signals();

// Waits until `fd` (if >= 0) is readable (data, end of file or an error) or a signal arrived on
// `sfd` (drained here), at most `timeout_ms` (-1: no limit). Returns true when `fd` is ready.
bool wait_for(int fd, int sfd, int timeout_ms);

// "exit N\n" or "signal N\n" for a wait status, into `text`; returns its length.
std::size_t status_record(char* text, int wait_status);

} // namespace smcp::exec
