// Server logging: spdlog to stderr (quiet by default on stdio: clients show stderr as errors), and
// operational messages forwarded as MCP notifications/message to clients that asked for logs
// (logging/setLevel). Forwarding runs on its own thread, so a log line written while a session's
// lock is held cannot deadlock, and what the forwarder itself logs is never forwarded again.
#pragma once

#include "mcp-server/core/protocol.h"

#include <memory>
#include <string>

namespace smcp::app {

// Sets up the default logger: stderr at `stderr_level` (trace, debug, info, warn, error, critical,
// off), forwarding to MCP clients from info up (or from `stderr_level` when that is lower).
void setup_logging(const std::string& stderr_level);

// Where forwarded messages go; nullptr stops forwarding. Thread-safe.
void forward_logs_to(std::shared_ptr<mcp::Server> server);

} // namespace smcp::app
