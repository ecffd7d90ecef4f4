// Soak benchmark (tests/bench/soak.sh): CLIENTS clients for SECONDS, half over stdio (each with its
// own `sandbox-mcp serve` process), half over Streamable HTTP (sessions on one `serve --http`
// server), each running a random mix of calls one after another:
//   foreground   remote_bash `seq 1 N`; stdout must be exactly 1..N (1 in 8 is over the output cap:
//                then the full output file is read back with remote_file_read and checked line by line)
//   job          a background job printing L1..LN, followed with waiting reads (wait_ms) until it
//                ends; the concatenated output must be exactly L1..LN
//   filtered     the same with filter "7$|DONE" and until "DONE": exactly the matching lines
//   file window  remote_file_read of a random window of a 200,000-line file; each line checked
//   kill         a background job killed with TERM: status killed, verified
//   malformed    invalid JSON, unknown method/tool, bad arguments: the right error, then a ping
// Every job is removed after its check. Every call must get its answer (else it is counted lost);
// every line must arrive exactly once. The servers' RSS, open fds and threads are sampled every 5 s.
//   soak BINARY WORKDIR SECONDS CLIENTS
#include "soak_client.h"
#include "soak_transport.h"
#include "tests/support/process_stats.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace smcp::soak {
namespace {

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

struct Sample {
  double t = 0;
  long rss_kib = 0;
  int fds = 0;
  int threads = 0;
};

Sample sample(pid_t pid, double t) {
  return Sample{t, bench::status_field(pid, "VmRSS:"), bench::fd_count(pid),
                static_cast<int>(bench::status_field(pid, "Threads:"))};
}

std::vector<std::string> serve_args(const std::string& state, const char* log_level = "warn") {
  return {"serve", "--state-dir", state, "--log-level", log_level};
}

void report_series(const char* name, const std::vector<Sample>& s, double seconds) {
  if (s.empty()) {
    return;
  }
  // Warm-up: the first minute (or the first fifth of a short run); compared with the last minute.
  const double window = std::min(60.0, seconds / 5);
  long rss_max = 0;
  int fds_max = 0, threads_max = 0;
  for (const auto& x : s) {
    rss_max = std::max(rss_max, x.rss_kib);
    fds_max = std::max(fds_max, x.fds);
    threads_max = std::max(threads_max, x.threads);
  }
  auto mean = [&](double from, double to, auto get) {
    double sum = 0;
    int n = 0;
    for (const auto& x : s) {
      if (x.t >= from && x.t <= to) {
        sum += get(x);
        ++n;
      }
    }
    return n ? sum / n : 0.0;
  };
  auto rss = [](const Sample& x) { return static_cast<double>(x.rss_kib) / 1024.0; };
  auto fds = [](const Sample& x) { return static_cast<double>(x.fds); };
  auto thr = [](const Sample& x) { return static_cast<double>(x.threads); };
  const double r1 = mean(window, 2 * window, rss), r2 = mean(seconds - window, seconds, rss);
  std::printf("%-22s RSS MiB: %6.1f after warm-up, %6.1f at the end, %6.1f max | fds: %4.0f, %4.0f, %4d max | "
              "threads: %3.0f, %3.0f, %3d max\n",
              name, r1, r2, static_cast<double>(rss_max) / 1024.0, mean(window, 2 * window, fds),
              mean(seconds - window, seconds, fds), fds_max, mean(window, 2 * window, thr),
              mean(seconds - window, seconds, thr), threads_max);
}

void write_lines_file(const std::string& work) {
  std::ofstream f(work + "/lines.txt");
  for (int i = 1; i <= k_file_lines; ++i) {
    f << "line " << i << '\n';
  }
}

// The `serve --http 127.0.0.1:0` server; `port` is 0 when it did not start.
struct HttpServer {
  pid_t pid = -1;
  int port = 0;
  std::string log;
};

HttpServer start_http_server(const std::string& binary, const std::string& work) {
  HttpServer server;
  server.log = work + "/http-server.log";
  server.pid = ::fork();
  if (server.pid == 0) {
    int err = ::open(server.log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::dup2(err, 2);
    int null = ::open("/dev/null", O_RDWR);
    ::dup2(null, 0);
    ::dup2(null, 1);
    auto args = serve_args(work + "/http-state", "info"); // info: the line with the port
    args.insert(args.end(), {"--http", "127.0.0.1:0"});
    std::vector<char*> av{const_cast<char*>(binary.c_str())};
    for (auto& a : args) {
      av.push_back(a.data());
    }
    av.push_back(nullptr);
    ::execv(binary.c_str(), av.data());
    ::_exit(127);
  }
  for (int i = 0; i < 200 && !server.port; ++i) {
    std::this_thread::sleep_for(50ms);
    std::ifstream log(server.log);
    std::string line;
    while (std::getline(log, line)) {
      if (auto at = line.find("listening on http://127.0.0.1:"); at != std::string::npos) {
        server.port = std::atoi(line.c_str() + at + 30);
      }
    }
  }
  return server;
}

// Samples the servers' RSS, open fds and threads every 5 s while it lives.
class Sampler {
public:
  Sampler(pid_t http_pid, const std::vector<StdioTransport*>& stdio, Clock::time_point start)
      : stdio_samples(stdio.size()) {
    m_thread = std::thread([this, http_pid, stdio, start] {
      while (m_sampling) {
        double t = seconds_since(start);
        http_samples.push_back(sample(http_pid, t));
        for (std::size_t i = 0; i < stdio.size(); ++i) {
          stdio_samples[i].push_back(sample(stdio[i]->pid(), t));
        }
        for (int i = 0; i < 50 && m_sampling; ++i) {
          std::this_thread::sleep_for(100ms);
        }
      }
    });
  }
  // Stops sampling; the series may be read after.
  void stop() {
    m_sampling = false;
    if (m_thread.joinable()) {
      m_thread.join();
    }
  }
  ~Sampler() { stop(); }

  std::vector<Sample> http_samples;
  std::vector<std::vector<Sample>> stdio_samples;

private:
  std::atomic<bool> m_sampling{true};
  std::thread m_thread;
};

// Prints the per-operation figures, the counts and the server series; returns the failures.
long print_report(Stats& stats, const Sampler& sampler, double elapsed) {
  std::printf("%-12s %8s %8s %9s %9s %9s\n", "operation", "done", "failed", "p50 ms", "p99 ms", "max ms");
  long total_failures = 0;
  for (int op = 0; op < op_count; ++op) {
    auto& v = stats.latency[op];
    std::sort(v.begin(), v.end());
    std::printf("%-12s %8zu %8ld %9.1f %9.1f %9.1f\n", k_op_names[op], v.size(), stats.failures[op],
                bench::percentile(v, 50), bench::percentile(v, 99), v.empty() ? 0.0 : v.back());
    total_failures += stats.failures[op];
  }
  std::printf("MCP requests: %ld, lost (no answer in %ld s): %ld\n", stats.calls,
              static_cast<long>(k_call_timeout.count()), stats.lost);
  std::printf("output lines checked: %ld, lost: %ld, repeated: %ld\n", stats.lines, stats.lines_lost,
              stats.lines_repeated);
  report_series("HTTP server", sampler.http_samples, elapsed);
  for (std::size_t i = 0; i < sampler.stdio_samples.size(); ++i) {
    report_series(("stdio server " + std::to_string(i)).c_str(), sampler.stdio_samples[i], elapsed);
  }
  for (const auto& f : stats.first_failures) {
    std::printf("failure: %s\n", f.c_str());
  }
  return total_failures;
}

// Stdio servers see the end of their input and must exit 0; HTTP sessions are deleted (with the
// clients), then the HTTP server gets SIGTERM and must exit 0. Returns the servers that did not.
int stop_servers(const std::vector<StdioTransport*>& stdio, std::vector<std::unique_ptr<Client>>& clients,
                 pid_t http_pid) {
  int bad_exits = 0;
  for (std::size_t i = 0; i < stdio.size(); ++i) {
    int status = stdio[i]->finish();
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      ++bad_exits;
      std::printf("stdio server %zu ended with status %d\n", i, status);
    }
  }
  clients.clear();
  ::kill(http_pid, SIGTERM);
  int st = 0;
  ::waitpid(http_pid, &st, 0);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    ++bad_exits;
    std::printf("the HTTP server ended with status %d\n", st);
  }
  return bad_exits;
}

