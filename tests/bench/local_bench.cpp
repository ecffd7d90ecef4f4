// Benchmark of the tools on the local host through the real stdio server (tests/bench/run-local.sh):
//   1. tools/call round trip of remote_bash `true` (p50, p95, calls/s)
//   2. background output throughput (a job writing 1 GB, read through remote_bash_output)
//   3. server memory per background job (200 jobs) and after a 200 MB flood
//   4. remote_file_read of the last 100 lines of a 2 GB file (p50, p95)
// With --round-trips-only (after the work dir) it stops after 1.
#include "tests/support/stdio_client.h"

#include <filesystem>
#include <iostream>

using namespace smcp::bench;
using Clock = std::chrono::steady_clock;

static double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: local_bench SANDBOX_MCP_BINARY [WORK_DIR [--round-trips-only]]\n";
    return 2;
  }
  std::string binary = argv[1];
  std::filesystem::path work = argc > 2 ? argv[2] : std::filesystem::temp_directory_path() / "smcp-bench-local";
  std::filesystem::remove_all(work);
  std::filesystem::create_directories(work);
  StdioClient client(binary, {"serve", "--state-dir", (work / "state").string(), "--log-level", "warn"});

  // 1. round trips
  for (int i = 0; i < 20; ++i) {
    client.call("remote_bash", {{"command", "true"}});
  }
  std::vector<double> rt;
  auto t_all = Clock::now();
  const int n = 500;
  for (int i = 0; i < n; ++i) {
    auto t0 = Clock::now();
    client.call("remote_bash", {{"command", "true"}});
    rt.push_back(ms_since(t0));
  }
  double total_s = ms_since(t_all) / 1000;
  std::printf("remote_bash true (local, stdio, %d calls): p50 %.2f ms  p95 %.2f ms  %.0f calls/s\n", n,
              percentile(rt, 50), percentile(rt, 95), n / total_s);
  if (argc > 3 && std::string(argv[3]) == "--round-trips-only") {
    return 0;
  }

  // 2. throughput
  const long long flood = 1000LL * 1000 * 1000;
  auto job = client.call("remote_bash",
                         {{"command", "head -c " + std::to_string(flood) + " /dev/zero | tr '\\0' 'x' | fold -w 127"},
                          {"run_in_background", true}});
  std::string id = job["bash_id"];
  auto t0 = Clock::now();
  json out;
  long long returned = 0;
  do {
    out = client.call("remote_bash_output", {{"bash_id", id}, {"wait_ms", 60000}});
    returned += static_cast<long long>(out["output"].get<std::string>().size());
  } while (out["status"] == "running");
  double secs = ms_since(t0) / 1000;
  long long total = out["total_bytes"];
  std::printf("background output: %lld MB written and followed in %.2f s = %.0f MB/s (ring dropped %s of it, "
              "returned %lld KB to the reader)\n",
              total / 1000000, secs, static_cast<double>(total) / 1e6 / secs, "most", returned / 1000);
  long rss_flood = rss_kb(client.pid());

  // 3. memory per job
  long rss0 = rss_kb(client.pid());
  std::vector<std::string> ids;
  for (int i = 0; i < 200; ++i) {
    auto j = client.call("remote_bash",
                         {{"command", "echo job " + std::to_string(i) + "; sleep 30"}, {"run_in_background", true}});
    ids.push_back(j["bash_id"]);
  }
  for (const auto& jid : ids) {
    client.call("remote_bash_output", {{"bash_id", jid}, {"wait_ms", 2000}});
  }
  long rss1 = rss_kb(client.pid());
  std::printf("memory: server RSS %ld KB after a 1 GB job; +%ld KB for 200 running jobs = %.1f KB per job\n", rss_flood,
              rss1 - rss0, static_cast<double>(rss1 - rss0) / 200);
  for (const auto& jid : ids) {
    client.call("remote_bash_kill", {{"bash_id", jid}, {"signal", "KILL"}});
  }

  // 4. tail of a 2 GB file
  auto big = work / "big.log";
  {
    FILE* f = std::fopen(big.c_str(), "w");
    std::string line = "2026-11-21 12:00:00 INFO step=123456 loss=0.123456 lr=0.0001 throughput=1234.5 tokens/s\n";
    std::string block;
    while (block.size() < (1 << 20)) {
      block += line;
    }
    for (long long written = 0; written < 2LL * 1024 * 1024 * 1024; written += static_cast<long long>(block.size())) {
      std::fwrite(block.data(), 1, block.size(), f);
    }
    std::fclose(f);
  }
  std::vector<double> fr;
  for (int i = 0; i < 50; ++i) {
    auto t = Clock::now();
    auto r = client.call("remote_file_read", {{"file_path", big.string()}, {"offset", -100}});
    fr.push_back(ms_since(t));
    if (r["lines"] != 100) {
      std::cerr << "unexpected window: " << r.dump().substr(0, 200) << "\n";
      return 1;
    }
  }
  std::printf("remote_file_read last 100 lines of a %.1f GB file: p50 %.2f ms  p95 %.2f ms\n",
              static_cast<double>(std::filesystem::file_size(big)) / (1 << 30), percentile(fr, 50), percentile(fr, 95));
  std::filesystem::remove(big);
  return 0;
}
