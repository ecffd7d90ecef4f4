// The request parser configuration, and parse_request / drain_limit_for of http_request.h.
#include "transport/http/request_parser.h"

#include "transport/http/text.h"

#include <boost/asio/buffer.hpp>

#include <algorithm>
#include <string_view>

namespace smcp::transport::http {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

namespace {

std::string_view view(beast::string_view s) {
  return {s.data(), s.size()};
}

} // namespace

void configure(Parser& parser, const RequestLimits& limits) {
  parser.header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(limits.max_header_bytes, UINT32_MAX)));
  parser.body_limit(limits.drain_limit);
  parser.get().body().limit = limits.max_body_bytes;
}

std::pair<int, std::string> read_error_answer(const beast::error_code& ec, const RequestLimits& limits) {
  if (ec == bhttp::error::header_limit) {
    return {431, "Request Header Fields Too Large: the request line and headers exceed " +
                     std::to_string(limits.max_header_bytes) + " bytes"};
  }
  if (ec == bhttp::error::body_limit) {
    return {413, "Message too large: the body exceeds the limit of " + std::to_string(limits.max_body_bytes) +
                     " bytes (the server's --max-body-bytes); the connection is closed."};
  }
  if (ec == bhttp::error::bad_content_length) {
    return {400, "Bad Request: invalid Content-Length (it must be a decimal number of bytes)"};
  }
  if (ec == bhttp::error::bad_transfer_encoding) {
    return {400, "Bad Request: invalid Transfer-Encoding (only chunked is supported)"};
  }
  return {400, "Bad Request: malformed HTTP/1.1 request (" + ec.message() + ")"};
}

bool expects_continue(const Parser& parser) {
  return iequals(view(parser.get()[bhttp::field::expect]), "100-continue");
}

void fill_head(const Parser& parser, ParsedRequest& out) {
  const auto& req = parser.get();
  out.method = std::string(req.method_string());
  out.target = std::string(req.target());
  out.headers.clear();
  for (const auto& field : req) {
    out.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  out.version = req.version() == 10 ? 10 : 11;
  out.keep_alive = req.keep_alive();
  out.expect_continue = expects_continue(parser);
}

void fill_body(Parser& parser, ParsedRequest& out) {
  auto& body = parser.get().body();
  out.oversized = body.oversized;
  out.body_bytes = body.total;
  out.body = std::move(body.data);
}

std::size_t drain_limit_for(std::size_t max_body_bytes) {
  return std::max<std::size_t>(2 * max_body_bytes, max_body_bytes + 1024 * 1024);
}

ParsedRequest parse_request(std::string_view bytes, const RequestLimits& limits) {
  ParsedRequest out;
  Parser parser;
  configure(parser, limits);
  std::size_t used = 0;
  beast::error_code ec;
  bool head_checked = false;
  // As the server does: the head is taken and judged as soon as it is complete (the parser stops
  // there, not eager, so that no trailer field can join it), before the body counts.
  parser.eager(false);
  auto head_refused = [&] {
    if (head_checked || !parser.is_header_done()) {
      return false;
    }
    head_checked = true;
    parser.eager(true);
    fill_head(parser, out);
    auto problem = check_head(out.version, out.headers);
    if (!problem) {
      return false;
    }
    out.outcome = ParsedRequest::Outcome::error;
    out.status = problem->status;
    out.error = problem->message;
    return true;
  };
  while (!parser.is_done()) {
    std::size_t n = parser.put(boost::asio::buffer(bytes.data() + used, bytes.size() - used), ec);
    used += n;
    if ((!ec || ec == bhttp::error::need_more) && head_refused()) {
      return out;
    }
    if (ec == bhttp::error::need_more) {
      ec = {};
      if (n == 0 || used >= bytes.size()) {
        out.outcome = ParsedRequest::Outcome::incomplete;
        return out;
      }
      continue;
    }
    if (ec) {
      auto [status, message] = read_error_answer(ec, limits);
      out.outcome = ParsedRequest::Outcome::error;
      out.status = status;
      out.error = message;
      return out;
    }
    if (n == 0) {
      out.outcome = ParsedRequest::Outcome::incomplete;
      return out;
    }
  }
  if (head_refused()) {
    return out;
  }
  fill_body(parser, out);
  out.outcome = ParsedRequest::Outcome::complete;
  out.consumed = used;
  return out;
}

} // namespace smcp::transport::http
