// The HTTP front before authentication, against the real binary and raw sockets: admission is
// decided on the head (no body byte buffered, no "100 Continue", no memory reserved for a client
// that is refused), request framing that RFC 9112 makes an error (a Transfer-Encoding not ending
// in chunked would let a body pass as a second request), and repeated security headers.
#include "tests/support/http_server_process.h"
#include "tests/support/process_stats.h"
#include "tests/support/raw_http.h"

#include <gtest/gtest.h>

#include <memory>
#include <sstream>
#include <thread>
#include <string>
#include <vector>

namespace smcp::testing::http {
namespace {

const std::string k_token = "front-token-0123456789abcdef";

std::string post_head(std::size_t length, const std::string& extra = "") {
  return "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
         "Accept: application/json, text/event-stream\r\nContent-Length: " +
         std::to_string(length) + "\r\n" + extra + "\r\n";
}

// A client without the token that announces a 4 MiB body is refused on its head: 401 comes before
// any "100 Continue" and without waiting for the body, and the connection closes.
TEST(HttpFront, UnauthenticatedBodiesAreRefusedOnTheirHead) {
  HttpServerProcess server({}, {"SANDBOX_MCP_HTTP_TOKEN=" + k_token});
  const int port = server.port();
  {
    Connection c(port);
    ASSERT_TRUE(c.send_raw(post_head(4 << 20, "Expect: 100-continue\r\n")));
    Response r = c.read_head(3s);
    EXPECT_EQ(r.status, 401) << "the answer to an unauthenticated head, not 100 Continue";
    EXPECT_TRUE(c.closed_by_peer(4s)) << "the connection closes after the refusal";
  }
  {
    // The body is started and stalls: the refusal does not wait for it (nor for the 30 s body
    // deadline).
    Connection c(port);
    ASSERT_TRUE(c.send_raw(post_head(4 << 20) + std::string(64 * 1024, 'x')));
    Response r = c.read_head(3s);
    EXPECT_EQ(r.status, 401);
    EXPECT_NE(r.header("WWW-Authenticate").find("Bearer"), std::string::npos);
  }
  {
    // A wrong Host or Origin, a wrong path or method: all decided on the head too.
    for (const auto& [head, status] : std::vector<std::pair<std::string, int>>{
             {"POST /mcp HTTP/1.1\r\nHost: evil.example\r\nContent-Length: 4194304\r\n\r\n", 403},
             {"POST /other HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4194304\r\n\r\n", 404},
             {"PUT /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + k_token +
                  "\r\nContent-Length: 4194304\r\n\r\n",
              405}}) {
      SCOPED_TRACE(head.substr(0, head.find('\r')));
      Connection c(port);
      ASSERT_TRUE(c.send_raw(head + "{"));
      EXPECT_EQ(c.read_head(3s).status, status);
    }
  }
  // The two requests answered without a token take no body, so none is buffered for them.
  for (const std::string method_path : {"OPTIONS /mcp", "GET /healthz"}) {
    SCOPED_TRACE(method_path);
    Connection c(port);
    ASSERT_TRUE(c.send_raw(method_path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4194304\r\n\r\n{"));
    Response r = c.read_response(3s);
    EXPECT_EQ(r.status, 400);
    EXPECT_NE(r.error_message().find("takes no request body"), std::string::npos) << r.body;
  }
  // With the token the same head is read as before: 100 Continue, then the body.
  Connection c(port);
  const std::string body = initialize_request().dump();
  ASSERT_TRUE(c.send_raw(post_head(body.size(), "Expect: 100-continue\r\nAuthorization: Bearer " + k_token + "\r\n")));
  EXPECT_EQ(c.read_head(3s).status, 100);
  ASSERT_TRUE(c.send_raw(body));
  EXPECT_EQ(c.read_response(5s).status, 200);
}

// Unauthenticated clients that each send 4 MB of a 4 MiB body and stall pin no memory: the server
// refuses them on the head and drains the rest into a fixed buffer. (Before: RSS grew by the sum of
// the bodies, 60 x 4 MB = 240 MB.) An authenticated client is served meanwhile.
TEST(HttpFront, StalledUnauthenticatedBodiesPinNoMemory) {
  HttpServerProcess server({}, {"SANDBOX_MCP_HTTP_TOKEN=" + k_token});
  const int port = server.port();
  const Headers auth = {{"Authorization", "Bearer " + k_token}};
  const std::string session = open_session(port, "2025-11-25", auth);
  const long before_kb = bench::status_field(server.pid(), "VmHWM:");
  ASSERT_GT(before_kb, 0);
  const std::string attack = post_head(4 << 20) + std::string(4'000'000, 'x');
  std::vector<std::unique_ptr<Connection>> stalled;
  for (int i = 0; i < 60; ++i) {
    stalled.push_back(std::make_unique<Connection>(port));
    stalled.back()->send_raw(attack); // may fail once the server has closed: it refused already
  }
  expect_serving(port, session, auth);
  const long after_kb = bench::status_field(server.pid(), "VmHWM:");
  EXPECT_LT(after_kb - before_kb, 32 * 1024)
      << "peak RSS grew from " << before_kb << " KiB to " << after_kb << " KiB for 60 refused 4 MB bodies";
  for (auto& c : stalled) {
    EXPECT_EQ(c->read_head(3s).status, 401);
  }
}

// Refused clients that keep their connection open (the server drains what they send for 2 s) give
// way at --max-connections: an authenticated client gets in at once, not 503.
TEST(HttpFront, RefusedConnectionsGiveWayAtTheConnectionLimit) {
  HttpServerProcess server({"--max-connections", "8"}, {"SANDBOX_MCP_HTTP_TOKEN=" + k_token});
  const int port = server.port();
  std::vector<std::unique_ptr<Connection>> refused;
  for (int i = 0; i < 8; ++i) {
    refused.push_back(std::make_unique<Connection>(port));
    ASSERT_TRUE(refused.back()->send_raw(post_head(4 << 20) + "{"));
    EXPECT_EQ(refused.back()->read_head(3s).status, 401);
  }
  const Headers auth = {{"Authorization", "Bearer " + k_token}};
  Connection c(port);
  c.send("POST", "/mcp", mcp_headers("", auth), initialize_request().dump());
  EXPECT_EQ(c.read_response(3s).status, 200) << "8 refused connections still draining held every slot";
}

// An upload whose head carried the valid token is never the connection closed to make room for
// clients without one, however long it has been waiting for its body.
TEST(HttpFront, AnAuthenticatedUploadIsNotEvictedForUnauthenticatedConnections) {
  HttpServerProcess server({"--max-connections", "8"}, {"SANDBOX_MCP_HTTP_TOKEN=" + k_token});
  const int port = server.port();
  const std::string body = initialize_request().dump();
  Connection upload(port);
  ASSERT_TRUE(
      upload.send_raw(post_head(body.size(), "Authorization: Bearer " + k_token + "\r\n") + body.substr(0, 10)));
  std::this_thread::sleep_for(300ms); // the oldest waiting connection from now on
  std::vector<std::unique_ptr<Connection>> others;
  for (int i = 0; i < 12; ++i) {
    others.push_back(std::make_unique<Connection>(port));
    others.back()->send_raw("GET /mcp HTTP/1.1\r\nX: ");
  }
  std::this_thread::sleep_for(300ms);
  ASSERT_TRUE(upload.send_raw(body.substr(10)));
  EXPECT_EQ(upload.read_response(3s).status, 200) << "the authenticated upload was closed for others";
}

// Trailer fields of a chunked body are not request headers (RFC 9110 section 6.5.1): an
// Mcp-Session-Id, Origin or Content-Type there is ignored.
TEST(HttpFront, ChunkedTrailersAreNotHeaders) {
  HttpServerProcess server;
  const int port = server.port();
  const std::string body = tools_list(7).dump();
  std::ostringstream chunk;
  chunk << std::hex << body.size();
  Connection c(port);
  ASSERT_TRUE(c.send_raw("POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                         "Accept: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" +
                         chunk.str() + "\r\n" + body + "\r\n0\r\nMcp-Session-Id: " + std::string(48, 'a') +
                         "\r\nOrigin: http://evil.example\r\n\r\n"));
  Response r = c.read_response(3s);
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(r.error_message().find("Mcp-Session-Id header is required"), std::string::npos)
      << "the trailer's session id or Origin was taken as a header: " << r.body;
}

// A client without the token gets one answer per connection: pipelined refused requests are not
// answered one by one (a client that does not read would hold the connection while they pile up).
TEST(HttpFront, ARefusedRequestEndsItsConnection) {
  HttpServerProcess server({}, {"SANDBOX_MCP_HTTP_TOKEN=" + k_token});
  const int port = server.port();
  Connection c(port);
  std::string pipelined;
  for (int i = 0; i < 3; ++i) {
    pipelined += "GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n";
  }
  ASSERT_TRUE(c.send_raw(pipelined));
  Response first = c.read_response(3s);
  EXPECT_EQ(first.status, 401);
  EXPECT_EQ(first.header("Connection"), "close");
  EXPECT_EQ(c.read_response(2s).status, 0) << "a second refused request was answered on the same connection";
}

// After a refusal the server reads and drops what the client still sends for at most 2 s and
// 1 MiB, then closes: a client streaming without end costs no more.
TEST(HttpFront, DrainingAfterARefusalIsBounded) {
  HttpServerProcess server({}, {"SANDBOX_MCP_HTTP_TOKEN=" + k_token});
  Connection c(server.port());
  ASSERT_TRUE(c.send_raw(post_head(4 << 20)));
  EXPECT_EQ(c.read_head(3s).status, 401);
  bool all_sent = true;
  const std::string block(1 << 20, 'x');
  for (int i = 0; i < 64 && all_sent; ++i) {
    all_sent = c.send_raw(block);
  }
  EXPECT_FALSE(all_sent) << "the server read 64 MiB after refusing the request";
}

// HEAD is answered without a body (RFC 9110 section 9.3.2), so the next answer on the connection
// is read as the answer it is; HEAD /healthz works like GET /healthz.
TEST(HttpFront, HeadAnswersCarryNoBody) {
  HttpServerProcess server;
  Connection c(server.port());
  ASSERT_TRUE(c.send_raw("HEAD /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                         "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
  Response head = c.read_head(3s);
  EXPECT_EQ(head.status, 200);
  EXPECT_NE(head.header("Content-Length"), "0");
  Response get = c.read_response(3s);
  EXPECT_EQ(get.status, 200) << "the HEAD answer's body was read as the next answer";
  EXPECT_EQ(get.json_body().value("status", ""), "ok") << get.body;
}

// A head of thousands of tiny fields (16,000 fit in the 64 KiB limit) is refused by its number of
// lines before the parser makes a field of each: clients without the token held about 1.3 MB each
// that way. HEAD refusals carry no body either.
TEST(HttpFront, AHeadOfTooManyLinesIsRefusedBeforeItIsParsed) {
  HttpServerProcess server({}, {"SANDBOX_MCP_HTTP_TOKEN=" + k_token});
  const int port = server.port();
  std::string lines;
  for (int i = 0; i < 16000; ++i) {
    lines += "a:\r\n";
  }
  Connection c(port);
  ASSERT_TRUE(c.send_raw("POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n" + lines + "\r\n"));
  Response r = c.read_response(3s);
  EXPECT_EQ(r.status, 431);
  EXPECT_NE(r.error_message().find("header lines"), std::string::npos) << r.body;
  // 150 fields are fine.
  std::string some;
  for (int i = 0; i < 150; ++i) {
    some += "X-F" + std::to_string(i) + ": 1\r\n";
  }
  Connection ok(port);
  ASSERT_TRUE(ok.send_raw("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + some + "\r\n"));
  EXPECT_EQ(ok.read_response(3s).status, 200);
  // A HEAD refused on its head: no body after the answer's head.
  Connection head(port);
  ASSERT_TRUE(head.send_raw("HEAD /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: 127.0.0.1\r\n\r\n"));
  Response refused = head.read_head(3s);
  EXPECT_EQ(refused.status, 400);
  std::string body;
  head.read_body_until(
      body, [](const std::string&) { return false; }, 3s);
  EXPECT_EQ(body, "") << "a body after the answer to HEAD";
}

// RFC 9112 section 6.3: a Transfer-Encoding that does not end in chunked is 400 and close, so the
// bytes after the head are never parsed as another request (request smuggling).
TEST(HttpFront, TransferEncodingNotEndingInChunkedIsRefusedAndTheBodyNeverParsed) {
  HttpServerProcess server;
  const int port = server.port();
  const std::string smuggled = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  for (const char* te : {"xchunked", "chunked, identity", "identity"}) {
    SCOPED_TRACE(std::string("Transfer-Encoding: ") + te);
    Connection c(port);
    ASSERT_TRUE(c.send_raw("POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                           "Transfer-Encoding: " +
                           std::string(te) + "\r\n\r\n" + smuggled));
    Response r = c.read_response(3s);
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_NE(r.error_message().find("must end in 'chunked'"), std::string::npos) << r.body;
    EXPECT_EQ(r.header("Connection"), "close");
    Response second = c.read_response(2s);
    EXPECT_EQ(second.status, 0) << "the body was answered as a second request: " << second.body;
  }
  Connection gzip(port);
  ASSERT_TRUE(gzip.send_raw("POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"));
  EXPECT_EQ(gzip.read_response(3s).status, 501);
  expect_serving(port, open_session(port));
}

// A repeated Host (RFC 9112 section 3.2), Origin, Authorization or Mcp-Session-Id is 400: the
// first one no longer wins unchecked (a valid token beside a second Authorization, a loopback Host
// beside another name).
TEST(HttpFront, RepeatedSecurityHeadersAreRefused) {
  HttpServerProcess server({}, {"SANDBOX_MCP_HTTP_TOKEN=" + k_token});
  const int port = server.port();
  const Headers auth = {{"Authorization", "Bearer " + k_token}};
  const std::string session = open_session(port, "2025-11-25", auth);
  const std::string body = tools_list(5).dump();
  const std::string common = "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
                             "Content-Length: " +
                             std::to_string(body.size()) + "\r\n";
  const std::string token_line = "Authorization: Bearer " + k_token + "\r\n";
  const std::string session_line = "Mcp-Session-Id: " + session + "\r\n";
  const std::string host_line = "Host: 127.0.0.1\r\n";
  for (const auto& [what, head] : std::vector<std::pair<std::string, std::string>>{
           {"Host", host_line + "Host: evil.example\r\n" + token_line + session_line},
           {"Authorization", host_line + token_line + "Authorization: Bearer other\r\n" + session_line},
           {"Mcp-Session-Id",
            host_line + token_line + session_line + "Mcp-Session-Id: " + std::string(48, 'f') + "\r\n"},
           {"Origin",
            host_line + token_line + session_line + "Origin: http://localhost\r\nOrigin: http://evil.example\r\n"},
           {"no Host", token_line + session_line}}) {
    SCOPED_TRACE(what);
    Connection c(port);
    ASSERT_TRUE(c.send_raw("POST /mcp HTTP/1.1\r\n" + head + common + "\r\n" + body));
    Response r = c.read_response(3s);
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_NE(r.error_message().find(what == "no Host" ? "must carry a Host" : what + " header is repeated"),
              std::string::npos)
        << r.body;
  }
  expect_serving(port, session, auth);
}

} // namespace
} // namespace smcp::testing::http
