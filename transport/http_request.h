// The request side of the Streamable HTTP transport as pure functions: HTTP/1.1 request parsing
// (the very parser and limits the server reads sockets with) and every check a request header goes
// through (Accept, Content-Type, Host, Origin, bearer token, MCP-Protocol-Version, Mcp-Session-Id,
// Last-Event-ID, the kind of a session-less body). No I/O, no state: unit tests and the libFuzzer
// target (tests/fuzz/fuzz_http_request.cpp) call them directly. Implemented in http_checks.cpp (the
// header checks), http/request_parser.cpp (parsing, with Boost.Beast) and http/jsonrpc.cpp (bodies).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace smcp::transport::http {

// Limits applied while a request is read.
struct RequestLimits {
  std::size_t max_header_bytes = 64 * 1024; // request line + headers; beyond: 431
  std::size_t max_body_bytes = 4 * 1024 * 1024;
  // A body over max_body_bytes but below this is read and discarded (the connection stays usable
  // after the 413); a declared or received body beyond it is answered 413 at once and the
  // connection closed.
  std::size_t drain_limit = 8 * 1024 * 1024;
};

// The drain limit the server uses for a given body limit.
std::size_t drain_limit_for(std::size_t max_body_bytes);

struct ParsedRequest {
  enum class Outcome {
    complete,   // a whole request was parsed; `consumed` bytes of the input belong to it
    incomplete, // more bytes are needed
    error,      // the request is malformed or over a limit: answer `status` and close
  };
  Outcome outcome = Outcome::incomplete;
  int status = 0;    // for errors: 400, 413, 431, 501
  std::string error; // for errors: what was wrong, for the client
  std::string method;
  std::string target;
  std::vector<std::pair<std::string, std::string>> headers; // as received
  std::string body;                                         // empty when oversized
  std::uint64_t body_bytes = 0;                             // as received (also when oversized)
  bool oversized = false;                                   // body over max_body_bytes (answer 413)
  bool keep_alive = true;
  bool expect_continue = false; // the client waits for "100 Continue" before sending the body
  unsigned version = 11;        // HTTP/1.0 or 1.1: 10 or 11
  std::size_t consumed = 0;

  // First value of a header (case-insensitive name); "" when absent.
  std::string header(std::string_view name) const;
  bool has_header(std::string_view name) const;
};

// Parses one request from the front of `bytes` (pipelined requests follow at `consumed`).
ParsedRequest parse_request(std::string_view bytes, const RequestLimits& limits);

// What makes a request's head unacceptable whatever its endpoint, checked before any byte of its
// body is read: framing RFC 9112 §6.1 and §6.3 call an error (a Transfer-Encoding that does not end
// in `chunked` or repeats it, any coding but `chunked` (501), Transfer-Encoding in HTTP/1.0 or
// beside Content-Length, Content-Length repeated), a missing (HTTP/1.1) or repeated Host (RFC 9112
// §3.2), and a repeated Origin, Authorization, Mcp-Session-Id, MCP-Protocol-Version,
// Last-Event-ID or Content-Type (the first would otherwise win unchecked). The answer is `status`
// and the connection closes.
struct HeadProblem {
  int status = 400;
  std::string message;
};
std::optional<HeadProblem> check_head(unsigned version,
                                      const std::vector<std::pair<std::string, std::string>>& headers);

// The path of a request target ("/mcp?x=1" -> "/mcp"); "" when the target is not origin-form.
std::string target_path(std::string_view target);

// Which of the two answer formats an Accept header allows (RFC 9110 media ranges; q=0
// excludes). A request without Accept accepts both.
struct Accepts {
  bool json = false;
  bool sse = false;
};
Accepts parse_accept(std::optional<std::string_view> header);

// Content-Type is application/json (parameters such as charset allowed).
bool is_json_content_type(std::string_view content_type);

// The name part of a Host header or of an origin's authority ("name[:port]"), lower-cased; IPv6
// keeps its brackets. Empty when malformed (e.g. a port that is not a number).
std::string authority_name(std::string_view authority);

// 127.0.0.0/8 as a dotted quad, localhost, [::1].
bool is_loopback_name(std::string_view name);

// DNS-rebinding protection: a loopback name, a name in `allowed` (lower-case, with or without
// ":port"), or any name when bound beyond loopback without an allow-list.
bool host_allowed(std::string_view host, const std::set<std::string>& allowed, bool bound_to_loopback);

// An Origin header is a loopback http(s) origin or one of `allowed` (lower-case, no trailing '/').
bool origin_allowed(std::string_view origin, const std::set<std::string>& allowed);

// Compares a presented secret with the expected one in time that depends only on the presented
// value's length. An empty `expected` matches nothing.
bool constant_time_equal(std::string_view presented, std::string_view expected);

// The token of an "Authorization: Bearer TOKEN" header; nullopt for another scheme or none.
std::optional<std::string> bearer_token(std::string_view authorization);

// A YYYY-MM-DD protocol version.
bool looks_like_version(std::string_view version);

// Session ids this server issues are this many random bytes as lower-case hex digits (48).
inline constexpr std::size_t session_id_bytes = 24;
// Whether `id` has that form; anything else is unknown at once.
bool plausible_session_id(std::string_view id);

// "STREAM-SEQ" event ids; nullopt when malformed.
std::optional<std::pair<std::uint64_t, std::uint64_t>> parse_last_event_id(std::string_view id);

// What a session-less POST body is: only an initialize request may create a session.
enum class BodyKind { initialize, parse_error, other };
BodyKind classify_body(std::string_view body, std::string& parse_message);

// The ids of the requests in a JSON-RPC message or batch (responses and notifications have none);
// each id serialized as JSON. Top level only; bounded.
std::vector<std::string> request_ids(std::string_view body);

// The id (serialized) of a JSON-RPC response; nullopt for requests and notifications.
std::optional<std::string> response_id(std::string_view message);

// A JSON-RPC error answering no request id (parse error, invalid request): HTTP 400.
bool is_error_without_id(std::string_view message);

} // namespace smcp::transport::http
