// The seam between the MCP protocol core and the byte transports (stdio, Streamable HTTP,
// in-memory pairs for tests). Transports move whole serialized JSON-RPC messages; they never
// interpret tool semantics. The protocol core implements Endpoint/EndpointFactory.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace smcp::transport {

// Where the protocol writes outgoing messages. Thread-safe: tool calls answer from worker threads.
class MessageSink {
public:
  virtual ~MessageSink() = default;
  // One serialized JSON-RPC message (or batch array), without a trailing newline.
  virtual void send(std::string message) = 0;
  // No further message will be sent through this sink for the inbound message it was given with
  // (all responses delivered, or the inbound message needed none). Called exactly once per
  // Endpoint::receive(). Streams of unsolicited messages never see end().
  virtual void end() {}
};

// The protocol side of one client connection (a stdio process, an HTTP Mcp-Session-Id).
class Endpoint {
public:
  virtual ~Endpoint() = default;
  // Deliver one raw inbound message. Responses to the requests in it, and notifications tied to
  // those requests (progress, logs), go to `reply`; reply->end() follows the last of them.
  virtual void receive(std::string_view raw, std::shared_ptr<MessageSink> reply) = 0;
  // The transport refused an inbound message larger than its limit; answer with an error.
  virtual void receive_oversized(std::size_t bytes, std::size_t limit, std::shared_ptr<MessageSink> reply) = 0;
  // Negotiated protocol version, empty before initialize.
  virtual std::string protocol_version() const = 0;
  // The connection ended: cancel in-flight work and wait (bounded) for it to stop.
  virtual void close() = 0;
};

class EndpointFactory {
public:
  virtual ~EndpointFactory() = default;
  // `unsolicited` receives server-initiated messages not tied to a request (may be null).
  virtual std::shared_ptr<Endpoint> open(std::shared_ptr<MessageSink> unsolicited) = 0;
};

} // namespace smcp::transport
