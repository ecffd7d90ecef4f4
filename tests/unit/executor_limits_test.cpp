// What a command run through an executor to its end (sandbox::run_argv over exec::LocalExecutor,
// what the sandbox manager drives git and podman with) can cost the server: collected output keeps
// the head of each stream (a git fsmonitor writing 400 MB to stderr once took the CLI to 3 GB), and
// a run that times out leaves none of its process group running.
#include "sandbox/exec/captured_output.h"
#include "sandbox/exec/local_executor.h"
#include "sandbox/exec/run_process.h"
#include "sandbox/host_commands.h"

#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <unistd.h>

namespace smcp {
namespace {

using namespace std::chrono_literals;

// The peak resident size of this process (VmHWM), in bytes; reset by writing 5 to clear_refs.
long peak_rss() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmHWM:", 0) == 0) {
      return std::stol(line.substr(6)) * 1024;
    }
  }
  return -1;
}

TEST(CapturedOutput, KeepsTheHeadAndSaysOnceThatItWasCut) {
  std::string s;
  exec::append_captured(s, "abcd", 6);
  exec::append_captured(s, "ef", 6);
  EXPECT_EQ(s, "abcdef");
  exec::append_captured(s, "g", 6);
  EXPECT_EQ(s, "abcdef" + std::string(exec::k_output_cut_note));
  exec::append_captured(s, "hij", 6);
  EXPECT_EQ(s, "abcdef" + std::string(exec::k_output_cut_note));
  std::string t;
  exec::append_captured(t, "0123456789", 4);
  EXPECT_EQ(t, "0123" + std::string(exec::k_output_cut_note));
}

#if defined(__SANITIZE_ADDRESS__)
constexpr long k_rss_bound = 128L * 1024 * 1024;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr long k_rss_bound = 128L * 1024 * 1024;
#else
constexpr long k_rss_bound = 64L * 1024 * 1024;
#endif
#else
constexpr long k_rss_bound = 64L * 1024 * 1024;
#endif

// 100 MB on stderr through run_argv: the exit status comes back, the first 16 MiB and a note are
// kept, the rest was read (the command ended) and the process did not grow by the 100 MB.
TEST(ExecutorLimits, RunArgvKeepsTheHeadOfAHugeStreamAndItsStatus) {
  exec::LocalExecutor x;
  std::ofstream("/proc/self/clear_refs") << "5"; // the peak from here
  const long before = peak_rss();
  auto o = sandbox::run_argv(x, {"sh", "-c", "head -c 100000000 /dev/zero >&2; echo done; exit 3"}, 120s);
  const long grown = peak_rss() - before;
  EXPECT_EQ(o.status, 3);
  EXPECT_EQ(o.out, "done\n");
  EXPECT_EQ(o.err.size(), exec::k_max_captured_output + exec::k_output_cut_note.size());
  EXPECT_TRUE(o.err.size() > exec::k_max_captured_output &&
              o.err.compare(exec::k_max_captured_output, std::string::npos, exec::k_output_cut_note) == 0)
      << "the head, then the note";
  // Uncapped, the 100 MB would be kept (and copied): over 190 MiB here. ASan's shadow memory and
  // quarantine add to what the 16 MiB kept cost, hence its larger bound.
  EXPECT_LT(grown, k_rss_bound) << "peak RSS grew by " << grown / (1024 * 1024) << " MiB";
}

std::vector<pid_t> pids_matching(const std::string& pattern) {
  auto r = exec::run_process({"pgrep", "-f", pattern}, 10s);
  std::vector<pid_t> pids;
  std::istringstream in(r.out);
  for (pid_t p; in >> p;) {
    pids.push_back(p);
  }
  return pids;
}

// A run that times out ends its command's process group (a `podman exec` or a host `git fetch`
// must not run on for ever): SIGTERM, and SIGKILL for what ignores it.
TEST(ExecutorLimits, ATimedOutRunLeavesNoneOfItsProcessGroupRunning) {
  for (const std::string trap : {"", "trap '' TERM; "}) {
    // A duration no other process sleeps: the marker pgrep looks for.
    const std::string marker = "sleep 1" + std::to_string(::getpid()) + (trap.empty() ? "1" : "2");
    exec::LocalExecutor x;
    const auto start = std::chrono::steady_clock::now();
    EXPECT_THROW(sandbox::run_argv(x, {"sh", "-c", trap + marker + " & " + marker}, 1s), exec::HostError);
    std::vector<pid_t> left = pids_matching(marker);
    for (int i = 0; i < 30 && !left.empty(); ++i) {
      std::this_thread::sleep_for(100ms);
      left = pids_matching(marker);
    }
    EXPECT_TRUE(left.empty()) << trap << left.size() << " processes of the timed-out run are still running";
    EXPECT_LT(std::chrono::steady_clock::now() - start, 1s + exec::k_kill_grace + 3s) << trap;
    for (pid_t p : left) {
      ::kill(p, SIGKILL);
    }
  }
}

} // namespace
} // namespace smcp
