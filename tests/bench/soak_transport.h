// The soak benchmark's two ways to reach a server: a `sandbox-mcp serve` child over stdio
// (tests/support/stdio_client.h) and a session on a `serve --http` server (http_client.h). Every
// exchange waits at most k_call_timeout for its answer; beyond it the call is Lost.
#pragma once

#include "http_client.h"
#include "tests/support/stdio_client.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <string>
#include <sys/types.h>
#include <vector>

namespace smcp::soak {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr auto k_call_timeout = 120s;

// No answer within the call timeout: the call is lost.
using Lost = bench::NoAnswer;

class Transport {
public:
  virtual ~Transport() = default;
  // Sends one message and returns the answer carrying `id` (notifications are skipped); for
  // malformed input, the error answer with a null id. A discarded `id`: a notification, no answer.
  virtual json exchange(const std::string& body, const json& id) = 0;
};

class StdioTransport final : public Transport {
public:
  // Spawns `binary args...`, its stderr appended to `log`.
  StdioTransport(const std::string& binary, const std::vector<std::string>& args, const std::string& log);
  ~StdioTransport() override { finish(); }

  // Closes the server's input and returns its exit status.
  int finish();
  pid_t pid() const { return m_server.pid; }

  json exchange(const std::string& body, const json& id) override;

private:
  std::string read_line(Clock::time_point deadline);

  bench::ServerProcess m_server;
  int m_status = -1;
  std::string m_buf;
};

class HttpTransport final : public Transport {
public:
  explicit HttpTransport(int port) : m_http(port, k_call_timeout) {}
  // Ends the session (DELETE).
  ~HttpTransport() override;

  json exchange(const std::string& body, const json& id) override;

private:
  bench::HttpConnection m_http;
  std::string m_session;
};

} // namespace smcp::soak
