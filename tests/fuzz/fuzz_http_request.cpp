// libFuzzer target for the Streamable HTTP request path: the bytes a client sends are parsed by the
// server's own HTTP/1.1 parser configuration (pipelined requests one after the other, tight limits so
// that the 413/431 paths are reached), and every header of each parsed request goes through the
// checks the server applies: Accept, Content-Type, Host and Origin (with and without allow-lists),
// the bearer token, MCP-Protocol-Version, Mcp-Session-Id, Last-Event-ID; the body through the
// session-less classification and the request/response id extraction. The head checks (framing:
// Transfer-Encoding, Content-Length; repeated or missing Host; repeated Origin, Authorization,
// Mcp-Session-Id, ...) run inside parse_request as in the server: a request that comes out complete
// must pass them, and a refusal is 400 or 501. Nothing may crash, hang, or read out of bounds; a
// complete request must consume at least one byte.
//   links: smcp_transport (http_checks.cpp, http/request_parser.cpp and http/jsonrpc.cpp implement
//   transport/http_request.h)
#include "transport/http_request.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>

namespace http = smcp::transport::http;

namespace {

void check_headers(const http::ParsedRequest& r) {
  static const std::set<std::string> no_names;
  static const std::set<std::string> names = {"mcp.internal", "proxy.example:8443"};
  static const std::set<std::string> origins = {"https://app.example.com"};
  (void)http::target_path(r.target);
  for (const auto& [name, value] : r.headers) {
    (void)http::parse_accept(std::string_view(value));
    (void)http::is_json_content_type(value);
    (void)http::authority_name(value);
    (void)http::host_allowed(value, no_names, true);
    (void)http::host_allowed(value, names, true);
    (void)http::host_allowed(value, no_names, false);
    (void)http::origin_allowed(value, no_names);
    (void)http::origin_allowed(value, origins);
    if (auto token = http::bearer_token(value)) {
      (void)http::constant_time_equal(*token, "0123456789abcdef0123456789abcdef");
    }
    (void)http::looks_like_version(value);
    (void)http::plausible_session_id(value);
    if (auto id = http::parse_last_event_id(value); id && id->first > 999999999999999999ULL) {
      std::abort(); // at most 18 digits are accepted
    }
  }
  if (http::check_head(r.version, r.headers)) {
    std::abort(); // parse_request let through a head the server refuses
  }
  (void)http::check_head(r.version == 10 ? 11 : 10, r.headers);
  (void)r.header("Host");
  (void)r.has_header("Last-Event-ID");
  if (r.body.size() <= 64 * 1024) {
    std::string message;
    (void)http::classify_body(r.body, message);
    (void)http::request_ids(r.body);
    (void)http::response_id(r.body);
    (void)http::is_error_without_id(r.body);
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  http::RequestLimits limits;
  limits.max_header_bytes = 4096;
  limits.max_body_bytes = 1024;
  limits.drain_limit = http::drain_limit_for(limits.max_body_bytes);
  for (int requests = 0; !input.empty() && requests < 64; ++requests) {
    http::ParsedRequest r = http::parse_request(input, limits);
    if (r.outcome == http::ParsedRequest::Outcome::error) {
      if (r.status != 400 && r.status != 413 && r.status != 431 && r.status != 501) {
        std::abort();
      }
      break;
    }
    if (r.outcome != http::ParsedRequest::Outcome::complete) {
      break;
    }
    if (r.consumed == 0 || r.consumed > input.size()) {
      std::abort();
    }
    if (!r.oversized && r.body.size() != r.body_bytes) {
      std::abort();
    }
    check_headers(r);
    input.remove_prefix(r.consumed);
  }
  return 0;
}
