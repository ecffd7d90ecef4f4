// SSH benchmark (tests/bench/ssh_bench.sh): remote_bash `true` on an SSH host through the real
// stdio MCP server (default "bashrc": "snapshot", and "source"), against an OpenSSH
// ControlMaster-multiplexed and a fresh `ssh host true`, all against the same loopback sshd, with a
// fast (empty) and a heavy (200 ms) ~/.bashrc, at concurrency 1 and 16. Prints p50, p95 and calls/s
// side by side, then the issue-15 targets.
//   ssh_bench SANDBOX_MCP_BINARY [--calls N] [--ssh-calls N]
#include "tests/support/stdio_client.h"
#include "tests/support/sshd_fixture.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <fcntl.h>
#include <map>
#include <mutex>
#include <spawn.h>
#include <stdexcept>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

extern char** environ;

namespace {

using nlohmann::json;
using smcp::bench::percentile;
using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

struct Stats {
  double p50 = 0, p95 = 0, per_s = 0;
};

Stats stats(const std::vector<double>& lat, double wall_ms) {
  return {percentile(lat, 50), percentile(lat, 95),
          wall_ms > 0 ? 1000.0 * static_cast<double>(lat.size()) / wall_ms : 0};
}

// An MCP client over the server's stdio that keeps several tools/call requests in flight.
class PipelinedClient {
public:
  PipelinedClient(const std::string& binary, const std::vector<std::string>& args) : m_client(binary, args) {}

  // `total` calls of `tool` with `args`, `concurrency` in flight; returns each call's latency.
  std::vector<double> run(int total, int concurrency, const std::string& tool, const json& args) {
    std::map<int, Clock::time_point> started;
    std::vector<double> lat;
    int sent = 0;
    auto send_one = [&] {
      int id = m_client.next_id();
      started[id] = Clock::now();
      m_client.send({{"jsonrpc", "2.0"},
                     {"id", id},
                     {"method", "tools/call"},
                     {"params", {{"name", tool}, {"arguments", args}}}});
      ++sent;
    };
    while (sent < std::min(total, concurrency)) {
      send_one();
    }
    while (static_cast<int>(lat.size()) < total) {
      json m = m_client.read();
      if (!m.contains("id") || !m["id"].is_number_integer()) {
        continue;
      }
      auto it = started.find(m["id"].get<int>());
      if (it == started.end()) {
        continue;
      }
      lat.push_back(ms_since(it->second));
      started.erase(it);
      if (m.contains("error") || m["result"].value("isError", false)) {
        throw std::runtime_error("call failed: " + m.dump());
      }
      if (sent < total) {
        send_one();
      }
    }
    return lat;
  }

private:
  smcp::bench::StdioClient m_client;
};

int run_quiet(const std::vector<std::string>& argv) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  std::vector<char*> args;
  for (const auto& a : argv) {
    args.push_back(const_cast<char*>(a.c_str()));
  }
  args.push_back(nullptr);
  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, argv[0].c_str(), &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    return -1;
  }
  int st = 0;
  ::waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// `total` runs of `argv`, `concurrency` at once; latencies of the successful ones.
