// An in-memory transport: the client side of a connection to an EndpointFactory, for tests and
// for embedding the server in-process. Raw strings go in, serialized messages come out in order.
#pragma once

#include "transport/transport.h"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <string>

namespace smcp::transport {

class MemoryConnection {
public:
  explicit MemoryConnection(EndpointFactory& factory);
  ~MemoryConnection();

  // Delivers one raw message to the server, as a transport would.
  void send(std::string_view raw);
  void send_oversized(std::size_t bytes, std::size_t limit);
  // The next message the server sent (responses, notifications), or nullopt after `timeout`.
  std::optional<std::string> next(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Messages received so far and not yet taken by next().
  std::size_t pending() const;
  // Number of reply->end() calls seen (one per inbound message once fully answered).
  std::size_t ends() const;
  void close();

private:
  class Sink;
  std::shared_ptr<Sink> m_sink;
  std::shared_ptr<Endpoint> m_endpoint;
  bool m_closed = false;
};

} // namespace smcp::transport
