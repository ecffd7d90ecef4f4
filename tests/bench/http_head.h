// The head of an HTTP/1.1 response as the benchmark clients need it (status, body framing, MCP
// session id, SSE or not); used by http_client.h.
#pragma once

#include <algorithm>
#include <cctype>
#include <sstream>
#include <string>

namespace smcp::bench {

struct ResponseHead {
  int status = 0;
  std::size_t length = 0; // Content-Length (0 when absent)
  bool chunked = false;
  bool sse = false; // Content-Type: text/event-stream
  std::string session;
};

// `head`: the response up to, not including, the blank line.
inline ResponseHead parse_response_head(const std::string& head) {
  ResponseHead r;
  r.status = std::stoi(head.substr(9, 3));
  std::istringstream lines(head);
  std::string line;
  while (std::getline(lines, line)) {
    if (!line.empty() && line.back() == '\r') {
      line.pop_back();
    }
    auto colon = line.find(':');
    if (colon == std::string::npos) {
      continue;
    }
    std::string name = line.substr(0, colon);
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    std::string value = line.substr(colon + 2);
    if (name == "content-length") {
      r.length = std::stoul(value);
    } else if (name == "transfer-encoding") {
      r.chunked = value == "chunked";
    } else if (name == "mcp-session-id") {
      r.session = value;
    } else if (name == "content-type") {
      r.sse = value.rfind("text/event-stream", 0) == 0;
    }
  }
  return r;
}

} // namespace smcp::bench