int soak(const std::string& binary, const std::string& work, double seconds, int clients) {
  const int stdio_clients = clients / 2;
  const int http_clients = clients - stdio_clients;
  std::signal(SIGPIPE, SIG_IGN);
  write_lines_file(work);
  const HttpServer http = start_http_server(binary, work);
  if (!http.port) {
    std::cerr << "the HTTP server did not start; see " << http.log << "\n";
    return 1;
  }

  Stats stats;
  std::vector<StdioTransport*> stdio;
  std::vector<std::unique_ptr<Client>> all;
  for (int i = 0; i < stdio_clients; ++i) {
    auto t = std::make_unique<StdioTransport>(binary, serve_args(work + "/stdio-state-" + std::to_string(i)),
                                              work + "/stdio-server-" + std::to_string(i) + ".log");
    stdio.push_back(t.get());
    all.push_back(std::make_unique<Client>(std::move(t), 1000 + i, stats, work));
  }
  for (int i = 0; i < http_clients; ++i) {
    all.push_back(std::make_unique<Client>(std::make_unique<HttpTransport>(http.port), 2000 + i, stats, work));
  }
  std::printf("soak: %.0f s, %d clients (%d stdio, each with its own server; %d HTTP sessions on one server, port %d), "
              "%u cores\n",
              seconds, clients, stdio_clients, http_clients, http.port, std::thread::hardware_concurrency());
  std::fflush(stdout);

  const auto start = Clock::now();
  const auto end = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  Sampler sampler(http.pid, stdio, start);
  std::vector<std::thread> threads;
  for (auto& c : all) {
    threads.emplace_back([&c, end] { c->run(end); });
  }
  for (auto& t : threads) {
    t.join();
  }
  const double elapsed = seconds_since(start);
  sampler.stop();

  const long failures = print_report(stats, sampler, elapsed);
  const int bad_exits = stop_servers(stdio, all, http.pid);
  std::printf("result: %s\n",
              failures == 0 && stats.lost == 0 && stats.lines_lost == 0 && stats.lines_repeated == 0 && bad_exits == 0
                  ? "OK"
                  : "FAILURES (see above)");
  return failures == 0 && stats.lost == 0 && bad_exits == 0 ? 0 : 1;
}

} // namespace
} // namespace smcp::soak

int main(int argc, char** argv) {
  if (argc < 5) {
    std::cerr << "usage: soak BINARY WORKDIR SECONDS CLIENTS\n";
    return 2;
  }
  return smcp::soak::soak(argv[1], argv[2], std::stod(argv[3]), std::max(2, std::stoi(argv[4])));
}
