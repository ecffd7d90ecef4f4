// MCP stdio transport: newline-delimited JSON-RPC on a pair of file descriptors. Only protocol
// messages are written to the output descriptor; everything else goes to the log (stderr).
#pragma once

#include "transport/transport.h"

#include <cstddef>

namespace smcp::transport {

struct StdioOptions {
  int in_fd = 0;
  int out_fd = 1;
  // A line longer than this is discarded as it streams in (never buffered) and answered with an
  // error; the connection keeps serving.
  std::size_t max_message_bytes = 4 * 1024 * 1024;
};

class StdioTransport {
public:
  explicit StdioTransport(StdioOptions options);
  ~StdioTransport();
  StdioTransport(const StdioTransport&) = delete;
  StdioTransport& operator=(const StdioTransport&) = delete;
  // Serves one endpoint until end of input or stop(), then closes it (cancelling in-flight work).
  // Returns 0 on a clean end, 1 on a read error.
  int run(EndpointFactory& factory);
  // Makes run() finish as if the input had ended (thread-safe, e.g. from a signal thread).
  void stop();

private:
  StdioOptions m_options;
  int m_stop_fd = -1;
};

} // namespace smcp::transport