std::vector<double> run_processes(int total, int concurrency, const std::vector<std::string>& argv,
                                  std::atomic<int>& failures) {
  std::vector<double> lat;
  std::mutex m;
  std::atomic<int> next{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < concurrency; ++t) {
    threads.emplace_back([&] {
      while (next.fetch_add(1) < total) {
        auto t0 = Clock::now();
        int rc = run_quiet(argv);
        double ms = ms_since(t0);
        if (rc != 0) {
          ++failures;
          continue;
        }
        std::lock_guard lock(m);
        lat.push_back(ms);
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  return lat;
}

void row(const std::string& name, const Stats& c1, const Stats& c16, const std::string& note = "") {
  std::printf("| %-52s | %8.2f | %8.2f | %8.0f | %8.2f | %8.2f | %8.0f |%s\n", name.c_str(), c1.p50, c1.p95, c1.per_s,
              c16.p50, c16.p95, c16.per_s, note.empty() ? "" : (" " + note).c_str());
}

// Times calls_at(1), then calls_at(16) (each returns its calls' latencies), and prints them as one row.
// Returns the concurrency-1 figures.
Stats measure_row(const std::string& name, const std::function<std::vector<double>(int concurrency)>& calls_at) {
  auto t0 = Clock::now();
  auto c1 = calls_at(1);
  double w1 = ms_since(t0);
  t0 = Clock::now();
  auto c16 = calls_at(16);
  double w16 = ms_since(t0);
  row(name, stats(c1, w1), stats(c16, w16));
  return stats(c1, w1);
}

// A ~/.bashrc like an unguarded `conda init` / `pyenv init` block on a GPU host: 200 ms, exports,
// a dozen functions and an alias.
std::string heavy_bashrc() {
  std::string out = "sleep 0.2\nexport CONDA_EXE=/opt/conda/bin/conda CONDA_PREFIX=/opt/conda CONDA_SHLVL=1\n"
                    "export PATH=\"/opt/conda/bin:$PATH\"\nalias ll='ls -l'\n";
  for (int i = 0; i < 12; ++i) {
    out += "__conda_fn" + std::to_string(i) +
           "() {\n  local cmd=\"$1\"\n  shift\n  case \"$cmd\" in\n"
           "    activate|deactivate) eval \"$(\"$CONDA_EXE\" shell.posix \"$cmd\" \"$@\")\" ;;\n"
           "    *) \"$CONDA_EXE\" \"$cmd\" \"$@\" ;;\n  esac\n}\n";
  }
  return out + "conda() { __conda_fn0 \"$@\"; }\n";
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: ssh_bench SANDBOX_MCP_BINARY [--calls N] [--ssh-calls N]\n";
    return 2;
  }
  const std::string binary = argv[1];
  int calls = 500, ssh_calls = 60;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--calls" && i + 1 < argc) {
      calls = std::atoi(argv[++i]);
    } else if (a == "--ssh-calls" && i + 1 < argc) {
      ssh_calls = std::atoi(argv[++i]);
    }
  }
  if (auto reason = smcp::testing::SshdFixture::unavailable_reason(); !reason.empty()) {
    std::cerr << "ssh_bench: " << reason << "\n";
    return 3;
  }
  // The sessions' HOME is ours: its ~/.bashrc is empty (fast) or heavy, as each row says.
  char tmpl[] = "/tmp/smcp-bench-home-XXXXXX";
  const std::string home = ::mkdtemp(tmpl);
  auto set_bashrc = [&](bool heavy) {
    std::ofstream(home + "/.bashrc", std::ios::trunc) << (heavy ? heavy_bashrc() : "");
  };
  smcp::testing::SshdOptions so;
  so.servers = 1;
  so.source_bashrc = true; // bash sources ~/.bashrc for every command sshd starts (Debian's bash)
  so.set_env = "HOME=" + home;
  so.log_level = "ERROR";
  smcp::testing::SshdFixture fx(so);
  const std::string cfg = fx.config_file();
  const std::string config = fx.dir() + "/sandbox-mcp.json";
  ::setenv("SANDBOX_MCP_CONFIG", config.c_str(), 1);
  ::setenv("SSH_HOST", "h0", 1);

  std::printf("sshd on 127.0.0.1:%d; bash sources ~/.bashrc for every command it starts; fast shell: an empty\n"
              "~/.bashrc; heavy shell: one that takes 200 ms (conda-init-like: exports, 13 functions, an alias).\n"
              "%d tool calls (a fifth for \"source\" on the heavy shell) and %d ssh runs per cell; latencies in ms\n\n",
              fx.port(0), calls, ssh_calls);
  std::printf("| %-52s | %8s | %8s | %8s | %8s | %8s | %8s |\n", "remote `true`", "c1 p50", "c1 p95", "c1 /s",
              "c16 p50", "c16 p95", "c16 /s");
  std::printf("|%s|----------|----------|----------|----------|----------|----------|\n", std::string(54, '-').c_str());

  auto bench_server = [&](const json& host, const std::string& label, int n) {
    std::ofstream(config, std::ios::trunc) << json{{"ssh_config", cfg}, {"hosts", {host}}}.dump();
    PipelinedClient client(binary, {"serve", "--state-dir", fx.dir() + "/state", "--log-level", "warn"});
    const json args = {{"command", "true"}};
    client.run(std::min(n, 30), 1, "remote_bash", args);  // connect, start the helper, warm up
    client.run(std::min(n, 64), 16, "remote_bash", args); // open the extra sessions
    return measure_row(label, [&](int concurrency) { return client.run(n, concurrency, "remote_bash", args); });
  };
  std::atomic<int> failures{0};
  const std::string control = fx.dir() + "/cm-%C";
  auto bench_mux = [&](const std::string& label, int n) {
    run_quiet({"ssh", "-F", cfg, "-o", "ControlMaster=yes", "-o", "ControlPath=" + control, "-o", "ControlPersist=120",
               "-f", "-N", "h0"});
    std::vector<std::string> mux = {"ssh", "-F",  cfg, "-o", "ControlMaster=no", "-o", "ControlPath=" + control,
                                    "h0",  "true"};
    run_processes(3, 1, mux, failures);
    auto r = measure_row(label, [&](int concurrency) { return run_processes(n, concurrency, mux, failures); });
    run_quiet({"ssh", "-F", cfg, "-o", "ControlPath=" + control, "-O", "exit", "h0"});
    return r;
  };

  set_bashrc(false);
  const Stats fast = bench_server("h0", "fast shell: sandbox-mcp remote_bash", calls);
  bench_server(json{{"name", "h0"}, {"bashrc", "source"}}, "fast shell: sandbox-mcp, \"bashrc\": \"source\"", calls);
  const Stats fast_mux = bench_mux("fast shell: ssh h0 true (ControlMaster)", ssh_calls);
  {
    std::vector<std::string> fresh = {"ssh", "-F",  cfg, "-o", "ControlMaster=no", "-o", "ControlPath=none",
                                      "h0",  "true"};
    measure_row("fast shell: ssh h0 true (fresh connection)",
                [&](int concurrency) { return run_processes(ssh_calls, concurrency, fresh, failures); });
  }
  set_bashrc(true);
  const Stats heavy = bench_server("h0", "heavy shell: sandbox-mcp remote_bash", calls);
  bench_server(json{{"name", "h0"}, {"bashrc", "source"}}, "heavy shell: sandbox-mcp, \"bashrc\": \"source\"",
               std::max(10, calls / 5));
  const Stats heavy_mux = bench_mux("heavy shell: ssh h0 true (ControlMaster)", ssh_calls);
  (void)fast_mux;

  std::printf("\nconcurrency 1, p50: heavy - fast = %.2f ms (target <= 2); OpenSSH ControlMaster on the heavy shell "
              "/ sandbox-mcp = %.0fx (target >= 10); fast shell %.2f ms (target <= 3)\n",
              heavy.p50 - fast.p50, heavy.p50 > 0 ? heavy_mux.p50 / heavy.p50 : 0.0, fast.p50);
  if (failures > 0) {
    std::printf("\n%d ssh runs failed (sshd MaxSessions/MaxStartups under load); excluded from the figures\n",
                failures.load());
  }
  std::error_code ec;
  std::filesystem::remove_all(home, ec);
  return 0;
}
