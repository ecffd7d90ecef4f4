// What clients that never authenticate can cost the HTTP server (tests/bench/http_flood.sh).
//   http_flood PORT SERVER_PID TOKEN [CONNECTIONS (512)] [BYTES_SENT (4000000)] [DECLARED (4194304)]
// Phase 1: CONNECTIONS sockets without the token each send a POST head declaring DECLARED bytes,
// then BYTES_SENT bytes of it, and stall (never close). Phase 2: CONNECTIONS sockets each send
// 60 KiB of header lines and stall before the end of the head. For each phase: the server's RSS
// and peak RSS (VmHWM) before and after, and the latency of an authenticated client's tools/list
// (keep-alive, one at a time) while the phase runs.
#include "http_client.h"
#include "tests/support/process_stats.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <sys/socket.h>
#include <sys/time.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

using smcp::bench::HttpConnection;
using smcp::bench::percentile;
using smcp::bench::status_field;
using Clock = std::chrono::steady_clock;

int g_port = 0;
std::string g_token;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// An authenticated client asking tools/list back to back until stopped; latencies in ms.
class AuthenticatedProbe {
public:
  AuthenticatedProbe() {
    m_thread = std::thread([this] { run(); });
  }
  std::vector<double> stop() {
    m_stop = true;
    m_thread.join();
    return m_latencies;
  }
  long errors() const { return m_errors; }

private:
  void run() {
    try {
      HttpConnection c(g_port, std::chrono::seconds(30));
      auto init = c.post("",
                         R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":)"
                         R"("2025-11-25","capabilities":{},"clientInfo":{"name":"flood","version":"1"}}})",
                         "POST", g_token);
      c.post(init.session, R"({"jsonrpc":"2.0","method":"notifications/initialized"})", "POST", g_token);
      while (!m_stop.load()) {
        auto start = Clock::now();
        auto r = c.post(init.session, R"({"jsonrpc":"2.0","id":2,"method":"tools/list"})", "POST", g_token);
        if (r.status == 200) {
          m_latencies.push_back(ms_since(start));
        } else {
          ++m_errors;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    } catch (const std::exception& e) {
      std::fprintf(stderr, "authenticated client failed: %s\n", e.what());
      ++m_errors;
    }
  }

  std::atomic<bool> m_stop{false};
  std::thread m_thread;
  std::vector<double> m_latencies;
  long m_errors = 0;
};

// Sends as much of `bytes` as the server takes within 5 s; the socket stays open.
int stalled_socket(const std::string& bytes) {
  int fd = smcp::bench::connect_loopback(g_port);
  if (fd < 0) {
    return -1;
  }
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  for (std::size_t sent = 0; sent < bytes.size();) {
    ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) {
      break; // refused and closed, or stalled
    }
    sent += static_cast<std::size_t>(n);
  }
  return fd;
}

void phase(const char* name, int pid, int connections, const std::string& bytes) {
  const long rss_before = status_field(pid, "VmRSS:");
  const long hwm_before = status_field(pid, "VmHWM:");
  AuthenticatedProbe probe;
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const auto start = Clock::now();
  std::vector<int> fds;
  for (int i = 0; i < connections; ++i) {
    int fd = stalled_socket(bytes);
    if (fd >= 0) {
      fds.push_back(fd);
    }
  }
  const double flood_s = ms_since(start) / 1000.0;
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const long rss_after = status_field(pid, "VmRSS:");
  const long hwm_after = status_field(pid, "VmHWM:");
  std::vector<double> latencies = probe.stop();
  std::printf("%s: %zu connections in %.1f s; server RSS %.1f -> %.1f MiB (+%.1f MiB), peak RSS %.1f -> %.1f MiB "
              "(+%.1f MiB)\n",
              name, fds.size(), flood_s, static_cast<double>(rss_before) / 1024.0,
              static_cast<double>(rss_after) / 1024.0, static_cast<double>(rss_after - rss_before) / 1024.0,
              static_cast<double>(hwm_before) / 1024.0, static_cast<double>(hwm_after) / 1024.0,
              static_cast<double>(hwm_after - hwm_before) / 1024.0);
  std::printf("  meanwhile an authenticated tools/list: %zu answered, p50 %.1f ms, p99 %.1f ms, max %.1f ms, "
              "%ld errors\n",
              latencies.size(), percentile(latencies, 50), percentile(latencies, 99),
              latencies.empty() ? 0.0 : *std::max_element(latencies.begin(), latencies.end()), probe.errors());
  std::fflush(stdout);
  for (int fd : fds) {
    ::close(fd);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(2500)); // the server notices the closes
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::cerr << "usage: http_flood PORT SERVER_PID TOKEN [CONNECTIONS] [BYTES_SENT] [DECLARED]\n";
    return 2;
  }
  g_port = std::stoi(argv[1]);
  const int pid = std::stoi(argv[2]);
  g_token = argv[3];
  const int connections = argc > 4 ? std::stoi(argv[4]) : 512;
  const std::size_t sent = argc > 5 ? std::stoul(argv[5]) : 4'000'000;
  const std::size_t declared = argc > 6 ? std::stoul(argv[6]) : 4 * 1024 * 1024;

  const std::string body_head = "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                                "Accept: application/json, text/event-stream\r\nContent-Length: " +
                                std::to_string(declared) + "\r\n\r\n";
  phase(("stalled bodies (" + std::to_string(sent) + " of " + std::to_string(declared) + " bytes, no token)").c_str(),
        pid, connections, body_head + std::string(sent, 'x'));

  std::string headers = "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  for (int i = 0; headers.size() < 60 * 1024; ++i) {
    headers += "X-Filler-" + std::to_string(i) + ": " + std::string(400, 'h') + "\r\n"; // 150 lines
  }
  phase("stalled heads (60 KiB of header lines, never ended)", pid, connections, headers);
  return 0;
}
