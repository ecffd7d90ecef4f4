// Internal to transport/ (the Streamable HTTP transport): Boost.Beast's HTTP/1.1 request parser as
// the server configures it, shared by the connections (transport/http/connection.cpp) and by
// http::parse_request (http_request.h). Include only from .cpp files that already use Boost.
#pragma once

#include "transport/http_request.h"

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>

namespace smcp::transport::http {

// A string body that keeps at most `limit` bytes: beyond it the body is counted and discarded, so
// an oversized request can be answered 413 on a connection that stays usable.
struct CappedBody {
  struct value_type {
    std::string data;
    std::uint64_t total = 0;
    std::size_t limit = 0;
    bool oversized = false;
  };

  class reader {
  public:
    template <bool isRequest, class Fields>
    reader(boost::beast::http::header<isRequest, Fields>&, value_type& body) : m_body(body) {}

    // Memory follows the bytes that arrive, not the length a client declares: at most the first
    // 16 KiB are reserved up front (a declared 4 MiB that never comes costs nothing).
    void init(const boost::optional<std::uint64_t>& length, boost::beast::error_code& ec) {
      if (length && *length <= m_body.limit) {
        m_body.data.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(*length, k_reserve_up_front)));
      }
      ec = {};
    }
    static constexpr std::uint64_t k_reserve_up_front = 16 * 1024;

    template <class ConstBufferSequence>
    std::size_t put(const ConstBufferSequence& buffers, boost::beast::error_code& ec) {
      std::size_t n = 0;
      for (auto b : boost::beast::buffers_range_ref(buffers)) {
        n += b.size();
        if (m_body.oversized) {
          continue;
        }
        if (m_body.data.size() + b.size() > m_body.limit) {
          m_body.oversized = true;
          std::string().swap(m_body.data);
        } else {
          m_body.data.append(static_cast<const char*>(b.data()), b.size());
        }
      }
      m_body.total += n;
      ec = {};
      return n;
    }

    void finish(boost::beast::error_code& ec) { ec = {}; }

  private:
    value_type& m_body;
  };
};

using Parser = boost::beast::http::request_parser<CappedBody>;

// Applies the header, drain and body limits.
void configure(Parser& parser, const RequestLimits& limits);

// The answer to a request that could not be read: HTTP status and message.
std::pair<int, std::string> read_error_answer(const boost::beast::error_code& ec, const RequestLimits& limits);

// Copies the request line and headers of a parser whose header is done into `out`.
void fill_head(const Parser& parser, ParsedRequest& out);

// Moves the body of a parser that is done into `out`. The headers are taken by fill_head when the
// head is complete: a chunked body's trailer fields, which Beast adds to the same fields, are never
// part of the request (RFC 9110 section 6.5.1).
void fill_body(Parser& parser, ParsedRequest& out);

// The request asks for "100 Continue" before sending its body.
bool expects_continue(const Parser& parser);

} // namespace smcp::transport::http
