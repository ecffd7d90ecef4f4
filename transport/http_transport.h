// MCP Streamable HTTP transport (spec 2025-11-25) at one endpoint path (default /mcp): POST carries
// client messages and answers as application/json or as an SSE stream, GET opens the session's
// server-to-client SSE stream (resumable with Last-Event-ID), DELETE ends a session. Safe by
// default: loopback bind, Host and Origin validation, bearer-token authentication (required beyond
// loopback), bounded bodies, sessions and connections, header and body deadlines. GET /healthz
// answers without authentication. The HTTP/1.1 server (Boost.Asio + Boost.Beast's parser, one
// event-driven I/O thread plus a worker pool for request handlers) is an implementation detail of
// http_transport.cpp and transport/http/; its request parsing and checks are pure functions in
// http_request.h.
#pragma once

#include "transport/transport.h"

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

namespace smcp::transport {

struct HttpOptions {
  std::string host = "127.0.0.1"; // bind address; beyond loopback a bearer token is required
  int port = 8765;                // 0: an ephemeral port (see HttpTransport::port())
  std::string path = "/mcp";
  // Required as "Authorization: Bearer TOKEN" on every MCP request when non-empty (compared in
  // constant time). Must be set when `host` is not a loopback address.
  std::string bearer_token;
  // Origins allowed besides http(s)://localhost, 127.0.0.1 and [::1] on any port, exactly as a
  // browser sends them, e.g. "https://app.example.com". A request without Origin is accepted.
  std::vector<std::string> allowed_origins;
  // Host header names (with or without ":port") allowed besides localhost, 127.0.0.1 and [::1].
  // When bound beyond loopback and this is empty, any Host is accepted (the token protects).
  std::vector<std::string> allowed_hosts;
  // Sessions open at once; when full, the least recently used idle session (no request in flight,
  // no open stream) is ended to admit a new one; 503 only when every session is in use.
  std::size_t max_sessions = 1024;
  std::chrono::seconds session_idle_timeout{3600}; // a session without requests this long ends
  std::size_t max_body_bytes = 4 * 1024 * 1024;
  // Open HTTP connections (each SSE stream is one). At the limit a new connection replaces the one
  // that has waited longest for a complete request (never-authenticated ones first); connections
  // busy with a request or a stream are kept, and when all are busy the new one gets 503. Also the
  // bound of the request-handler threads; GET streams are refused beyond three quarters of it.
  std::size_t max_connections = 512;
  // A request's headers must arrive within header_timeout of the connection starting to wait for
  // it (an idle keep-alive connection closes then), its body within body_timeout of the headers'
  // end; bytes trickling in extend neither (408, then the connection closes). A write (answer or
  // SSE event) that does not complete within write_timeout closes the connection.
  std::chrono::milliseconds header_timeout{10000};
  std::chrono::milliseconds body_timeout{30000};
  std::chrono::milliseconds write_timeout{10000};
  std::chrono::milliseconds sse_keepalive{15000}; // comment line on idle SSE streams
  std::size_t sse_history = 1024;                 // events kept per stream for Last-Event-ID
  std::chrono::milliseconds sse_retry{1000};      // "retry:" advertised in the priming event
  // MCP-Protocol-Version values accepted on requests (the protocol core's list, newest first);
  // anything else is answered 400. Empty: any YYYY-MM-DD value.
  std::vector<std::string> protocol_versions;
};

// True for 127.0.0.0/8, ::1 and "localhost".
bool is_loopback_host(const std::string& host);

// Parses "HOST:PORT", "[V6]:PORT" or ":PORT" (host defaults to 127.0.0.1); throws
// std::invalid_argument with a message for the user.
void parse_listen_address(const std::string& spec, std::string& host, int& port);

// Checks that the options are safe to serve with; returns an error message for the user, or "".
std::string validate_http_options(const HttpOptions& options);

class HttpTransport {
public:
  HttpTransport(HttpOptions options, EndpointFactory& factory);
  ~HttpTransport();
  HttpTransport(const HttpTransport&) = delete;
  HttpTransport& operator=(const HttpTransport&) = delete;

  // Binds the listening socket (throws std::runtime_error with a message for the user). Logs
  // "listening on http://HOST:PORT/mcp" on success. run() binds first when this was not called.
  void bind();
  // The bound port (after bind()).
  int port() const;
  // Serves until stop(); then ends every session (cancelling in-flight tool calls). Returns 0.
  int run();
  // Thread-safe; may be called before, during or after run().
  void stop();

  // For tests and metrics: sessions currently open.
  std::size_t session_count() const;

private:
  class Impl;
  std::unique_ptr<Impl> m_impl;
};

} // namespace smcp::transport
