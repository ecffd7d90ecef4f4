// The Streamable HTTP transport's rejections against the real binary: Host and Origin, sessions,
// content types, versions, methods, malformed JSON, oversized bodies (each followed by a request
// that must still be served), bearer tokens, and the refusal to serve beyond loopback without one.
#include "tests/support/http_server_process.h"
#include "tests/support/raw_http.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <string>
#include <unistd.h>
#include <vector>

namespace smcp::testing::http {
namespace {

TEST(HttpTransport, RejectsBadOriginAndHostAndKeepsServing) {
  HttpServerProcess server({"--allow-origin", "https://app.example.com", "--allow-host", "mcp.internal"});
  const int port = server.port();
  const std::string session = open_session(port);

  Response origin = post(port, session, tools_list(), {{"Origin", "http://evil.example.com"}});
  EXPECT_EQ(origin.status, 403);
  EXPECT_NE(origin.error_message().find("Origin"), std::string::npos) << origin.body;
  expect_serving(port, session);

  Response null_origin = post(port, session, tools_list(), {{"Origin", "null"}});
  EXPECT_EQ(null_origin.status, 403);
  EXPECT_EQ(post(port, session, tools_list(), {{"Origin", "http://localhost:80@evil.example.com"}}).status, 403);
  EXPECT_EQ(post(port, session, tools_list(), {{"Origin", "http://localhost.evil.example.com"}}).status, 403);
  expect_serving(port, session);

  // DNS rebinding: a foreign Host (with a matching Origin, as a rebinding page sends) is refused,
  // also for initialize.
  Response host =
      request(port, "POST", mcp_headers("", {{"Host", "evil.example.com"}, {"Origin", "http://evil.example.com"}}),
              initialize_request().dump());
  EXPECT_EQ(host.status, 403);
  EXPECT_FALSE(host.has_header("Mcp-Session-Id"));
  EXPECT_NE(host.error_message().find("Host"), std::string::npos) << host.body;
  Response host_only = post(port, session, tools_list(), {{"Host", "evil.example.com:" + std::to_string(port)}});
  EXPECT_EQ(host_only.status, 403);
  expect_serving(port, session);

  // Allowed: loopback origins on any port, the configured origin, loopback and configured Host names.
  expect_serving(port, session, {{"Origin", "http://localhost:5173"}});
  expect_serving(port, session, {{"Origin", "https://app.example.com"}});
  expect_serving(port, session, {{"Host", "localhost:" + std::to_string(port)}});
  expect_serving(port, session, {{"Host", "[::1]:" + std::to_string(port)}});
  expect_serving(port, session, {{"Host", "mcp.internal"}});
  // An allowed browser origin gets CORS headers, and a preflight is answered.
  Response cors = post(port, session, tools_list(), {{"Origin", "https://app.example.com"}});
  EXPECT_EQ(cors.header("Access-Control-Allow-Origin"), "https://app.example.com");
  EXPECT_NE(cors.header("Access-Control-Expose-Headers").find("Mcp-Session-Id"), std::string::npos);
  Response preflight =
      request(port, "OPTIONS", {{"Origin", "https://app.example.com"}, {"Access-Control-Request-Method", "POST"}});
  EXPECT_EQ(preflight.status, 204);
  EXPECT_NE(preflight.header("Access-Control-Allow-Headers").find("Mcp-Session-Id"), std::string::npos);
  EXPECT_EQ(request(port, "OPTIONS", {{"Origin", "http://evil.example.com"}}).status, 403);
  EXPECT_TRUE(server.alive());
}

TEST(HttpTransport, RejectsMissingAndUnknownSessionsAndKeepsServing) {
  HttpServerProcess server;
  const int port = server.port();
  const std::string session = open_session(port);

  Response missing = request(port, "POST", mcp_headers(), tools_list().dump());
  EXPECT_EQ(missing.status, 400);
  EXPECT_EQ(missing.error_code(), -32000);
  EXPECT_TRUE(missing.json_body()["id"].is_null());
  EXPECT_NE(missing.error_message().find("Mcp-Session-Id header is required"), std::string::npos);
  expect_serving(port, session);

  Response unknown = post(port, "no-such-session-0000", tools_list());
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(unknown.error_code(), -32001);
  expect_serving(port, session);

  EXPECT_EQ(request(port, "GET", {{"Accept", "text/event-stream"}}).status, 400);
  EXPECT_EQ(request(port, "GET", {{"Accept", "text/event-stream"}, {"Mcp-Session-Id", "nope"}}).status, 404);
  EXPECT_EQ(request(port, "DELETE", {}).status, 400);
  EXPECT_EQ(request(port, "DELETE", {{"Mcp-Session-Id", "nope"}}).status, 404);
  expect_serving(port, session);
}

TEST(HttpTransport, RejectsWrongContentTypesVersionsMethodsAndMalformedJson) {
  HttpServerProcess server;
  const int port = server.port();
  const std::string session = open_session(port);

  Response type = post(port, session, tools_list(), {{"Content-Type", "text/plain"}});
  EXPECT_EQ(type.status, 415);
  EXPECT_NE(type.error_message().find("Content-Type must be application/json"), std::string::npos);
  expect_serving(port, session);

  Response accept = post(port, session, tools_list(), {{"Accept", "text/html"}});
  EXPECT_EQ(accept.status, 406);
  expect_serving(port, session);

  Response get_accept = request(port, "GET", {{"Accept", "application/json"}, {"Mcp-Session-Id", session}});
  EXPECT_EQ(get_accept.status, 406);

  Response version = post(port, session, tools_list(), {{"MCP-Protocol-Version", "1999-01-01"}});
  EXPECT_EQ(version.status, 400);
  EXPECT_NE(version.error_message().find("MCP-Protocol-Version"), std::string::npos);
  // Any supported version is accepted on a session (and an absent header means 2025-03-26).
  expect_serving(port, session, {{"MCP-Protocol-Version", "2025-03-26"}});

  Response parse = request(port, "POST", mcp_headers(session), R"({"jsonrpc":"2.0","id":7,"method":)");
  EXPECT_EQ(parse.status, 400);
  EXPECT_EQ(parse.error_code(), -32700);
  Response parse_no_session = request(port, "POST", mcp_headers(), "{not json");
  EXPECT_EQ(parse_no_session.status, 400);
  EXPECT_EQ(parse_no_session.error_code(), -32700);
  // A number beyond a double's range is a parse error too, with or without a session (was 500).
  for (const auto& headers : {mcp_headers(session), mcp_headers()}) {
    Response huge = request(port, "POST", headers, R"({"jsonrpc":"2.0","id":8,"method":"ping","params":{"x":1e400}})");
    EXPECT_EQ(huge.status, 400) << huge.body;
    EXPECT_EQ(huge.error_code(), -32700) << huge.body;
  }
  expect_serving(port, session);

  EXPECT_EQ(request(port, "PUT", mcp_headers(session), "{}").status, 405);
  EXPECT_EQ(request(port, "POST", mcp_headers(session), "{}", "/elsewhere").status, 404);
  EXPECT_EQ(request(port, "GET", {}, "", "/elsewhere").status, 404);
  // Garbage instead of HTTP.
  {
    Connection raw(port);
    raw.send("NOT-A-METHOD", "\x01\x02", {}, "");
    raw.read_response(2s);
  }
  expect_serving(port, session);

  // Unknown methods are JSON-RPC errors, not HTTP errors.
  Response unknown = post(port, session, {{"jsonrpc", "2.0"}, {"id", 9}, {"method", "no/such"}});
  EXPECT_EQ(unknown.status, 200);
  EXPECT_EQ(response_with_id(unknown, 9)["error"]["code"], -32601);
  EXPECT_TRUE(server.alive());
}

TEST(HttpTransport, RefusesOversizedBodiesAndKeepsTheConnectionUsable) {
  HttpServerProcess server({"--max-body-bytes", "4096"});
  const int port = server.port();
  const std::string session = open_session(port);
  json big = tools_call(5, "echo " + std::string(8000, 'x'));

  for (bool chunked : {false, true}) {
    SCOPED_TRACE(chunked ? "chunked" : "content-length");
    Connection c(port);
    c.send("POST", "/mcp", mcp_headers(session), big.dump(), chunked);
    Response r = c.read_response();
    EXPECT_EQ(r.status, 413);
    EXPECT_NE(r.error_message().find("too large"), std::string::npos) << r.body;
    EXPECT_NE(r.error_message().find("4096"), std::string::npos) << r.body;
    // The same connection serves the next request: the oversized body was drained.
    c.send("POST", "/mcp", mcp_headers(session), tools_list(6).dump());
    Response next = c.read_response();
    EXPECT_EQ(next.status, 200);
    EXPECT_TRUE(response_with_id(next, 6).contains("result"));
  }
  // Without a session too (an oversized initialize).
  Response r = request(port, "POST", mcp_headers(), std::string(10000, ' ') + initialize_request().dump());
  EXPECT_EQ(r.status, 413);
  expect_serving(port, session);
}

TEST(HttpTransport, BearerTokenIsRequiredWhenConfigured) {
  const std::string token = "s3cret-token-0123456789abcdef";
  HttpServerProcess server({}, {"SANDBOX_MCP_HTTP_TOKEN=" + token});
  const int port = server.port();

  Response none = request(port, "POST", mcp_headers(), initialize_request().dump());
  EXPECT_EQ(none.status, 401);
  EXPECT_NE(none.header("WWW-Authenticate").find("Bearer"), std::string::npos);
  EXPECT_FALSE(none.has_header("Mcp-Session-Id"));

  std::string same_length_wrong = token;
  same_length_wrong.back() = 'x';
  for (const std::string& wrong : {std::string("nope"), same_length_wrong, token + "x"}) {
    Response bad =
        request(port, "POST", mcp_headers("", {{"Authorization", "Bearer " + wrong}}), initialize_request().dump());
    EXPECT_EQ(bad.status, 401) << wrong;
    EXPECT_NE(bad.header("WWW-Authenticate").find("invalid_token"), std::string::npos);
  }
  Response basic =
      request(port, "POST", mcp_headers("", {{"Authorization", "Basic " + token}}), initialize_request().dump());
  EXPECT_EQ(basic.status, 401);

  const Headers auth = {{"Authorization", "Bearer " + token}};
  const std::string session = open_session(port, "2025-11-25", auth);
  expect_serving(port, session, auth);
  // Every request of the session needs the token, not only initialize.
  EXPECT_EQ(post(port, session, tools_list()).status, 401);
  EXPECT_EQ(request(port, "GET", {{"Accept", "text/event-stream"}, {"Mcp-Session-Id", session}}).status, 401);
  EXPECT_EQ(request(port, "DELETE", {{"Mcp-Session-Id", session}}).status, 401);
  expect_serving(port, session, auth);
  EXPECT_TRUE(server.alive());
}

// The bearer token is the server's own secret: SANDBOX_MCP_HTTP_TOKEN leaves the environment at
// start, so neither a command nor a background job (its supervisor) can print it.
TEST(HttpTransport, TheTokenReachesNoCommandEnvironment) {
  const std::string token = "env-secret-token-0123456789abcdef";
  HttpServerProcess server({}, {"SANDBOX_MCP_HTTP_TOKEN=" + token});
  const int port = server.port();
  const Headers auth = {{"Authorization", "Bearer " + token}};
  const std::string session = open_session(port, "2025-11-25", auth);
  auto call = [&](int id, const json& args) {
    json message = {
        {"jsonrpc", "2.0"},
        {"id", id},
        {"method", "tools/call"},
        {"params", {{"name", args.contains("bash_id") ? "remote_bash_output" : "remote_bash"}, {"arguments", args}}}};
    json m = response_with_id(post(port, session, message, auth), id);
    EXPECT_TRUE(m.contains("result")) << m.dump();
    return m["result"]["structuredContent"];
  };
  json fg = call(3, {{"command", "env"}});
  EXPECT_NE(fg["stdout"].get<std::string>().find("PATH="), std::string::npos) << fg.dump();
  EXPECT_EQ(fg["stdout"].get<std::string>().find(token), std::string::npos) << "a command saw the token";
  EXPECT_EQ(fg["stdout"].get<std::string>().find("SANDBOX_MCP_HTTP_TOKEN"), std::string::npos);
  json bg = call(4, {{"command", "env"}, {"run_in_background", true}});
  std::string output;
  json out = json::object();
  for (int i = 0; i < 20 && out.value("status", "running") == "running"; ++i) {
    out = call(5 + i, {{"bash_id", bg["bash_id"]}, {"wait_ms", 5000}});
    output += out.value("output", "");
  }
  EXPECT_EQ(out["status"], "exited") << out.dump();
  EXPECT_NE(output.find("PATH="), std::string::npos) << output;
  EXPECT_EQ(output.find(token), std::string::npos) << "a background job saw the token";
}

TEST(HttpTransport, TokenFromFile) {
  char tmpl[] = "/tmp/smcp-token.XXXXXX";
  int fd = ::mkstemp(tmpl);
  const std::string token = "file-token-abcdef0123456789";
  ASSERT_EQ(::write(fd, (token + "\n").data(), token.size() + 1), static_cast<ssize_t>(token.size() + 1));
  ::close(fd);
  {
    HttpServerProcess server({"--auth-token-file", tmpl});
    EXPECT_EQ(request(server.port(), "POST", mcp_headers(), initialize_request().dump()).status, 401);
    const Headers auth = {{"Authorization", "Bearer " + token}};
    expect_serving(server.port(), open_session(server.port(), "2025-11-25", auth), auth);
  }
  ::unlink(tmpl);
}

TEST(HttpTransport, RefusesToServeBeyondLoopbackWithoutAToken) {
  HttpServerProcess refused({"--http", "0.0.0.0:0"}, {}, false);
  EXPECT_EQ(refused.wait_exit(10s), 2);
  EXPECT_NE(refused.stderr_text().find("--auth-token-file"), std::string::npos) << refused.stderr_text();

  HttpServerProcess short_token({"--http", "0.0.0.0:0"}, {"SANDBOX_MCP_HTTP_TOKEN=short"}, false);
  EXPECT_EQ(short_token.wait_exit(10s), 2);
  EXPECT_NE(short_token.stderr_text().find("too short"), std::string::npos) << short_token.stderr_text();

  // With a token it serves on all addresses; every request needs the token, and any Host name is
  // accepted (no --allow-host given: the token is the protection).
  const std::string token = "wide-open-token-0123456789abcdef";
  HttpServerProcess server({"--http", "0.0.0.0:0"}, {"SANDBOX_MCP_HTTP_TOKEN=" + token});
  const int port = server.port();
  EXPECT_EQ(request(port, "POST", mcp_headers(), initialize_request().dump()).status, 401);
  const Headers auth = {{"Authorization", "Bearer " + token}, {"Host", "gpu-box.example:" + std::to_string(port)}};
  expect_serving(port, open_session(port, "2025-11-25", auth), auth);
}

} // namespace
} // namespace smcp::testing::http
