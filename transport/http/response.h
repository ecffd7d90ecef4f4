// Internal to transport/ (the Streamable HTTP transport): a request as the handlers see it, their
// answer, and the answer's bytes on the wire.
#pragma once

#include "transport/http_request.h"

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace smcp::transport::http {

class SseWriter;

struct Request : ParsedRequest {
  std::string path;
  std::string remote_addr;
};

struct Response {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string content_type;
  std::string body;
  // Non-null: a text/event-stream response written from this writer until it ends.
  std::shared_ptr<SseWriter> sse;
  std::function<void()> on_stream_end; // once, when the stream response ends (or never starts)
  bool close = false;                  // close the connection after this response
  bool authenticated = false;          // the request passed the bearer-token check
  bool keep_alive = true;              // set with `wire`
  std::string wire;                    // a plain answer as sent: status line, headers, body

  void set_header(const std::string& name, std::string value);
  bool has_header(const std::string& name) const;
  void set_content(std::string b, std::string type) {
    body = std::move(b);
    content_type = std::move(type);
  }
};

// A JSON-RPC error (without id) as the body of an HTTP error.
void set_error(Response& res, int status, int code, const std::string& message);

// Status line and headers. `chunked`: the body follows in chunks (SSE); else Content-Length.
std::string serialize_head(const Response& res, bool chunked, bool keep_alive, unsigned version);

// A plain answer as sent: status line, headers, body.
std::string serialize(const Response& res, bool keep_alive, unsigned version);

// One chunk of a chunked body.
std::string chunk(std::string_view data);

} // namespace smcp::transport::http
