// The sandbox manager's command line (new / ls / rm / attach / reset / image build), over the
// same App and SandboxManager the MCP tools use.
#pragma once

#include "mcp-server/app/command_line.h"

namespace smcp::app {

// Runs cl.command; returns the process's exit code (attach replaces the process on success).
int run_sandbox_command(const CommandLine& cl);

} // namespace smcp::app
