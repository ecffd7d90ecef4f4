// Load generator for the Streamable HTTP transport (tests/bench/http_load.sh): N clients, each
// with its own MCP session and keep-alive connection, send requests back to back for a fixed
// time; prints requests/s and latency percentiles. First it opens idle sessions (they stay open
// during the runs) and reports the server's resident memory before and after.
//   http_load PORT SERVER_PID [SECONDS_PER_RUN] [IDLE_SESSIONS] [TOKEN] [SLOWLORIS_SOCKETS (default 520)]
// Last, it measures GET /healthz while SLOWLORIS_SOCKETS connections trickle half-sent requests.
#include "http_client.h"
#include "tests/support/process_stats.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

using smcp::bench::percentile;
using smcp::bench::rss_kb;
using smcp::bench::status_field;
using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

int g_port = 0;
std::string g_token;

// One keep-alive connection to the server under test; requests carry the bearer token, if any.
class Connection {
public:
  Connection() : m_http(g_port) {}

  smcp::bench::HttpConnection::Response post(const std::string& session, const std::string& body,
                                             const char* method = "POST") {
    return m_http.post(session, body, method, g_token);
  }

private:
  smcp::bench::HttpConnection m_http;
};

std::string open_session(Connection& c) {
  json init = {{"jsonrpc", "2.0"},
               {"id", 1},
               {"method", "initialize"},
               {"params",
                {{"protocolVersion", "2025-11-25"},
                 {"capabilities", json::object()},
                 {"clientInfo", {{"name", "http_load"}, {"version", "1"}}}}}};
  auto r = c.post("", init.dump());
  if (r.status != 200 || r.session.empty()) {
    throw std::runtime_error("initialize failed: HTTP " + std::to_string(r.status) + " " + r.body);
  }
  c.post(r.session, R"({"jsonrpc":"2.0","method":"notifications/initialized"})");
  return r.session;
}

struct Operation {
  const char* name;
  std::string body;
  const char* expect; // a substring of a good answer
};

struct RunResult {
  double seconds = 0;
  std::vector<double> latencies_ms;
  long errors = 0;
};

RunResult run(const Operation& op, int clients, double seconds) {
  std::vector<std::unique_ptr<Connection>> conns;
  std::vector<std::string> sessions;
  for (int i = 0; i < clients; ++i) {
    conns.push_back(std::make_unique<Connection>());
    sessions.push_back(open_session(*conns.back()));
  }
  std::vector<std::vector<double>> lat(static_cast<std::size_t>(clients));
  std::atomic<long> errors{0};
  std::atomic<bool> go{false};
  const auto warmup = std::chrono::milliseconds(500);
  Clock::time_point start, stop;
  std::vector<std::thread> threads;
  for (int i = 0; i < clients; ++i) {
    threads.emplace_back([&, i] {
      while (!go.load()) {
        std::this_thread::yield();
      }
      auto& mine = lat[static_cast<std::size_t>(i)];
      for (;;) {
        auto t0 = Clock::now();
        if (t0 >= stop) {
          break;
        }
        try {
          auto r = conns[static_cast<std::size_t>(i)]->post(sessions[static_cast<std::size_t>(i)], op.body);
          auto t1 = Clock::now();
          if (r.status != 200 || r.body.find(op.expect) == std::string::npos) {
            ++errors;
          } else if (t0 >= start) {
            mine.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
          }
        } catch (const std::exception&) {
          ++errors;
          return;
        }
      }
    });
  }
  start = Clock::now() + warmup;
  stop = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  go = true;
  for (auto& t : threads) {
    t.join();
  }
  RunResult result;
  result.seconds = seconds;
  result.errors = errors.load();
  for (auto& v : lat) {
    result.latencies_ms.insert(result.latencies_ms.end(), v.begin(), v.end());
  }
  std::sort(result.latencies_ms.begin(), result.latencies_ms.end());
  for (std::size_t i = 0; i < conns.size(); ++i) {
    conns[i]->post(sessions[i], "", "DELETE");
  }
  return result;
}

// A connection that sends one header line of a never-ending request every second (slowloris).
int trickling_socket() {
  int fd = smcp::bench::connect_loopback(g_port);
  if (fd < 0) {
    return -1;
  }
  const std::string start = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  ::send(fd, start.data(), start.size(), MSG_NOSIGNAL);
  return fd;
}

