// The Streamable HTTP transport against the real binary (`sandbox-mcp serve --http 127.0.0.1:0`),
// driven with raw HTTP/1.1 over loopback sockets so that every header (Host, Origin, Accept, ...)
// is under the test's control: the session lifecycle, every rejection (each followed by a request
// that must still be served), bearer tokens, limits, idle expiry, concurrent sessions with a long
// tool call, progress over SSE and resumption with Last-Event-ID.
#include "tests/support/raw_http.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <csignal>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace smcp::http_test {
namespace {

using namespace smcp::testing::http;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// ------------------------------------------------------------------ the server process

class ServerProcess {
public:
  // `args` follow `serve`; --http 127.0.0.1:0 and a fresh --state-dir are added unless given.
  explicit ServerProcess(std::vector<std::string> args = {}, std::vector<std::string> env = {}, bool wait = true) {
    char tmpl[] = "/tmp/smcp-http-test.XXXXXX";
    m_dir = ::mkdtemp(tmpl);
    std::vector<std::string> argv = {SMCP_BINARY, "serve", "--state-dir", m_dir + "/state", "--log-level", "debug"};
    if (std::find(args.begin(), args.end(), "--http") == args.end()) {
      argv.insert(argv.end(), {"--http", "127.0.0.1:0"});
    }
    argv.insert(argv.end(), args.begin(), args.end());
    m_pid = ::fork();
    if (m_pid == 0) {
      int err = ::open((m_dir + "/stderr").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      int out = ::open((m_dir + "/stdout").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      int in = ::open("/dev/null", O_RDONLY);
      ::dup2(in, 0);
      ::dup2(out, 1);
      ::dup2(err, 2);
      ::unsetenv("SANDBOX_MCP_HTTP_TOKEN");
      for (const auto& e : env) {
        ::putenv(const_cast<char*>(e.c_str()));
      }
      std::vector<char*> cargv;
      for (auto& a : argv) {
        cargv.push_back(a.data());
      }
      cargv.push_back(nullptr);
      ::execv(SMCP_BINARY, cargv.data());
      ::_exit(127);
    }
    if (!wait) {
      return;
    }
    const std::regex listening("listening on http://[^ ]*:([0-9]+)/mcp");
    auto deadline = Clock::now() + k_timeout;
    while (Clock::now() < deadline) {
      std::smatch m;
      std::string log = stderr_text();
      if (std::regex_search(log, m, listening)) {
        m_port = std::stoi(m[1]);
        return;
      }
      if (!alive()) {
        break;
      }
      std::this_thread::sleep_for(20ms);
    }
    ADD_FAILURE() << "server did not start; stderr:\n" << stderr_text();
  }

  ~ServerProcess() {
    if (m_pid > 0 && alive()) {
      ::kill(m_pid, SIGTERM);
      wait_exit(10s);
      if (alive()) {
        ::kill(m_pid, SIGKILL);
      }
    }
    if (m_pid > 0 && m_exit_code < 0) {
      int status = 0;
      ::waitpid(m_pid, &status, 0);
    }
    std::error_code ec;
    std::filesystem::remove_all(m_dir, ec);
  }

  int port() const { return m_port; }
  std::string stderr_text() const { return read_file(m_dir + "/stderr"); }
  std::string stdout_text() const { return read_file(m_dir + "/stdout"); }
  const std::string& dir() const { return m_dir; }

  bool alive() {
    if (m_exit_code >= 0) {
      return false;
    }
    int status = 0;
    pid_t r = ::waitpid(m_pid, &status, WNOHANG);
    if (r == m_pid) {
      m_exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      return false;
    }
    return true;
  }

  // SIGTERM, then the exit code (-1 if still running after `timeout`).
  int terminate(std::chrono::milliseconds timeout) {
    if (alive()) {
      ::kill(m_pid, SIGTERM);
    }
    return wait_exit(timeout);
  }

  // Exit code, or -1 if still running after `timeout`.
  int wait_exit(std::chrono::milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    while (alive() && Clock::now() < deadline) {
      std::this_thread::sleep_for(20ms);
    }
    return m_exit_code;
  }

private:
  std::string m_dir;
  pid_t m_pid = -1;
  int m_port = 0;
  int m_exit_code = -1;
};

// ------------------------------------------------------------------ tests

TEST(HttpTransport, SessionLifecycleInitializeListCallDelete) {
  ServerProcess server;
  const int port = server.port();

  Response init = request(port, "POST", mcp_headers(), initialize_request().dump());
  ASSERT_EQ(init.status, 200) << init.body;
  EXPECT_NE(init.header("Content-Type").find("application/json"), std::string::npos);
  const std::string session = init.header("Mcp-Session-Id");
  ASSERT_GE(session.size(), 32u) << "session ids carry at least 128 random bits";
  EXPECT_TRUE(std::regex_match(session, std::regex("[\\x21-\\x7e]+"))) << session;
  json result = response_with_id(init, 1)["result"];
  EXPECT_EQ(result["protocolVersion"], "2025-11-25");
  EXPECT_TRUE(result["capabilities"].contains("tools"));

  // A second session gets another id.
  EXPECT_NE(open_session(port), session);

  // Notification -> 202 without a body.
  Response note = post(port, session, {{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}});
  EXPECT_EQ(note.status, 202);
  EXPECT_TRUE(note.body.empty());

  // tools/list -> JSON.
  Response list = post(port, session, tools_list(2));
  ASSERT_EQ(list.status, 200);
  EXPECT_NE(list.header("Content-Type").find("application/json"), std::string::npos);
  bool has_remote_bash = false;
  const json tools = response_with_id(list, 2)["result"]["tools"];
  for (const auto& t : tools) {
    has_remote_bash = has_remote_bash || t["name"] == "remote_bash";
  }
  EXPECT_TRUE(has_remote_bash);

  // tools/call -> an SSE stream: a priming event (id, no data), then the response.
  Response call = post(port, session, tools_call(3, "echo hi"));
  ASSERT_EQ(call.status, 200) << call.body;
  EXPECT_EQ(call.header("Content-Type"), "text/event-stream");
  auto events = parse_sse(call.body);
  ASSERT_GE(events.size(), 2u) << call.body;
  EXPECT_FALSE(events.front().id.empty());
  EXPECT_TRUE(events.front().data.empty()) << "priming event first";
  json answer = response_with_id(call, 3);
  EXPECT_EQ(answer["result"]["structuredContent"]["stdout"], "hi\n") << call.body;
  EXPECT_EQ(answer["result"]["structuredContent"]["exit_code"], 0);

  // A client that accepts only JSON gets the tool result as JSON.
  Response json_call = post(port, session, tools_call(4, "echo json"), {{"Accept", "application/json"}});
  ASSERT_EQ(json_call.status, 200);
  EXPECT_NE(json_call.header("Content-Type").find("application/json"), std::string::npos);
  EXPECT_EQ(response_with_id(json_call, 4)["result"]["structuredContent"]["stdout"], "json\n");

  // DELETE ends the session: everything after is 404.
  Response del = request(port, "DELETE", {{"Mcp-Session-Id", session}});
  EXPECT_EQ(del.status, 200);
  Response after = post(port, session, tools_list(5));
  EXPECT_EQ(after.status, 404);
  EXPECT_EQ(after.error_code(), -32001);
  EXPECT_EQ(request(port, "GET", {{"Accept", "text/event-stream"}, {"Mcp-Session-Id", session}}).status, 404);
  EXPECT_EQ(request(port, "DELETE", {{"Mcp-Session-Id", session}}).status, 404);

  EXPECT_TRUE(server.alive());
  EXPECT_TRUE(server.stdout_text().empty()) << "nothing but protocol on stdout, and HTTP has none";
}

TEST(HttpTransport, HealthzAnswersWithoutAuthentication) {
  ServerProcess server({}, {"SANDBOX_MCP_HTTP_TOKEN=0123456789abcdef0123456789abcdef"});
  Response r = request(server.port(), "GET", {}, "", "/healthz");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.json_body(), json({{"status", "ok"}}));
}

TEST(HttpTransport, RejectsBadOriginAndHostAndKeepsServing) {
  ServerProcess server({"--allow-origin", "https://app.example.com", "--allow-host", "mcp.internal"});
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
  ServerProcess server;
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
  ServerProcess server;
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
  ServerProcess server({"--max-body-bytes", "4096"});
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
  ServerProcess server({}, {"SANDBOX_MCP_HTTP_TOKEN=" + token});
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
  ServerProcess server({}, {"SANDBOX_MCP_HTTP_TOKEN=" + token});
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
    ServerProcess server({"--auth-token-file", tmpl});
    EXPECT_EQ(request(server.port(), "POST", mcp_headers(), initialize_request().dump()).status, 401);
    const Headers auth = {{"Authorization", "Bearer " + token}};
    expect_serving(server.port(), open_session(server.port(), "2025-11-25", auth), auth);
  }
  ::unlink(tmpl);
}

TEST(HttpTransport, RefusesToServeBeyondLoopbackWithoutAToken) {
  ServerProcess refused({"--http", "0.0.0.0:0"}, {}, false);
  EXPECT_EQ(refused.wait_exit(10s), 2);
  EXPECT_NE(refused.stderr_text().find("--auth-token-file"), std::string::npos) << refused.stderr_text();

  ServerProcess short_token({"--http", "0.0.0.0:0"}, {"SANDBOX_MCP_HTTP_TOKEN=short"}, false);
  EXPECT_EQ(short_token.wait_exit(10s), 2);
  EXPECT_NE(short_token.stderr_text().find("too short"), std::string::npos) << short_token.stderr_text();

  // With a token it serves on all addresses; every request needs the token, and any Host name is
  // accepted (no --allow-host given: the token is the protection).
  const std::string token = "wide-open-token-0123456789abcdef";
  ServerProcess server({"--http", "0.0.0.0:0"}, {"SANDBOX_MCP_HTTP_TOKEN=" + token});
  const int port = server.port();
  EXPECT_EQ(request(port, "POST", mcp_headers(), initialize_request().dump()).status, 401);
  const Headers auth = {{"Authorization", "Bearer " + token}, {"Host", "gpu-box.example:" + std::to_string(port)}};
  expect_serving(port, open_session(port, "2025-11-25", auth), auth);
}

TEST(HttpTransport, SessionCapEvictsTheLeastRecentlyUsedIdleSessionAndIdleExpiry) {
  ServerProcess server({"--max-sessions", "2", "--session-idle-timeout", "2"});
  const int port = server.port();
  const std::string a = open_session(port);
  const std::string b = open_session(port);
  expect_serving(port, a); // b is now the least recently used
  // Issue 9.3: clients that never DELETE (claude mcp list) must not lock others out: the least
  // recently used idle session makes room, and the eviction is logged.
  const std::string c = open_session(port);
  EXPECT_EQ(post(port, b, tools_list()).status, 404) << "b was evicted";
  expect_serving(port, a);
  EXPECT_NE(server.stderr_text().find("evicted (least recently used"), std::string::npos) << server.stderr_text();
  // Sessions in use (here: open GET streams) are never evicted; with all in use, 503.
  Connection stream_a(port), stream_c(port);
  stream_a.send("GET", "/mcp", {{"Accept", "text/event-stream"}, {"Mcp-Session-Id", a}}, "");
  stream_c.send("GET", "/mcp", {{"Accept", "text/event-stream"}, {"Mcp-Session-Id", c}}, "");
  ASSERT_EQ(stream_a.read_head().status, 200);
  ASSERT_EQ(stream_c.read_head().status, 200);
  Response third = request(port, "POST", mcp_headers(), initialize_request().dump());
  EXPECT_EQ(third.status, 503);
  EXPECT_FALSE(third.header("Retry-After").empty());
  EXPECT_NE(third.error_message().find("too many sessions"), std::string::npos) << third.body;
  stream_c.close();

  // A session in use does not expire; idle ones do.
  auto until = Clock::now() + 3500ms;
  while (Clock::now() < until) {
    expect_serving(port, a);
    std::this_thread::sleep_for(300ms);
  }
  EXPECT_EQ(post(port, c, tools_list()).status, 404) << "idle for more than 2 s";
  expect_serving(port, a);
  EXPECT_NE(server.stderr_text().find("expired"), std::string::npos);
}

// Sends one more header line on each socket every `period` until stopped: half-sent requests
// that never complete (slowloris).
class Trickler {
public:
  Trickler(int port, int sockets, const std::string& start, std::chrono::milliseconds period) {
    for (int i = 0; i < sockets; ++i) {
      m_conns.push_back(std::make_unique<Connection>(port));
      m_conns.back()->send_raw(start);
    }
    m_thread = std::thread([this, period] {
      int line = 0;
      while (!m_stop.load()) {
        for (auto& c : m_conns) {
          c->send_raw("X-Slow-" + std::to_string(line) + ": 1\r\n");
        }
        ++line;
        std::unique_lock lock(m_mutex);
        m_cv.wait_for(lock, period, [&] { return m_stop.load(); });
      }
    });
  }
  ~Trickler() {
    m_stop = true;
    m_cv.notify_all();
    m_thread.join();
  }

private:
  std::vector<std::unique_ptr<Connection>> m_conns;
  std::atomic<bool> m_stop{false};
  std::mutex m_mutex;
  std::condition_variable m_cv;
  std::thread m_thread;
};

// Issue 10.1: half-sent requests (one header line now and then) do not stop HTTP for others.
TEST(HttpTransport, TricklingConnectionsDoNotStarveOthers) {
  {
    // 520 sockets against the default --max-connections (512).
    ServerProcess server;
    const int port = server.port();
    Trickler slow(port, 520, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n", 1s);
    std::this_thread::sleep_for(500ms);
    Connection c(port);
    c.send("GET", "/healthz", {}, "");
    Response r = c.read_response(5s);
    EXPECT_EQ(r.status, 200) << "/healthz answered while 520 requests trickle in";
    expect_serving(port, open_session(port));
  }
  {
    // --max-connections 8, 10 trickling sockets.
    ServerProcess server({"--max-connections", "8"});
    const int port = server.port();
    const std::string session = open_session(port);
    Trickler slow(port, 10, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n", 1s);
    std::this_thread::sleep_for(500ms);
    for (int i = 0; i < 3; ++i) {
      Connection c(port);
      c.send("GET", "/healthz", {}, "");
      EXPECT_EQ(c.read_response(5s).status, 200) << "attempt " << i;
      expect_serving(port, session);
    }
  }
}

TEST(HttpTransport, UnauthenticatedHalfSentRequestsDoNotStarveAuthenticatedClients) {
  const std::string token = "s3cret-token-0123456789abcdef";
  ServerProcess server({"--max-connections", "8"}, {"SANDBOX_MCP_HTTP_TOKEN=" + token});
  const int port = server.port();
  const Headers auth = {{"Authorization", "Bearer " + token}};
  Trickler slow(port, 10,
                "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                "Accept: application/json, text/event-stream\r\n",
                1s);
  std::this_thread::sleep_for(500ms);
  Connection c(port);
  c.send("POST", "/mcp", mcp_headers("", auth), initialize_request().dump());
  Response init = c.read_response(5s);
  ASSERT_EQ(init.status, 200) << "authenticated initialize while 10 unauthenticated requests trickle in";
  expect_serving(port, open_session(port, "2025-11-25", auth), auth);
}

// Issue 10.2: pipelined requests are all answered, in order.
TEST(HttpTransport, PipelinedRequestsAreAnsweredInOrder) {
  ServerProcess server;
  const int port = server.port();
  const std::string session = open_session(port);
  Connection c(port);
  std::string bytes;
  for (int i = 0; i < 3; ++i) {
    bytes += Connection::format(port, "GET", "/healthz", {}, "");
  }
  bytes += Connection::format(port, "POST", "/mcp", mcp_headers(session), tools_list(21).dump());
  bytes += Connection::format(port, "POST", "/mcp", mcp_headers(session), tools_list(22).dump());
  ASSERT_TRUE(c.send_raw(bytes));
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(c.read_response(5s).status, 200) << "GET /healthz #" << i + 1;
  }
  for (int id : {21, 22}) {
    Response r = c.read_response(5s);
    EXPECT_EQ(r.status, 200) << "POST id " << id;
    EXPECT_TRUE(response_with_id(r, id).contains("result")) << r.body;
  }
}

// Issue 10.3: bad Content-Length values are answered at once.
TEST(HttpTransport, BadContentLengthIsAnsweredAtOnce) {
  ServerProcess server;
  const int port = server.port();
  const std::string session = open_session(port);
  for (const auto& [length, status] :
       std::vector<std::pair<std::string, int>>{{"-5", 400}, {"18446744073709551616", 400}, {"1000000000000", 413}}) {
    SCOPED_TRACE("Content-Length: " + length);
    Connection c(port);
    c.send_raw("POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nMcp-Session-Id: " + session +
               "\r\nContent-Length: " + length + "\r\n\r\n{}");
    Response r = c.read_response(3s);
    EXPECT_EQ(r.status, status) << r.body;
  }
  expect_serving(port, session);
}

TEST(HttpTransport, LongToolCallOnOneSessionDoesNotBlockOthers) {
  ServerProcess server;
  const int port = server.port();
  const std::string slow_session = open_session(port);
  const std::string session = open_session(port);

  std::atomic<bool> slow_done{false};
  Response slow;
  std::thread slow_client([&] {
    slow = post(port, slow_session, tools_call(10, "sleep 2; echo slept"), {{"Accept", "application/json"}});
    slow_done = true;
  });
  std::this_thread::sleep_for(200ms);
  // Meanwhile: 16 sessions (the busy one included) each answer tools/list quickly.
  std::vector<std::string> sessions = {session, slow_session};
  for (int i = 0; i < 14; ++i) {
    sessions.push_back(open_session(port));
  }
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  std::atomic<long long> slowest_ms{0};
  for (const auto& s : sessions) {
    clients.emplace_back([&, s] {
      for (int i = 0; i < 5; ++i) {
        auto start = Clock::now();
        Response r = post(port, s, tools_list(20 + i));
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
        slowest_ms = std::max<long long>(slowest_ms.load(), ms);
        if (r.status == 200 && response_with_id(r, 20 + i).contains("result")) {
          ++ok;
        }
      }
    });
  }
  for (auto& t : clients) {
    t.join();
  }
  EXPECT_EQ(ok.load(), 16 * 5);
  EXPECT_FALSE(slow_done.load()) << "the long call was still running while the others were served";
  EXPECT_LT(slowest_ms.load(), 1000) << "tools/list waited behind the long call";
  slow_client.join();
  EXPECT_EQ(slow.status, 200) << slow.body;
  EXPECT_EQ(response_with_id(slow, 10)["result"]["structuredContent"]["stdout"], "slept\n");
}

TEST(HttpTransport, ProgressNotificationsStreamBeforeTheResponse) {
  ServerProcess server;
  const int port = server.port();
  const std::string session = open_session(port);
  Connection c(port);
  c.send("POST", "/mcp", mcp_headers(session),
         tools_call(11, "for i in 1 2 3 4; do echo step$i; sleep 0.4; done", {{"progressToken", "tok-1"}}).dump());
  Response head = c.read_head();
  ASSERT_EQ(head.status, 200);
  ASSERT_EQ(head.header("Content-Type"), "text/event-stream");
  // The first progress notification arrives while the command still runs.
  std::string body;
  auto start = Clock::now();
  ASSERT_TRUE(c.read_body_until(
      body, [](const std::string& b) { return b.find("notifications/progress") != std::string::npos; }));
  EXPECT_LT(Clock::now() - start, 1500ms) << "progress streamed, not buffered until the end";
  ASSERT_TRUE(c.read_body_until(body, [&](const std::string&) { return c.body_done(); }));
  std::vector<json> messages;
  for (const auto& e : parse_sse(body)) {
    if (!e.data.empty()) {
      messages.push_back(json::parse(e.data));
    }
  }
  ASSERT_GE(messages.size(), 2u) << body;
  EXPECT_EQ(messages.back()["id"], 11);
  EXPECT_EQ(messages.back()["result"]["structuredContent"]["stdout"], "step1\nstep2\nstep3\nstep4\n");
  for (std::size_t i = 0; i + 1 < messages.size(); ++i) {
    EXPECT_EQ(messages[i]["method"], "notifications/progress");
    EXPECT_EQ(messages[i]["params"]["progressToken"], "tok-1");
  }
  // Event ids are unique.
  std::set<std::string> ids;
  for (const auto& e : parse_sse(body)) {
    EXPECT_TRUE(ids.insert(e.id).second) << e.id;
  }
}

TEST(HttpTransport, ResumesABrokenStreamWithLastEventId) {
  ServerProcess server;
  const int port = server.port();
  const std::string session = open_session(port);

  // Start a slow call, keep only the priming event's id, and drop the connection.
  std::string last_id;
  {
    Connection c(port);
    c.send("POST", "/mcp", mcp_headers(session), tools_call(12, "sleep 1; echo resumed").dump());
    Response head = c.read_head();
    ASSERT_EQ(head.status, 200);
    std::string body;
    ASSERT_TRUE(c.read_body_until(body, [](const std::string& b) { return b.find("\n\n") != std::string::npos; }));
    auto events = parse_sse(body);
    ASSERT_FALSE(events.empty());
    last_id = events.front().id;
  }
  ASSERT_FALSE(last_id.empty());
  // The response, produced after the client left, is replayed on GET with Last-Event-ID.
  Response resumed = request(port, "GET",
                             {{"Accept", "text/event-stream"},
                              {"Mcp-Session-Id", session},
                              {"MCP-Protocol-Version", "2025-11-25"},
                              {"Last-Event-ID", last_id}});
  ASSERT_EQ(resumed.status, 200);
  json answer = response_with_id(resumed, 12);
  EXPECT_EQ(answer["result"]["structuredContent"]["stdout"], "resumed\n") << resumed.body;
  for (const auto& e : parse_sse(resumed.body)) {
    EXPECT_NE(e.id, last_id) << "nothing at or before Last-Event-ID is replayed";
  }

  // Ids that are not this session's are refused.
  EXPECT_EQ(
      request(port, "GET", {{"Accept", "text/event-stream"}, {"Mcp-Session-Id", session}, {"Last-Event-ID", "999-0"}})
          .status,
      400);
  EXPECT_EQ(
      request(port, "GET", {{"Accept", "text/event-stream"}, {"Mcp-Session-Id", session}, {"Last-Event-ID", "garbage"}})
          .status,
      400);
  // A stream that was delivered completely is resumable too: it stays open with nothing to send
  // (so that clients do not reconnect in a loop) until the client leaves.
  Response done = post(port, session, tools_call(13, "echo once"));
  auto events = parse_sse(done.body);
  ASSERT_FALSE(events.empty());
  Connection idle(port);
  idle.send("GET", "/mcp",
            {{"Accept", "text/event-stream"}, {"Mcp-Session-Id", session}, {"Last-Event-ID", events.back().id}}, "");
  Response head = idle.read_head();
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.header("Content-Type"), "text/event-stream");
  std::string body;
  EXPECT_FALSE(idle.read_body_until(
      body, [](const std::string& b) { return b.find("data:") != std::string::npos; }, 500ms));
  EXPECT_FALSE(idle.body_done());
  expect_serving(port, session);
}

TEST(HttpTransport, GetStreamIsTakenOverAndEndsWithTheSession) {
  ServerProcess server;
  const int port = server.port();
  const std::string session = open_session(port);
  const Headers get = {{"Accept", "text/event-stream"}, {"Mcp-Session-Id", session}};

  Connection first(port);
  first.send("GET", "/mcp", get, "");
  Response head = first.read_head();
  ASSERT_EQ(head.status, 200);
  EXPECT_EQ(head.header("Content-Type"), "text/event-stream");
  // A second GET takes the stream over; the first one's response ends.
  Connection second(port);
  second.send("GET", "/mcp", get, "");
  ASSERT_EQ(second.read_head().status, 200);
  std::string body;
  EXPECT_TRUE(first.read_body_until(
      body, [&](const std::string&) { return first.body_done(); }, 5s));
  // Requests go on while the stream is open; DELETE ends the stream.
  expect_serving(port, session);
  EXPECT_EQ(request(port, "DELETE", {{"Mcp-Session-Id", session}}).status, 200);
  std::string body2;
  EXPECT_TRUE(second.read_body_until(
      body2, [&](const std::string&) { return second.body_done(); }, 5s));
}

TEST(HttpTransport, BatchesFollowTheNegotiatedVersion) {
  ServerProcess server;
  const int port = server.port();
  const json batch = json::array({{{"jsonrpc", "2.0"}, {"id", 1}, {"method", "ping"}}, tools_list(2)});

  const std::string old_session = open_session(port, "2025-03-26");
  Response ok = request(port, "POST", mcp_headers(old_session, {{"MCP-Protocol-Version", "2025-03-26"}}), batch.dump());
  ASSERT_EQ(ok.status, 200) << ok.body;
  json answers = ok.json_body();
  ASSERT_TRUE(answers.is_array()) << ok.body;
  EXPECT_EQ(answers.size(), 2u);

  const std::string session = open_session(port);
  Response refused = request(port, "POST", mcp_headers(session), batch.dump());
  EXPECT_EQ(refused.status, 400);
  EXPECT_EQ(refused.error_code(), -32600);
  expect_serving(port, session);
}

TEST(HttpTransport, ManyConcurrentSessionsKeepTheirOwnVersions) {
  ServerProcess server;
  const int port = server.port();
  const std::vector<std::string> versions = {"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"};
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 32; ++i) {
    threads.emplace_back([&, i] {
      const std::string& v = versions[static_cast<std::size_t>(i) % versions.size()];
      Response init = request(port, "POST", mcp_headers(), initialize_request(v).dump());
      if (init.status != 200 || response_with_id(init, 1)["result"]["protocolVersion"] != v) {
        return;
      }
      const std::string s = init.header("Mcp-Session-Id");
      Response call = post(port, s, tools_call(3, "echo " + std::to_string(i)), {{"MCP-Protocol-Version", v}});
      if (response_with_id(call, 3)["result"]["structuredContent"]["stdout"] == std::to_string(i) + "\n") {
        ++ok;
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(ok.load(), 32);
}

TEST(HttpTransport, StopsCleanlyOnSigtermWithStreamsAndCallsOpen) {
  ServerProcess server;
  const int port = server.port();
  const std::string session = open_session(port);
  Connection stream(port);
  stream.send("GET", "/mcp", {{"Accept", "text/event-stream"}, {"Mcp-Session-Id", session}}, "");
  ASSERT_EQ(stream.read_head().status, 200);
  Connection call(port);
  call.send("POST", "/mcp", mcp_headers(session), tools_call(5, "sleep 30").dump());
  ASSERT_EQ(call.read_head().status, 200);

  std::string body;
  ASSERT_TRUE(call.read_body_until(body, [](const std::string& b) { return !parse_sse(b).empty(); }));

  auto start = Clock::now();
  EXPECT_EQ(server.terminate(15s), 0) << server.stderr_text();
  EXPECT_LT(Clock::now() - start, 12s);
  EXPECT_NE(server.stderr_text().find("http: stopped"), std::string::npos) << server.stderr_text();
  EXPECT_TRUE(stream.closed_by_peer(2s));
  // Issue 12: the call's stream carries an error response before it ends.
  call.read_body_until(
      body, [&](const std::string&) { return call.body_done(); }, 2s);
  auto events = parse_sse(body);
  ASSERT_FALSE(events.empty());
  ASSERT_FALSE(events.back().data.empty()) << body;
  json last = json::parse(events.back().data);
  EXPECT_EQ(last["id"], 5) << body;
  EXPECT_TRUE(last.contains("error")) << body;
}

} // namespace
} // namespace smcp::http_test
