// The cost of one foreground call on the local host, in process (no MCP server around it):
// LocalHost::run of `true`, N times; prints p50, p95, calls/s and the caller's CPU time per call
// (user + system of this process, children not counted: steadier than wall time on a busy
// machine). Run: local_call_bench [N]
// (built with the project; tests/bench/local_bench measures the same through the stdio server).
#include "sandbox/exec/local_host.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <sys/resource.h>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

class Discard : public smcp::exec::OutputSink {
public:
  void on_output(smcp::exec::Stream, std::string_view) override {}
};

double cpu_ms() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto ms = [](const timeval& t) { return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_usec) / 1e3; };
  return ms(ru.ru_utime) + ms(ru.ru_stime);
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(p / 100 * static_cast<double>(v.size() - 1))];
}

} // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 500;
  auto host = smcp::exec::make_local_host({});
  smcp::exec::CommandSpec spec;
  spec.command = "true";
  Discard sink;
  for (int i = 0; i < 20; ++i) {
    host->run(spec, sink, {});
  }
  std::vector<double> ms;
  const auto t_all = Clock::now();
  const double cpu0 = cpu_ms();
  for (int i = 0; i < n; ++i) {
    const auto t0 = Clock::now();
    host->run(spec, sink, {});
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  const double total_s = std::chrono::duration<double>(Clock::now() - t_all).count();
  const double cpu_us = (cpu_ms() - cpu0) * 1e3 / n;
  std::printf("LocalHost::run `true` (%d calls): p50 %.3f ms  p95 %.3f ms  %.0f calls/s  caller CPU %.0f us/call\n", n,
              percentile(ms, 50), percentile(ms, 95), n / total_s, cpu_us);
  return 0;
}
