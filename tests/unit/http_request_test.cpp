// The request path's pure functions of the Streamable HTTP transport (transport/http_request.h,
// also driven by tests/fuzz/fuzz_http_request.cpp) and its option helpers.
#include "transport/http_request.h"
#include "transport/http_transport.h"

#include <gtest/gtest.h>

#include <cctype>
#include <string>

namespace smcp::transport {
namespace {

std::string lower_case(std::string s) {
  for (char& c : s) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return s;
}

TEST(HttpRequestTest, ParsesPipelinedRequestsAndRefusesBadOnes) {
  http::RequestLimits limits;
  limits.max_header_bytes = 1024;
  limits.max_body_bytes = 16;
  limits.drain_limit = http::drain_limit_for(16);
  const std::string two = "POST /mcp?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}"
                          "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n";
  auto first = http::parse_request(two, limits);
  ASSERT_EQ(first.outcome, http::ParsedRequest::Outcome::complete);
  EXPECT_EQ(first.method, "POST");
  EXPECT_EQ(http::target_path(first.target), "/mcp");
  EXPECT_EQ(first.body, "{}");
  EXPECT_EQ(first.header("host"), "a");
  auto second = http::parse_request(std::string_view(two).substr(first.consumed), limits);
  ASSERT_EQ(second.outcome, http::ParsedRequest::Outcome::complete);
  EXPECT_EQ(second.method, "GET");
  EXPECT_EQ(second.consumed, two.size() - first.consumed);

  EXPECT_EQ(http::parse_request("POST /mcp HTTP/1.1\r\nHost: a\r\n", limits).outcome,
            http::ParsedRequest::Outcome::incomplete);
  auto status_of = [&](const std::string& bytes) { return http::parse_request(bytes, limits).status; };
  EXPECT_EQ(status_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -5\r\n\r\n"), 400);
  EXPECT_EQ(status_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n"), 400);
  EXPECT_EQ(status_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000000000\r\n\r\n"), 413);
  EXPECT_EQ(status_of("GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(2000, 'a') + "\r\n\r\n"), 431);
  EXPECT_EQ(status_of("\x01\x02 / HTTP/1.1\r\n\r\n"), 400);
  // Over max_body_bytes but within the drain limit: read, discarded, marked.
  auto big =
      http::parse_request("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 20\r\n\r\n" + std::string(20, 'x'), limits);
  ASSERT_EQ(big.outcome, http::ParsedRequest::Outcome::complete);
  EXPECT_TRUE(big.oversized);
  EXPECT_EQ(big.body_bytes, 20u);
  EXPECT_TRUE(big.body.empty());
  auto chunked = http::parse_request(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", limits);
  ASSERT_EQ(chunked.outcome, http::ParsedRequest::Outcome::complete);
  EXPECT_EQ(chunked.body, "{}");
}

// RFC 9112 section 6.1/6.3 framing and RFC 9110/9112 singleton fields: refused on the head, before
// any body byte, so a body is never taken for the next request.
TEST(HttpRequestTest, RefusesAmbiguousFramingAndRepeatedSecurityHeaders) {
  http::RequestLimits limits;
  const std::string body = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}";
  auto refused = [&](const std::string& head_lines, unsigned version = 11) {
    const std::string bytes = "POST /mcp HTTP/1." + std::to_string(version % 10) + "\r\n" + head_lines + "\r\n" + body;
    return http::parse_request(bytes, limits);
  };
  const std::string host = "Host: 127.0.0.1\r\n";
  for (const char* te : {"xchunked", "chunked, identity", "identity", "chunked, chunked", "chunked,", "", "chunkedx"}) {
    SCOPED_TRACE(std::string("Transfer-Encoding: ") + te);
    auto r = refused(host + "Transfer-Encoding: " + te + "\r\n");
    EXPECT_EQ(r.outcome, http::ParsedRequest::Outcome::error);
    EXPECT_EQ(r.status, 400);
    EXPECT_NE(r.error.find("must end in 'chunked'"), std::string::npos) << r.error;
  }
  // Split over two lines: "chunked" then "identity" ends in identity.
  EXPECT_EQ(refused(host + "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n").status, 400);
  auto gzip = refused(host + "Transfer-Encoding: gzip, chunked\r\n");
  EXPECT_EQ(gzip.status, 501) << gzip.error;
  // Beast refuses this one itself (as a bad Content-Length); check_head would too.
  EXPECT_EQ(refused(host + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n").status, 400);
  auto both = http::check_head(11, {{"Host", "a"}, {"Transfer-Encoding", "chunked"}, {"Content-Length", "5"}});
  ASSERT_TRUE(both);
  EXPECT_NE(both->message.find("both Transfer-Encoding and Content-Length"), std::string::npos) << both->message;
  EXPECT_EQ(refused(host + "Transfer-Encoding: chunked\r\n", 10).status, 400) << "HTTP/1.0 with Transfer-Encoding";
  EXPECT_EQ(refused(host + "Content-Length: 5\r\nContent-Length: 5\r\n").status, 400);

  const std::string length = "Content-Length: " + std::to_string(body.size()) + "\r\n";
  auto no_host = refused(length);
  EXPECT_EQ(no_host.status, 400);
  EXPECT_NE(no_host.error.find("must carry a Host"), std::string::npos) << no_host.error;
  EXPECT_EQ(refused(length, 10).outcome, http::ParsedRequest::Outcome::complete) << "HTTP/1.0 may omit Host";
  for (const char* name :
       {"Host", "Origin", "Authorization", "Mcp-Session-Id", "MCP-Protocol-Version", "Last-Event-ID", "Content-Type"}) {
    SCOPED_TRACE(name);
    const std::string twice = std::string(name) + ": a\r\n" + lower_case(name) + ": b\r\n";
    auto r = refused((std::string(name) == "Host" ? "" : host) + twice + length);
    EXPECT_EQ(r.outcome, http::ParsedRequest::Outcome::error);
    EXPECT_EQ(r.status, 400);
    EXPECT_NE(r.error.find("repeated"), std::string::npos) << r.error;
  }
  // The head is judged before the body arrives: a refused head needs no body byte.
  auto early = http::parse_request("POST /mcp HTTP/1.1\r\nHost: a\r\nHost: b\r\nContent-Length: 100\r\n\r\n", limits);
  EXPECT_EQ(early.outcome, http::ParsedRequest::Outcome::error);
  // A well-formed request still parses, chunked and with Content-Length.
  EXPECT_EQ(refused(host + length).outcome, http::ParsedRequest::Outcome::complete);
}

TEST(HttpRequestTest, HeaderChecks) {
  EXPECT_EQ(http::parse_last_event_id("3-14"), std::make_pair(std::uint64_t{3}, std::uint64_t{14}));
  for (const char* bad : {"", "3", "-1", "3-", "a-1", "1-2-3", "99999999999999999999-1"}) {
    EXPECT_FALSE(http::parse_last_event_id(bad)) << bad;
  }
  EXPECT_TRUE(http::plausible_session_id(std::string(48, 'a')));
  EXPECT_FALSE(http::plausible_session_id(std::string(47, 'a')));
  EXPECT_FALSE(http::plausible_session_id(std::string(48, 'A')));
  EXPECT_TRUE(http::host_allowed("localhost:8765", {}, true));
  EXPECT_TRUE(http::host_allowed("[::1]:1", {}, true));
  EXPECT_FALSE(http::host_allowed("evil.example:80", {}, true));
  EXPECT_FALSE(http::host_allowed("localhost:http", {}, true));
  EXPECT_TRUE(http::host_allowed("mcp.internal:443", {"mcp.internal"}, true));
  EXPECT_TRUE(http::host_allowed("anything", {}, false));
  EXPECT_TRUE(http::origin_allowed("http://localhost:5173", {}));
  EXPECT_TRUE(http::origin_allowed("https://app.example.com/", {"https://app.example.com"}));
  for (const char* bad : {"null", "http://localhost:80@evil.example.com", "http://localhost.evil.example.com",
                          "file://localhost", "http://127.0.0.1/path"}) {
    EXPECT_FALSE(http::origin_allowed(bad, {})) << bad;
  }
  EXPECT_EQ(http::bearer_token("Bearer  abc "), "abc");
  EXPECT_EQ(http::bearer_token("bearer abc"), "abc");
  EXPECT_FALSE(http::bearer_token("Basic abc"));
  EXPECT_TRUE(http::constant_time_equal("abc", "abc"));
  EXPECT_FALSE(http::constant_time_equal("abd", "abc"));
  EXPECT_FALSE(http::constant_time_equal("", ""));
  auto a = http::parse_accept(std::string_view("application/json;q=0, text/event-stream"));
  EXPECT_FALSE(a.json);
  EXPECT_TRUE(a.sse);
  auto none = http::parse_accept(std::nullopt);
  EXPECT_TRUE(none.json && none.sse);
  EXPECT_EQ(http::request_ids(R"([{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","method":"n"},)"
                              R"({"jsonrpc":"2.0","id":"x","method":"b","params":{"id":3}}])"),
            (std::vector<std::string>{"1", "\"x\""}));
  EXPECT_EQ(http::response_id(R"({"jsonrpc":"2.0","id":"x","result":{"id":1}})"), "\"x\"");
  EXPECT_FALSE(http::response_id(R"({"jsonrpc":"2.0","method":"notifications/progress","params":{"id":1}})"));
  EXPECT_TRUE(http::is_error_without_id(R"({"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}})"));
  EXPECT_FALSE(http::is_error_without_id(R"({"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"x"}})"));
}

TEST(HttpOptionsTest, ListenAddresses) {
  std::string host;
  int port = -1;
  parse_listen_address("127.0.0.1:8765", host, port);
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_EQ(port, 8765);
  parse_listen_address("[::1]:0", host, port);
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(port, 0);
  parse_listen_address(":9000", host, port);
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_EQ(port, 9000);
  for (const char* bad : {"8765", "localhost:", "host:http", "host:70000", "::1:80", "[::1]80", "[::1"}) {
    EXPECT_THROW(parse_listen_address(bad, host, port), std::invalid_argument) << bad;
  }
}

TEST(HttpOptionsTest, LoopbackAndSafety) {
  for (const char* h : {"127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]", "LOCALHOST"}) {
    EXPECT_TRUE(is_loopback_host(h)) << h;
  }
  for (const char* h : {"0.0.0.0", "::", "192.168.1.5", "localhost.example.com", "127.0.0.1.example.com"}) {
    EXPECT_FALSE(is_loopback_host(h)) << h;
  }
  HttpOptions o;
  EXPECT_EQ(validate_http_options(o), "");
  o.host = "0.0.0.0";
  EXPECT_NE(validate_http_options(o).find("--auth-token-file"), std::string::npos);
  o.bearer_token = "short";
  EXPECT_NE(validate_http_options(o).find("too short"), std::string::npos);
  o.bearer_token = "with space 0123456789";
  EXPECT_NE(validate_http_options(o).find("visible ASCII"), std::string::npos);
  o.bearer_token = "0123456789abcdef";
  EXPECT_EQ(validate_http_options(o), "");
}

} // namespace
} // namespace smcp::transport
