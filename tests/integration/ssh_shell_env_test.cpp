// A heavy ~/.bashrc on an SSH host (issue 15), through the real `sandbox-mcp serve` and a real
// sshd whose sessions have their own HOME: the bashrc sleeps 200 ms, exports a variable, defines
// a function and an alias, sets a shell option, prints to stdout and stderr, fails, and counts
// its runs in a file. Commands see everything it defines as with `ssh host cmd` (the alias even
// expands), nothing it prints, and it runs once per helper instead of twice per call. Edits take
// effect on the next call; remote_hosts {refresh_env} takes it again on demand; when sshd refuses
// streams to Unix sockets, commands go through the login shell as before. The helper's run
// directory is checked from / down (one others could change: the login shell, with the reason),
// and on a home shared by several hosts it reaps only its own host's dead helpers.
#include "tests/support/sandbox_calls.h"
#include "tests/support/sshd_fixture.h"
#include "tests/support/stdio_client.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <csignal>
#include <sys/stat.h>
#include <thread>
#include <utime.h>

namespace smcp {
namespace {

using namespace std::chrono_literals;
using bench::StdioClient;
using nlohmann::json;
using testing::SshdFixture;
using testing::SshdOptions;
namespace fs = std::filesystem;

constexpr const char* k_bashrc = R"(echo run >> "$HOME/runs"
sleep 0.2
export SMCP_GREETING="hello from bashrc"
export SMCP_PATHISH="$SMCP_PATHISH:x"
greet() { echo "greet $1"; }
alias say='echo said'
shopt -s extglob
[ -r "$HOME/extra" ] && . "$HOME/extra"
echo "bashrc noise on stdout"
echo "bashrc noise on stderr" >&2
no_such_command_in_bashrc 2>/dev/null
return 1
)";

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int count_lines(const std::string& text) {
  return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
}

class SshShellEnvTest : public ::testing::Test {
protected:
  void SetUp() override {
    if (auto reason = SshdFixture::unavailable_reason(); !reason.empty()) {
      GTEST_SKIP() << "no sshd: " << reason;
    }
    char tmpl[] = "/tmp/smcp-home-XXXXXX";
    home = ::mkdtemp(tmpl);
    std::ofstream(home + "/.bashrc") << k_bashrc;
  }
  void TearDown() override {
    client.reset();
    fx.reset();
    std::error_code ec;
    fs::remove_all(home, ec);
  }

  void start(const std::string& bashrc_mode = "", std::vector<std::string> sshd_options = {}) {
    SshdOptions o;
    o.servers = 1;
    o.source_bashrc = true; // bash sources ~/.bashrc for every command sshd starts
    o.set_env = "HOME=" + home;
    o.sshd_options = std::move(sshd_options);
    fx = std::make_unique<SshdFixture>(o);
    const std::string config = fx->dir() + "/sandbox-mcp.json";
    json c = {{"ssh_config", fx->config_file()}, {"hosts", json::array({"h0"})}};
    if (!bashrc_mode.empty()) {
      c["bashrc"] = bashrc_mode;
    }
    std::ofstream(config) << c.dump(2);
    testing::ScopedEnv e({{"SANDBOX_MCP_CONFIG", config}, {"SSH_HOST", "h0"}});
    client = std::make_unique<StdioClient>(
        SMCP_BINARY, std::vector<std::string>{"serve", "--state-dir", fx->dir() + "/state", "--log-level", "warn"});
  }

  json bash(const std::string& command, const json& extra = json::object()) {
    json args = extra;
    args["command"] = command;
    return client->call("remote_bash", args);
  }

  json host_status(const json& extra = json::object()) {
    json args = extra;
    args["host"] = "h0";
    json r = client->call("remote_hosts", args);
    return r["hosts"][0];
  }

  int runs() { return count_lines(read_file(home + "/runs")); }

