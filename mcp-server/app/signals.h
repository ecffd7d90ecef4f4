// SIGINT, SIGTERM and SIGHUP end the server cleanly (cancelled calls, ended foreground commands,
// durable jobs left running) instead of killing it mid-work.
#pragma once

#include <functional>

namespace smcp::app {

// Blocks the termination signals in the calling thread and every thread it starts later: call it
// before anything starts threads.
void block_termination_signals();

// Runs `run`; if a termination signal arrives meanwhile, calls `stop` (from another thread), which
// must make `run` return. Returns what `run` returned.
int run_until_signal(const std::function<int()>& run, const std::function<void()>& stop);

} // namespace smcp::app
