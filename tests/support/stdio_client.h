// A minimal MCP client over stdio for benchmarks: spawns `sandbox-mcp serve`, initializes, and
// sends tools/call requests, measuring round trips. Header-only; benchmarks only.
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
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

inline ServerProcess spawn_stdio_server(const std::string& binary, const std::vector<std::string>& args) {
  int to_child[2], from_child[2];
  if (::pipe(to_child) != 0 || ::pipe(from_child) != 0) {
    throw std::runtime_error("pipe");
  }
  ServerProcess p;
  p.pid = ::fork();
  if (p.pid == 0) {
    ::dup2(to_child[0], 0);
    ::dup2(from_child[1], 1);
    ::close(to_child[1]);
    ::close(from_child[0]);
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

class StdioClient {
public:
  StdioClient(const std::string& binary, const std::vector<std::string>& args) {
    ServerProcess p = spawn_stdio_server(binary, args);
    m_pid = p.pid;
    m_in = p.in;
    m_out = p.out;
    request("initialize", {{"protocolVersion", "2025-11-25"},
                           {"capabilities", json::object()},
                           {"clientInfo", {{"name", "bench"}, {"version", "1"}}}});
    send({{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}});
  }
  ~StdioClient() {
    ::close(m_in);
    std::fclose(m_out);
    int st = 0;
    ::waitpid(m_pid, &st, 0);
  }

  pid_t pid() const { return m_pid; }

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
  void send(const json& m) {
    std::string s = m.dump() + "\n";
    const char* p = s.data();
    std::size_t left = s.size();
    while (left) {
      ssize_t n = ::write(m_in, p, left);
      if (n <= 0) {
        throw std::runtime_error("server closed its input");
      }
      p += n;
      left -= static_cast<std::size_t>(n);
    }
  }
  json read() {
    std::string line;
    int c;
    while ((c = std::fgetc(m_out)) != EOF && c != '\n') {
      line.push_back(static_cast<char>(c));
    }
    if (line.empty() && c == EOF) {
      throw std::runtime_error("server closed its output");
    }
    return json::parse(line);
  }
  int next_id() { return ++m_id; }

private:
  pid_t m_pid = -1;
  int m_in = -1;
  FILE* m_out = nullptr;
  int m_id = 0;
};

inline double percentile(std::vector<double> v, double p) {
  if (v.empty()) {
    return 0;
  }
  std::sort(v.begin(), v.end());
  std::size_t i = static_cast<std::size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

inline long rss_kb(pid_t pid) {
  FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/status").c_str(), "r");
  if (!f) {
    return -1;
  }
  char line[256];
  long kb = -1;
  while (std::fgets(line, sizeof line, f)) {
    if (std::sscanf(line, "VmRSS: %ld", &kb) == 1) {
      break;
    }
  }
  std::fclose(f);
  return kb;
}

} // namespace smcp::bench
