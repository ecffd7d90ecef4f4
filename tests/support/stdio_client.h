// A minimal MCP client over stdio for benchmarks: spawns `sandbox-mcp serve`, initializes, and
// sends tools/call requests, measuring round trips. Header-only; benchmarks only.
#pragma once

#include "tests/support/process_stats.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fcntl.h>
#include <stdexcept>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace smcp::bench {

using nlohmann::json;

// A `sandbox-mcp serve` child with its stdin (in) and stdout (out) on pipes.
struct ServerProcess {
  pid_t pid = -1;
  int in = -1;
  FILE* out = nullptr;
};

// Spawns `binary args...`; its stderr goes to `stderr_log` (appended) when not empty. The pipes
// are close-on-exec, so that servers spawned later do not hold this one's input open.
inline ServerProcess spawn_stdio_server(const std::string& binary, const std::vector<std::string>& args,
                                        const std::string& stderr_log = "") {
  int to_child[2], from_child[2];
  if (::pipe2(to_child, O_CLOEXEC) != 0 || ::pipe2(from_child, O_CLOEXEC) != 0) {
    throw std::runtime_error("pipe");
  }
  ServerProcess p;
  p.pid = ::fork();
  if (p.pid == 0) {
    ::dup2(to_child[0], 0);
    ::dup2(from_child[1], 1);
    if (!stderr_log.empty()) {
      ::dup2(::open(stderr_log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600), 2);
    }
    std::vector<char*> argv{const_cast<char*>(binary.c_str())};
    for (const auto& a : args) {
      argv.push_back(const_cast<char*>(a.c_str()));
    }
    argv.push_back(nullptr);
    ::execv(binary.c_str(), argv.data());
    ::_exit(127);
  }
  ::close(to_child[0]);
  ::close(from_child[1]);
  p.in = to_child[1];
  p.out = ::fdopen(from_child[0], "r");
  return p;
}

// Closes the server's input and output and waits for it; returns its wait status.
inline int stop_stdio_server(ServerProcess& p) {
  ::close(p.in);
  std::fclose(p.out);
  int status = 0;
  ::waitpid(p.pid, &status, 0);
  p = ServerProcess();
  return status;
}

// Writes all of `data` to `fd`; throws when the server closed its input.
inline void write_all(int fd, const std::string& data) {
  const char* p = data.data();
  std::size_t left = data.size();
  while (left) {
    ssize_t n = ::write(fd, p, left);
    if (n <= 0) {
      throw std::runtime_error("server closed its input");
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

class StdioClient {
public:
  StdioClient(const std::string& binary, const std::vector<std::string>& args)
      : m_server(spawn_stdio_server(binary, args)) {
    request("initialize", {{"protocolVersion", "2025-11-25"},
                           {"capabilities", json::object()},
                           {"clientInfo", {{"name", "bench"}, {"version", "1"}}}});
    send({{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}});
  }
  ~StdioClient() { stop_stdio_server(m_server); }
  StdioClient(const StdioClient&) = delete;
  StdioClient& operator=(const StdioClient&) = delete;

  pid_t pid() const { return m_server.pid; }

  json request(const std::string& method, const json& params) {
    int id = ++m_id;
    send({{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", params}});
    for (;;) {
      json m = read();
      if (m.contains("id") && m["id"] == id) {
        if (m.contains("error")) {
          throw std::runtime_error(m["error"].dump());
        }
        return m["result"];
      }
    }
  }

  json call(const std::string& tool, const json& args) {
    json r = request("tools/call", {{"name", tool}, {"arguments", args}});
    if (r.value("isError", false)) {
      throw std::runtime_error(tool + ": " + r["content"][0]["text"].get<std::string>());
    }
    return r["structuredContent"];
  }

  // Raw messaging, for clients that keep several requests in flight.
  void send(const json& m) { write_all(m_server.in, m.dump() + "\n"); }
  json read() {
    std::string line;
    int c;
    while ((c = std::fgetc(m_server.out)) != EOF && c != '\n') {
      line.push_back(static_cast<char>(c));
    }
    if (line.empty() && c == EOF) {
      throw std::runtime_error("server closed its output");
    }
    return json::parse(line);
  }
  int next_id() { return ++m_id; }

private:
  ServerProcess m_server;
  int m_id = 0;
};

} // namespace smcp::bench