  std::string home;
  std::unique_ptr<SshdFixture> fx;
  std::unique_ptr<StdioClient> client;
};

TEST_F(SshShellEnvTest, CommandsSeeWhatTheBashrcDefinesAndNothingItPrints) {
  start();
  json r = bash("echo \"$HOME|$SMCP_GREETING|$SMCP_PATHISH\"; greet x; say y; shopt -q extglob && echo extglob on");
  EXPECT_EQ(r["stdout"], home + "|hello from bashrc|:x:x\ngreet x\nsaid y\nextglob on\n") << r.dump();
  EXPECT_EQ(r["stderr"], "") << r.dump();
  EXPECT_EQ(r["exit_code"], 0);
  // The exit code, output and errors are the command's own.
  r = bash("echo out; echo err >&2; exit 7");
  EXPECT_EQ(r["stdout"], "out\n");
  EXPECT_EQ(r["stderr"], "err\n");
  EXPECT_EQ(r["exit_code"], 7);
  json h = host_status();
  EXPECT_EQ(h["shell_env"], "snapshot") << h.dump();
  // The bashrc ran for the helper's login shell and its snapshot, not for each call.
  const int before = runs();
  for (int i = 0; i < 10; ++i) {
    bash("greet $RANDOM >/dev/null");
  }
  EXPECT_EQ(runs(), before) << "~/.bashrc ran again for ordinary calls";
  EXPECT_LE(before, 3);
}

TEST_F(SshShellEnvTest, CdExportAndFunctionsOfOneCommandDoNotLeakIntoTheNext) {
  start();
  json first = bash("pwd");
  bash("cd /tmp && export LEAK=1 && greet() { echo changed; } && alias say='echo redefined'");
  json r = bash("pwd; echo ${LEAK:-unset}; greet a; say b");
  EXPECT_EQ(r["stdout"], first["stdout"].get<std::string>() + "unset\ngreet a\nsaid b\n") << r.dump();
  // The call's own env and cwd win over the snapshot.
  r = bash("echo $SMCP_GREETING; pwd", {{"env", {{"SMCP_GREETING", "from the call"}}}, {"cwd", "/tmp"}});
  EXPECT_EQ(r["stdout"], "from the call\n/tmp\n") << r.dump();
}

TEST_F(SshShellEnvTest, AnEditedBashrcTakesEffectOnTheNextCall) {
  start();
  std::ofstream(home + "/.bashrc") << std::string("export SMCP_OLD=1\n") + k_bashrc;
  EXPECT_EQ(bash("echo ${SMCP_OLD:-unset}")["stdout"], "1\n");
  std::ofstream(home + "/.bashrc") << "export SMCP_GREETING=edited\ngreet() { echo \"new greet $1\"; }\n";
  json r = bash("echo $SMCP_GREETING ${SMCP_OLD:-unset}; greet z; type -t say || echo no alias");
  EXPECT_EQ(r["stdout"], "edited unset\nnew greet z\nno alias\n") << r.dump();
  // A file the bashrc sources is not watched: refresh_env takes it again.
  std::ofstream(home + "/extra") << "export SMCP_EXTRA=one\n";
  std::ofstream(home + "/.bashrc") << k_bashrc;
  EXPECT_EQ(bash("echo ${SMCP_EXTRA:-unset}")["stdout"], "one\n");
  std::ofstream(home + "/extra") << "export SMCP_EXTRA=two\n";
  EXPECT_EQ(bash("echo ${SMCP_EXTRA:-unset}")["stdout"], "one\n") << "taken once per helper";
  json h = host_status({{"refresh_env", true}});
  EXPECT_NE(h["refresh_env"].get<std::string>().find("taken again"), std::string::npos) << h.dump();
  EXPECT_EQ(bash("echo ${SMCP_EXTRA:-unset}")["stdout"], "two\n");
}

TEST_F(SshShellEnvTest, TimeoutsEndTheWholeTreeAndJobsWork) {
  start();
  const std::string tag = std::to_string(::getpid()) + "_" + std::to_string(std::rand());
  json r = bash("greet t; (exec -a smcp_left_" + tag + " sleep 300 &); setsid sh -c 'exec -a smcp_setsid_" + tag +
                    " sleep 301' & sleep 30",
                {{"timeout", 1500}});
  EXPECT_EQ(r["timed_out"], true) << r.dump();
  EXPECT_EQ(r["stdout"], "greet t\n");
  std::string ps;
  for (int i = 0; i < 50; ++i) {
    ps.clear();
    FILE* p = ::popen(("pgrep -af '[s]mcp_.*_" + tag + "'").c_str(), "r");
    char buf[256];
    while (p && ::fgets(buf, sizeof buf, p)) {
      ps += buf;
    }
    if (p) {
      ::pclose(p);
    }
    if (ps.empty()) {
      break;
    }
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(ps, "") << "processes of the timed-out command survived";
  // A durable job sees the snapshot too.
  json job = bash("sleep 0.3; greet job; echo $SMCP_GREETING", {{"run_in_background", true}});
  ASSERT_TRUE(job.contains("bash_id")) << job.dump();
  json out;
  std::string output;
  for (int i = 0; i < 100; ++i) {
    out = client->call("remote_bash_output", {{"bash_id", job["bash_id"]}, {"wait_ms", 1000}});
    output += out["output"].get<std::string>();
    if (out["status"] != "running") {
      break;
    }
  }
  EXPECT_EQ(out["status"], "exited") << out.dump();
  EXPECT_EQ(out["exit_code"], 0);
  EXPECT_EQ(output, "greet job\nhello from bashrc\n") << out.dump();
}

// The helper is `perl -` under this test's sshd, with its HOME in the environment.
std::vector<int> helper_pids(const std::string& home) {
  std::vector<int> out;
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string pid = e.path().filename();
    if (pid.find_first_not_of("0123456789") != std::string::npos) {
      continue;
    }
    std::string cmdline = read_file("/proc/" + pid + "/cmdline");
    std::string environ = read_file("/proc/" + pid + "/environ");
    if (cmdline == std::string("perl\0-\0", 7) &&
        environ.find("HOME=" + home + std::string(1, '\0')) != std::string::npos &&
        environ.find("SANDBOX_MCP_SHELL_INIT") == std::string::npos) {
      out.push_back(std::stoi(pid));
    }
  }
  return out;
}

TEST_F(SshShellEnvTest, AHelperKilledMidCommandLosesNothingAndIsReplaced) {
  start();
  bash("true");
  auto pids = helper_pids(home);
  ASSERT_EQ(pids.size(), 1u) << "one helper per host";
  std::thread killer([&] {
    std::this_thread::sleep_for(500ms);
    ::kill(pids[0], SIGKILL);
  });
  // The running command does not depend on the helper process: it ends normally.
  json r = bash("sleep 1.5; greet after");
  killer.join();
  EXPECT_EQ(r["stdout"], "greet after\n") << r.dump();
  EXPECT_EQ(r["exit_code"], 0);
  // The next call starts a new helper (the old one's socket is gone).
  r = bash("greet again");
  EXPECT_EQ(r["stdout"], "greet again\n") << r.dump();
  auto now = helper_pids(home);
  ASSERT_EQ(now.size(), 1u);
  EXPECT_NE(now[0], pids[0]);
  // A flood of output comes through whole, and the server keeps serving.
  r = bash("head -c 3000000 /dev/zero | tr '\\0' x; echo; echo end >&2");
  EXPECT_EQ(r["exit_code"], 0);
  EXPECT_EQ(r["stderr"], "end\n") << r.dump().substr(0, 300);
  EXPECT_EQ(bash("echo alive")["stdout"], "alive\n");
}

TEST_F(SshShellEnvTest, TheHelperEndsWithTheServer) {
  start();
  bash("true");
  ASSERT_EQ(helper_pids(home).size(), 1u);
  client.reset(); // the server exits: its connections close
  std::vector<int> left;
  for (int i = 0; i < 50; ++i) {
    left = helper_pids(home);
    if (left.empty()) {
      break;
    }
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(left.empty()) << "the helper outlived its connection";
}

TEST_F(SshShellEnvTest, SourceModeRunsTheStartupFilesForEveryCall) {
  start("source");
  const int before = runs();
  json r = bash("echo $SMCP_GREETING; greet s");
  EXPECT_NE(r["stdout"].get<std::string>().find("hello from bashrc\ngreet s\n"), std::string::npos) << r.dump();
  bash("true");
  EXPECT_GE(runs() - before, 4) << "the login shell and the command's bash both source it, per call";
}

TEST_F(SshShellEnvTest, WithoutStreamForwardingCommandsGoThroughTheLoginShell) {
  start("", {"AllowStreamLocalForwarding=no"});
  json r = bash("echo $SMCP_GREETING");
  EXPECT_NE(r["stdout"].get<std::string>().find("hello from bashrc\n"), std::string::npos) << r.dump();
  EXPECT_EQ(r["exit_code"], 0);
  json h = host_status();
  EXPECT_EQ(h["shell_env"], "login-shell") << h.dump();
  EXPECT_NE(h["shell_env_note"].get<std::string>().find("AllowStreamLocalForwarding"), std::string::npos) << h.dump();
  // And it keeps serving.
  EXPECT_EQ(bash("echo again")["exit_code"], 0);
}

TEST_F(SshShellEnvTest, ABashrcThatExitsFallsBackToTheLoginShellWithAReason) {
  std::ofstream(home + "/.bashrc") << "export SMCP_GREETING=early\n[ -n \"$SMCP_SNAPSHOT_BASE\" ] && exit 3\n";
  start();
  json r = bash("echo $SMCP_GREETING");
  EXPECT_EQ(r["stdout"], "early\n") << r.dump();
  json h = host_status();
  EXPECT_EQ(h["shell_env"], "login-shell") << h.dump();
  EXPECT_NE(h["shell_env_note"].get<std::string>().find("exit"), std::string::npos) << h.dump();
}

TEST_F(SshShellEnvTest, ARunDirectoryOthersCouldChangeFallsBackToTheLoginShellWithTheReason) {
  const std::string state = home + "/.local/state";
  fs::create_directories(state);
  ASSERT_EQ(::chmod(state.c_str(), 0777), 0);
  start();
  json r = bash("echo $SMCP_GREETING");
  EXPECT_NE(r["stdout"].get<std::string>().find("hello from bashrc\n"), std::string::npos) << r.dump();
  json h = host_status();
  EXPECT_EQ(h["shell_env"], "login-shell") << h.dump();
  EXPECT_NE(
      h["shell_env_note"].get<std::string>().find(state + " is writable by group or others (mode 0777) and not sticky"),
      std::string::npos)
      << h.dump();
  EXPECT_FALSE(fs::exists(state + "/sandbox-mcp/run")) << "nothing made under a directory others can change";
  // A parent that is a link into such a directory: the same.
  ASSERT_EQ(::chmod(state.c_str(), 0755), 0);
  const std::string ww = home + "/ww";
  fs::create_directory(ww);
  ASSERT_EQ(::chmod(ww.c_str(), 0777), 0);
  fs::create_directory_symlink(ww, state + "/sandbox-mcp");
  h = host_status({{"refresh_env", true}});
  EXPECT_NE(h["refresh_env"].get<std::string>().find(ww + " is writable by group or others"), std::string::npos)
      << h.dump();
  EXPECT_EQ(h["shell_env"], "login-shell") << h.dump();
  EXPECT_TRUE(fs::is_empty(ww));
  // Fixed: the helper runs again.
  fs::remove(state + "/sandbox-mcp");
  h = host_status({{"refresh_env", true}});
  EXPECT_NE(h["refresh_env"].get<std::string>().find("taken again"), std::string::npos) << h.dump();
  EXPECT_EQ(h["shell_env"], "snapshot") << h.dump();
  EXPECT_EQ(bash("greet fixed")["stdout"], "greet fixed\n");
}

// A home on NFS is shared by the login node and every compute node: the run directory holds the
// files of helpers on other hosts, whose pids mean nothing here.
TEST_F(SshShellEnvTest, OnASharedHomeOnlyThisHostsDeadHelpersAreReaped) {
  start();
  bash("true");
  const std::string run = home + "/.local/state/sandbox-mcp/run";
  std::string host;
  for (const auto& e : fs::directory_iterator(run)) {
    const std::string name = e.path().filename();
    if (name.rfind("h-", 0) == 0) {
      host = name.substr(2, name.find('-', 2) - 2); // h-HOST-PID-RAND.sock
    }
  }
  ASSERT_NE(host.find('_'), std::string::npos) << "no socket named by its host in " << run;
  int dead = 4194000;
  while (::kill(dead, 0) == 0 || errno != ESRCH) {
    --dead;
  }
  const std::string d = run + "/";
  const std::string pid = std::to_string(dead);
  const std::vector<std::string> other_hosts = {
      d + "h-login1_0badf00d-" + pid + "-12345678.sock", d + "s-login1_0badf00d-" + pid + "-12345678.sh",
      d + "h-gpu_node_07_2badf00d-" + pid + "-9abcdef0.sock", d + "s-gpu_node_07_2badf00d-" + pid + "-9abcdef0.sh"};
  const std::vector<std::string> this_host = {d + "h-" + host + "-" + pid + "-12345678.sock",
                                              d + "s-" + host + "-" + pid + "-12345678.sh"};
  const time_t old = ::time(nullptr) - 3 * 86400;
  for (const auto& f : other_hosts) {
    std::ofstream(f) << "x";
    utimbuf t{old, old};
    ::utime(f.c_str(), &t);
  }
  for (const auto& f : this_host) {
    std::ofstream(f) << "x";
    utimbuf t{old, old};
    ::utime(f.c_str(), &t);
  }
  // A new helper (on this host) reaps.
  json h = host_status({{"refresh_env", true}});
  EXPECT_NE(h["refresh_env"].get<std::string>().find("taken again"), std::string::npos) << h.dump();
  for (const auto& f : other_hosts) {
    EXPECT_TRUE(fs::exists(f)) << "another host's " << f << " was removed";
  }
  for (const auto& f : this_host) {
    EXPECT_FALSE(fs::exists(f)) << "this host's dead helper left " << f;
  }
  EXPECT_EQ(bash("greet still")["stdout"], "greet still\n");
}

} // namespace
} // namespace smcp