// GET /healthz on a new connection: milliseconds until the answer, or -1 after `timeout_ms`.
double healthz_ms(int timeout_ms) {
  auto t0 = Clock::now();
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr = smcp::bench::loopback_address(g_port);
  // Set before connect(), which they bound too.
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  double result = -1;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    const std::string req = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    ::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
    char buf[512];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 12 && std::string(buf, 12) == "HTTP/1.1 200") {
      result = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    }
  }
  ::close(fd);
  return result;
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: http_load PORT SERVER_PID [SECONDS_PER_RUN] [IDLE_SESSIONS] [TOKEN] [SLOWLORIS_SOCKETS]\n";
    return 2;
  }
  g_port = std::stoi(argv[1]);
  const int pid = std::stoi(argv[2]);
  const double seconds = argc > 3 ? std::stod(argv[3]) : 5.0;
  const int idle_sessions = argc > 4 ? std::stoi(argv[4]) : 1000;
  g_token = argc > 5 ? argv[5] : "";
  const int slow_sockets = argc > 6 ? std::stoi(argv[6]) : 520;

  const std::vector<Operation> ops = {
      {"tools/list", R"({"jsonrpc":"2.0","id":2,"method":"tools/list"})", "\"tools\""},
      {"remote_bash true",
       R"({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"remote_bash","arguments":{"command":"true"}}})",
       "\"exit_code\":0"},
  };
  // Idle sessions: initialize + initialized, then nothing.
  const long before = rss_kb(pid);
  {
    Connection c;
    for (int i = 0; i < idle_sessions; ++i) {
      open_session(c);
    }
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const long after = rss_kb(pid);
  std::printf("idle sessions: %d; server RSS %.1f MiB before, %.1f MiB after (+%.1f KiB per session); threads %d\n",
              idle_sessions, static_cast<double>(before) / 1024.0, static_cast<double>(after) / 1024.0,
              static_cast<double>(after - before) / std::max(1, idle_sessions),
              static_cast<int>(status_field(pid, "Threads:")));

  std::printf("%-18s %8s %10s %9s %9s %9s %9s %7s\n", "request", "clients", "req/s", "p50 ms", "p99 ms", "max ms",
              "requests", "errors");
  for (const auto& op : ops) {
    for (int clients : {1, 16, 64}) {
      RunResult r = run(op, clients, seconds);
      std::printf("%-18s %8d %10.0f %9.2f %9.2f %9.2f %9zu %7ld\n", op.name, clients,
                  static_cast<double>(r.latencies_ms.size()) / r.seconds, percentile(r.latencies_ms, 50),
                  percentile(r.latencies_ms, 99), r.latencies_ms.empty() ? 0.0 : r.latencies_ms.back(),
                  r.latencies_ms.size(), r.errors);
      std::fflush(stdout);
    }
  }
  std::printf("server threads after the runs: %d\n", static_cast<int>(status_field(pid, "Threads:")));

  // Slowloris: sockets that each send one header line per second and never finish their request.
  if (slow_sockets > 0) {
    std::vector<int> slow;
    for (int i = 0; i < slow_sockets; ++i) {
      int fd = trickling_socket();
      if (fd >= 0) {
        slow.push_back(fd);
      }
    }
    std::atomic<bool> stop{false};
    std::thread trickle([&] {
      for (int line = 0; !stop.load(); ++line) {
        const std::string header = "X-Slow-" + std::to_string(line) + ": 1\r\n";
        for (int fd : slow) {
          ::send(fd, header.data(), header.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        }
        for (int i = 0; i < 10 && !stop.load(); ++i) {
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
      }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(1000));
    std::vector<double> answered;
    int unanswered = 0;
    for (int i = 0; i < 5; ++i) {
      double ms = healthz_ms(10000);
      if (ms < 0) {
        ++unanswered;
      } else {
        answered.push_back(ms);
      }
    }
    std::sort(answered.begin(), answered.end());
    std::printf("slowloris: %zu sockets trickling one header line per second; GET /healthz on a new connection: "
                "%zu of 5 answered (median %.1f ms, max %.1f ms), %d not answered within 10 s\n",
                slow.size(), answered.size(), percentile(answered, 50), answered.empty() ? 0.0 : answered.back(),
                unanswered);
    stop = true;
    trickle.join();
    for (int fd : slow) {
      ::close(fd);
    }
  }

  return 0;
}
