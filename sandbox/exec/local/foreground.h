// LocalHost::run: a foreground command under a supervisor process (leader of the command's
// session and child subreaper), and the caller's loop that follows its output and reports.
#pragma once

#include "sandbox/exec/host.h"
#include "sandbox/exec/local_host.h"

#include <stop_token>

namespace smcp::exec {

ExitInfo run_foreground(const CommandSpec& spec, const LocalHostOptions& options, OutputSink& sink,
                        const std::stop_token& stop);

} // namespace smcp::exec
