// The SSH helper when things go wrong on the host (issue 23), through the real `sandbox-mcp serve`
// and a real sshd whose sessions have their own HOME: a stopped helper (SIGSTOP, as a suspended
// Slurm node or a frozen cgroup does) is replaced and nothing is reported killed that never ran;
// the helper's process serving a call dying mid-call ends the command's tree and says so; a
// socket removed under the helper does not turn it off.
// SMCP_TEST_BINARY runs these against another build of the server (to see the old behaviour).
#include "tests/support/sandbox_calls.h"
#include "tests/support/sshd_fixture.h"
#include "tests/support/stdio_client.h"

#include <gtest/gtest.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace smcp {
namespace {

using namespace std::chrono_literals;
using bench::StdioClient;
using nlohmann::json;
using testing::SshdFixture;
using testing::SshdOptions;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Field 4 of /proc/PID/stat: the parent.
int parent_of(const std::string& pid) {
  const std::string stat = read_file("/proc/" + pid + "/stat");
  const auto at = stat.rfind(')');
  if (at == std::string::npos) {
    return -1;
  }
  std::istringstream rest(stat.substr(at + 2));
  std::string state;
  int ppid = -1;
  rest >> state >> ppid;
  return ppid;
}

// `perl -` processes with this HOME: the helper, or (with `parent`) the helper's children.
std::vector<int> perl_processes(const std::string& home, int parent = 0) {
  std::vector<int> out;
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string pid = e.path().filename();
    if (pid.find_first_not_of("0123456789") != std::string::npos) {
      continue;
    }
    const std::string environ = read_file("/proc/" + pid + "/environ");
    if (read_file("/proc/" + pid + "/cmdline") == std::string("perl\0-\0", 7) &&
        environ.find("HOME=" + home + std::string(1, '\0')) != std::string::npos &&
        environ.find("SANDBOX_MCP_SHELL_INIT") == std::string::npos && (parent == 0 || parent_of(pid) == parent)) {
      out.push_back(std::stoi(pid));
    }
  }
  return out;
}

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

class SshHelperFaultsTest : public ::testing::Test {
protected:
  void SetUp() override {
    if (auto reason = SshdFixture::unavailable_reason(); !reason.empty()) {
      GTEST_SKIP() << "no sshd: " << reason;
    }
    char tmpl[] = "/tmp/smcp-home-XXXXXX";
    home = ::mkdtemp(tmpl);
    std::ofstream(home + "/.bashrc") << "sleep 0.2\nexport SMCP_GREETING=hello\n";
  }
  void TearDown() override {
    for (int pid : stopped) {
      ::kill(pid, SIGCONT);
    }
    client.reset();
    fx.reset();
    std::error_code ec;
    fs::remove_all(home, ec);
  }

  void start() {
    SshdOptions o;
    o.servers = 1;
    o.source_bashrc = true;
    o.set_env = "HOME=" + home;
    fx = std::make_unique<SshdFixture>(o);
    const std::string config = fx->dir() + "/sandbox-mcp.json";
    std::ofstream(config) << json{{"ssh_config", fx->config_file()}, {"hosts", json::array({"h0"})}}.dump(2);
    testing::ScopedEnv e({{"SANDBOX_MCP_CONFIG", config}, {"SSH_HOST", "h0"}});
    const char* other = std::getenv("SMCP_TEST_BINARY");
    client = std::make_unique<StdioClient>(
        other ? other : SMCP_BINARY,
        std::vector<std::string>{"serve", "--state-dir", fx->dir() + "/state", "--log-level", "warn"});
  }

  json bash(const std::string& command, const json& extra = json::object()) {
    json args = extra;
    args["command"] = command;
    return client->call("remote_bash", args);
  }

  json host_status() { return client->call("remote_hosts", {{"host", "h0"}})["hosts"][0]; }

  int the_helper() {
    auto pids = perl_processes(home);
    EXPECT_EQ(pids.size(), 1u) << "one helper per host";
    return pids.empty() ? -1 : pids[0];
  }

  std::string home;
  std::unique_ptr<SshdFixture> fx;
  std::unique_ptr<StdioClient> client;
  std::vector<int> stopped;
};

