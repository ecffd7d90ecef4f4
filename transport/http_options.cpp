// The free functions of http_transport.h: listen address parsing and option validation.
#include "transport/http_transport.h"

#include "transport/http_request.h"
#include "transport/http/text.h"

#include <stdexcept>
#include <string>

namespace smcp::transport {

bool is_loopback_host(const std::string& host) {
  std::string name = http::lower(host);
  if (name.size() > 2 && name.front() == '[' && name.back() == ']') {
    name = name.substr(1, name.size() - 2);
  }
  return http::is_loopback_name(name);
}

void parse_listen_address(const std::string& spec, std::string& host, int& port) {
  std::string h, p;
  if (!spec.empty() && spec.front() == '[') {
    auto close = spec.find(']');
    if (close == std::string::npos || close + 1 >= spec.size() || spec[close + 1] != ':') {
      throw std::invalid_argument("--http '" + spec + "': expected [IPV6]:PORT, e.g. [::1]:8765");
    }
    h = spec.substr(1, close - 1);
    p = spec.substr(close + 2);
  } else {
    auto colon = spec.rfind(':');
    if (colon == std::string::npos) {
      throw std::invalid_argument("--http '" + spec + "': expected HOST:PORT, e.g. 127.0.0.1:8765");
    }
    h = spec.substr(0, colon);
    p = spec.substr(colon + 1);
    if (h.find(':') != std::string::npos) {
      throw std::invalid_argument("--http '" + spec + "': put IPv6 addresses in brackets, e.g. [::1]:8765");
    }
  }
  if (p.empty() || p.size() > 5 || p.find_first_not_of("0123456789") != std::string::npos || std::stoi(p) > 65535) {
    throw std::invalid_argument("--http '" + spec + "': PORT must be a number from 0 to 65535 (0: any free port)");
  }
  host = h.empty() ? "127.0.0.1" : h;
  port = std::stoi(p);
}

std::string validate_http_options(const HttpOptions& options) {
  if (!is_loopback_host(options.host) && options.bearer_token.empty()) {
    return "refusing to serve HTTP on " + options.host +
           " without authentication: an address beyond loopback needs a bearer token. Put a long random token "
           "in a file and pass --auth-token-file FILE (or set SANDBOX_MCP_HTTP_TOKEN), e.g. `openssl rand -hex 32 "
           "> ~/.config/sandbox-mcp/token`; clients then send 'Authorization: Bearer TOKEN'. Or bind 127.0.0.1.";
  }
  if (!options.bearer_token.empty() && options.bearer_token.size() < 16) {
    return "the bearer token is too short (" + std::to_string(options.bearer_token.size()) +
           " characters); use at least 16 random characters, e.g. `openssl rand -hex 32`";
  }
  for (char c : options.bearer_token) {
    if (c < 0x21 || c > 0x7e) {
      return "the bearer token must be visible ASCII without spaces (as sent in an Authorization header)";
    }
  }
  if (options.max_sessions == 0 || options.max_body_bytes == 0 || options.max_connections < 2) {
    return "--max-sessions and --max-body-bytes must be positive, --max-connections at least 2";
  }
  if (options.path.empty() || options.path.front() != '/') {
    return "the endpoint path must start with '/'";
  }
  if (options.header_timeout.count() <= 0 || options.body_timeout.count() <= 0 || options.write_timeout.count() <= 0) {
    return "the HTTP header, body and write timeouts must be positive";
  }
  return "";
}

} // namespace smcp::transport