TEST_F(SshHelperFaultsTest, AStoppedHelperIsReplacedAndNothingIsReportedKilled) {
  start();
  EXPECT_EQ(bash("echo $SMCP_GREETING")["stdout"], "hello\n");
  const int helper = the_helper();
  ASSERT_GT(helper, 0);
  ASSERT_EQ(::kill(helper, SIGSTOP), 0);
  stopped.push_back(helper);
  // A timeout shorter than the wait for the helper to take the command: an error that says
  // nothing ran, not a command reported killed.
  auto t0 = Clock::now();
  std::string error;
  try {
    json quick = bash("echo quick", {{"timeout", 1000}});
    error = "answered: " + quick.dump();
  } catch (const std::exception& e) {
    error = e.what();
  }
  std::printf("[ measure  ] echo quick (1 s timeout) with the helper stopped: %.2f s: %s\n", seconds_since(t0),
              error.c_str());
  EXPECT_NE(error.find("nothing ran"), std::string::npos) << error;
  EXPECT_NE(error.find("it can be sent again"), std::string::npos) << error;
  t0 = Clock::now();
  json r;
  try {
    r = bash("echo hi", {{"timeout", 3000}});
  } catch (const std::exception& e) {
    r = {{"error", e.what()}};
  }
  const double first = seconds_since(t0);
  std::printf("[ measure  ] echo hi (3 s timeout) with the helper stopped: %.2f s: %s\n", first, r.dump().c_str());
  EXPECT_EQ(r.value("stdout", ""), "hi\n") << r.dump();
  EXPECT_EQ(r.value("exit_code", -1), 0) << r.dump();
  EXPECT_FALSE(r.value("timed_out", false)) << r.dump();
  EXPECT_LT(first, 3.0);
  // A new helper serves what follows; the stopped one is not used again.
  t0 = Clock::now();
  EXPECT_EQ(bash("echo again")["stdout"], "again\n");
  std::printf("[ measure  ] the next call: %.2f s\n", seconds_since(t0));
  t0 = Clock::now();
  json job = bash("echo from the job", {{"run_in_background", true}});
  std::printf("[ measure  ] a background start: %.2f s\n", seconds_since(t0));
  ASSERT_TRUE(job.contains("bash_id")) << job.dump();
  EXPECT_LT(seconds_since(t0), 5.0);
  json out;
  for (int i = 0; i < 50; ++i) {
    out = client->call("remote_bash_output", {{"bash_id", job["bash_id"]}, {"wait_ms", 500}});
    if (out["status"] != "running") {
      break;
    }
  }
  EXPECT_EQ(out["status"], "exited") << out.dump();
  // Continued, the old helper finds its channel closed and exits without running anything.
  ::kill(helper, SIGCONT);
  stopped.clear();
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    gone = ::kill(helper, 0) != 0 ||
           read_file("/proc/" + std::to_string(helper) + "/stat").find(") Z") != std::string::npos;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(gone) << "the stopped helper outlived its channel";
  EXPECT_EQ(bash("echo still")["stdout"], "still\n");
  EXPECT_EQ(host_status()["shell_env"], "snapshot");
}

TEST_F(SshHelperFaultsTest, AServingProcessThatDiesMidCallEndsTheCommandAndSaysSo) {
  start();
  bash("true");
  const int helper = the_helper();
  ASSERT_GT(helper, 0);
  const std::string marker = home + "/marker";
  std::thread killer([&] {
    for (int i = 0; i < 50; ++i) {
      std::this_thread::sleep_for(100ms);
      auto serving = perl_processes(home, helper);
      if (!serving.empty() && i >= 5) {
        ::kill(serving[0], SIGKILL);
        return;
      }
    }
  });
  std::string error;
  try {
    bash("sleep 2; touch " + marker + "; echo done");
  } catch (const std::exception& e) {
    error = e.what();
  }
  killer.join();
  std::printf("[ measure  ] the answer: %s\n", error.c_str());
  EXPECT_NE(error.find("lost after the command started"), std::string::npos) << error;
  EXPECT_NE(error.find("were ended"), std::string::npos) << error;
  std::this_thread::sleep_for(2500ms);
  EXPECT_FALSE(fs::exists(marker)) << "the command kept running after its stream was lost";
  EXPECT_EQ(bash("echo next")["stdout"], "next\n");
}

TEST_F(SshHelperFaultsTest, ASocketRemovedUnderTheHelperStartsAnotherAndIsNotBlamedOnSshd) {
  start();
  for (int round = 0; round < 2; ++round) {
    bash("true");
    int removed = 0;
    for (const auto& e : fs::recursive_directory_iterator(home + "/.local/state/sandbox-mcp/run")) {
      if (e.path().filename().string().rfind("h-", 0) == 0) {
        fs::remove(e.path());
        ++removed;
      }
    }
    ASSERT_EQ(removed, 1);
    EXPECT_EQ(bash("echo $SMCP_GREETING")["stdout"], "hello\n");
    json h = host_status();
    EXPECT_EQ(h["shell_env"], "snapshot") << h.dump();
  }
}

// A startup file that writes a file the helper watches (an append to ~/.profile each time it
// runs) changed it before the helper took its signature, so it does not make every request stale
// (each used to fail as "nothing ran" after four new helpers).
TEST_F(SshHelperFaultsTest, AStartupFileThatWritesAWatchedFileDoesNotMakeEveryCommandStale) {
  std::ofstream(home + "/.bashrc") << "echo \"# $RANDOM\" >> ~/.profile\nexport SMCP_GREETING=hello\n";
  start();
  for (int i = 0; i < 3; ++i) {
    const json r = bash("echo $SMCP_GREETING");
    EXPECT_EQ(r["stdout"], "hello\n") << r.dump();
  }
  const json st = host_status();
  EXPECT_EQ(st["shell_env"], "snapshot") << st.dump();
  EXPECT_EQ(perl_processes(home).size(), 1u) << "one helper served them all";
}

// A line a startup file prints (here from the user's own .bashrc; in the attack, a file another
// user writes that .bashrc cats) that looks like the helper's "ready" line does not send commands
// to the socket it names: the helper's line carries a nonce the server drew.
TEST_F(SshHelperFaultsTest, AForgedReadyLineFromAStartupFileIsNotTheHelpers) {
  std::ofstream(home + "/.bashrc") << "printf '\\nsandbox-mcp-helper: ready 0123456789abcdef0123456789abcdef "
                                      "/tmp/smcp-forged.sock\\n'\nexport SMCP_GREETING=hello\n";
  start();
  const json r = bash("echo $SMCP_GREETING");
  EXPECT_EQ(r["stdout"], "hello\n") << r.dump();
  const json st = host_status();
  EXPECT_EQ(st["shell_env"], "snapshot") << st.dump();
}

} // namespace
} // namespace smcp
