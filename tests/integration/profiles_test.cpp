// bubblewrap execution profiles through the real `sandbox-mcp serve` with real bwrap and prlimit:
// what each profile lets a command reach and use, the limit reported when one ends a command, the
// concurrency limit, a confined background job across a restart, an SSH host (the sshd fixture),
// and clear errors when bwrap is missing. Skipped, saying why, only when bwrap cannot run here.
#include "sandbox/exec/run_process.h"
#include "tests/support/sandbox_calls.h"
#include "tests/support/sshd_fixture.h"
#include "tests/support/stdio_client.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <filesystem>
#include <fstream>
#include <netinet/in.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

namespace smcp {
namespace {

using namespace std::chrono_literals;
using bench::StdioClient;
using nlohmann::json;
namespace fs = std::filesystem;

std::string why_no_bwrap() {
  auto r = exec::run_process({"bwrap", "--ro-bind", "/", "/", "--unshare-pid", "--unshare-net", "--", "true"}, 30s);
  return r.status == 0 ? "" : "bwrap does not run here (scripts/install-deps.sh --test installs bubblewrap): " + r.err;
}

class ProfilesTest : public ::testing::Test {
protected:
  void SetUp() override {
    if (auto reason = why_no_bwrap(); !reason.empty()) {
      GTEST_SKIP() << reason;
    }
    char tmpl[] = "/tmp/smcp-prof-XXXXXX";
    dir = ::mkdtemp(tmpl);
    state = dir + "/state";
    config = dir + "/config.json";
    std::ofstream(config) << R"({"profiles": {"quick-cpu": {"base": "restrictive", "cpu_seconds": 1},
                                  "writable-cwd": {"base": "restrictive", "cwd_writable": true}}})";
  }
  void TearDown() override {
    client.reset();
    if (!dir.empty()) {
      fs::remove_all(dir);
    }
  }
  void start_server(const std::vector<std::pair<std::string, std::string>>& env = {}) {
    client.reset();
    testing::ScopedEnv e({{"SANDBOX_MCP_CONFIG", config}, {"SANDBOX_WORK_DIR", dir + "/work"}});
    for (const auto& [k, v] : env) {
      e.set(k, v);
    }
    client = std::make_unique<StdioClient>(
        SMCP_BINARY, std::vector<std::string>{"serve", "--state-dir", state, "--log-level", "warn"});
  }
  json bash(const std::string& profile, const std::string& command, json extra = json::object()) {
    extra["profile"] = profile;
    extra["command"] = command;
    return client->call("remote_bash", extra);
  }
  std::string error_of(const json& args) { return testing::tool_error(*client, "remote_bash", args); }

  std::string dir, state, config;
  std::unique_ptr<StdioClient> client;
};

// A TCP listener on 127.0.0.1 for the duration of a test.
struct Listener {
  Listener() {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(fd, 16);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
  }
  ~Listener() { ::close(fd); }
  int fd = -1;
  int port = 0;
};

TEST_F(ProfilesTest, RestrictiveHasNoNetworkWhileStandardHas) {
  Listener l;
  start_server();
  const std::string connect =
      "timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/" + std::to_string(l.port) + "' && echo connected || echo refused";
  EXPECT_EQ(bash("restrictive", connect)["stdout"], "refused\n");
  EXPECT_EQ(bash("standard", connect)["stdout"], "connected\n");
  EXPECT_EQ(bash("permissive", connect)["stdout"], "connected\n");
}

TEST_F(ProfilesTest, LimitsEndCommandsAndTheResultSaysWhich) {
  start_server();
  json mem = bash("restrictive", "python3 -c 'x = bytearray(900 * 1024 * 1024)'");
  EXPECT_NE(mem["exit_code"], 0);
  EXPECT_EQ(mem["limit"], "memory") << mem.dump();
  json fsize = bash("restrictive", "head -c 100000000 /dev/zero > big; ls -l big | awk '{print $5}'");
  EXPECT_EQ(fsize["limit"], "file_size") << fsize.dump();
  EXPECT_EQ(fsize["stdout"], std::to_string(64 * 1024 * 1024) + "\n") << "the file stops at the limit";
  json cpu = bash("quick-cpu", "while :; do :; done", {{"timeout", 60000}});
  // Ended by SIGXCPU (bwrap's init reports it as the exit status 128 + 24).
  EXPECT_TRUE(cpu["signal"] == "SIGXCPU" || cpu["exit_code"] == 152) << cpu.dump();
  EXPECT_EQ(cpu["limit"], "cpu") << cpu.dump();
  EXPECT_LT(cpu["duration_ms"].get<long>(), 30000);
  // The same command without a profile is not limited.
  json free = client->call("remote_bash", {{"command", "python3 -c 'x = bytearray(900 * 1024 * 1024)'; echo ok"}});
  EXPECT_EQ(free["stdout"], "ok\n");
  EXPECT_FALSE(free.contains("limit"));
}

TEST_F(ProfilesTest, SecretsAndFilesOutsideTheMountsStayOut) {
  fs::create_directories(state);
  std::ofstream(state + "/secret.txt") << "top secret\n";
  start_server({{"SMCP_TEST_SECRET", "hunter2"}});
  json r = bash("restrictive", "echo \"secret=${SMCP_TEST_SECRET:-none} home=$HOME\"; cat " + state +
                                   "/secret.txt 2>&1; echo x > " + state +
                                   "/written 2>&1; ls /root 2>&1 | head -1; "
                                   "echo work > /work/ok && cat /work/ok; touch /usr/evil 2>&1");
  const std::string out = r["stdout"];
  EXPECT_NE(out.find("secret=none home=/work"), std::string::npos) << out;
  EXPECT_EQ(out.find("top secret"), std::string::npos) << out;
  EXPECT_NE(out.find("work\n"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(state + "/written"));
  EXPECT_FALSE(fs::exists("/usr/evil"));
  // standard keeps the environment (the original's default), but not the files.
  json s = bash("standard", "echo \"secret=${SMCP_TEST_SECRET:-none}\"; cat " + state + "/secret.txt 2>&1");
  EXPECT_NE(s["stdout"].get<std::string>().find("secret=hunter2"), std::string::npos);
  EXPECT_EQ(s["stdout"].get<std::string>().find("top secret"), std::string::npos) << s.dump();
  // The work directory is this run's, on the host.
  EXPECT_EQ(fs::path(r["work_dir"].get<std::string>()).parent_path(), fs::path(dir + "/work"));
  // cwd, when given, is visible read-only, and writable only where a profile says so.
  fs::create_directories(dir + "/proj");
  json c = bash("restrictive", "pwd; echo made > here.txt 2>&1 || echo refused", {{"cwd", dir + "/proj"}});
  EXPECT_EQ(c["stdout"].get<std::string>().rfind(dir + "/proj\n", 0), 0u) << c.dump();
  EXPECT_FALSE(fs::exists(dir + "/proj/here.txt"));
  json w = bash("writable-cwd", "echo made > here.txt", {{"cwd", dir + "/proj"}});
  EXPECT_TRUE(fs::exists(dir + "/proj/here.txt")) << w.dump();
  // The call's environment cannot choose what confines it: PATH pointing at a planted prlimit.
  fs::create_directories(dir + "/evil");
  std::ofstream(dir + "/evil/prlimit") << "#!/bin/sh\ntouch " << dir << "/escaped\nexec /usr/bin/prlimit \"$@\"\n";
  fs::permissions(dir + "/evil/prlimit", fs::perms::owner_all);
  json e = bash("restrictive", "echo $PATH", {{"env", {{"PATH", dir + "/evil:/usr/bin:/bin"}}}});
  EXPECT_FALSE(fs::exists(dir + "/escaped")) << e.dump();
  EXPECT_EQ(e["stdout"], dir + "/evil:/usr/bin:/bin\n") << "the variable still reaches the command";
}

TEST_F(ProfilesTest, MaxConcurrentQueuesTheExcessAndSaysSo) {
  start_server({{"SANDBOX_MAX_CONCURRENT", "1"}});
  const int first = client->next_id();
  client->send(
      {{"jsonrpc", "2.0"},
       {"id", first},
       {"method", "tools/call"},
       {"params",
        {{"name", "remote_bash"}, {"arguments", {{"command", "sleep 2; echo first"}, {"profile", "standard"}}}}}});
  std::this_thread::sleep_for(500ms);
  const int second = client->next_id();
  client->send({{"jsonrpc", "2.0"},
                {"id", second},
                {"method", "tools/call"},
                {"params",
                 {{"name", "remote_bash"},
                  {"arguments", {{"command", "echo second"}, {"profile", "standard"}}},
                  {"_meta", {{"progressToken", "p2"}}}}}});
  bool queued_said = false;
  std::vector<int> order;
  while (order.size() < 2) {
    json m = client->read();
    if (m.value("method", "") == "notifications/progress" && m["params"]["progressToken"] == "p2") {
      queued_said = queued_said || m["params"].value("message", "").find("queued") != std::string::npos;
    }
    if (m.contains("id")) {
      order.push_back(m["id"].get<int>());
    }
  }
  EXPECT_TRUE(queued_said);
  EXPECT_EQ(order, (std::vector<int>{first, second})) << "the second waited for the first";
}

TEST_F(ProfilesTest, AConfinedBackgroundJobSurvivesARestart) {
  start_server();
  json job = bash("restrictive", "echo start; sleep 3; echo end-$((6*7))", {{"run_in_background", true}});
  EXPECT_EQ(job["profile"], "restrictive");
  client.reset();
  start_server();
  json out = client->call("remote_bash_output", {{"bash_id", job["bash_id"]}, {"wait_ms", 20000}, {"until", "end-"}});
  EXPECT_NE(out["output"].get<std::string>().find("end-42"), std::string::npos) << out.dump();
}

TEST_F(ProfilesTest, MissingBwrapIsAClearErrorNeverAnUnconfinedRun) {
  start_server({{"SANDBOX_BWRAP_BIN", "/nonexistent/bwrap"}});
  std::string err = error_of({{"command", "touch " + dir + "/ran"}, {"profile", "restrictive"}});
  EXPECT_NE(err.find("bubblewrap (bwrap) is not installed on local: apt-get install bubblewrap"), std::string::npos)
      << err;
  EXPECT_FALSE(fs::exists(dir + "/ran"));
  EXPECT_NE(error_of({{"command", "true"}, {"profile", "no-such"}}).find("unknown profile 'no-such'"),
            std::string::npos);
}

TEST_F(ProfilesTest, AHostDefaultProfileConfinesEveryCommandOnAnSshHost) {
  if (auto reason = testing::SshdFixture::unavailable_reason(); !reason.empty()) {
    GTEST_SKIP() << "no sshd: " << reason;
  }
  testing::SshdOptions o;
  o.servers = 1;
  testing::SshdFixture fx(o);
  Listener l;
  std::ofstream(config) << json{{"ssh_config", fx.config_file()},
                                {"hosts", json::array({json{{"name", "h0"}, {"profile", "restrictive"}}})}}
                               .dump();
  start_server();
  // No profile asked: the host's default applies, through the remote supervisor.
  json r =
      client->call("remote_bash", {{"host", "h0"},
                                   {"command", "pwd; timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/" +
                                                   std::to_string(l.port) + "' && echo connected || echo refused"}});
  EXPECT_EQ(r["profile"], "restrictive") << r.dump();
  EXPECT_EQ(r["stdout"], "/work\nrefused\n") << r.dump();
  json mem =
      client->call("remote_bash", {{"host", "h0"}, {"command", "python3 -c 'x = bytearray(900 * 1024 * 1024)'"}});
  EXPECT_EQ(mem["limit"], "memory") << mem.dump();
  // local is not affected.
  EXPECT_FALSE(client->call("remote_bash", {{"command", "true"}}).contains("profile"));
  // remote_hosts says where profiles work.
  json hosts = client->call("remote_hosts", {{"probe", true}});
  for (const auto& h : hosts["hosts"]) {
    EXPECT_EQ(h["bwrap"], "ok") << h.dump();
  }
}

// GPUs without a GPU: fake NVIDIA nodes (mknod, major 195) in a directory the profiles name as
// gpu_dev_dir; inside, they appear as /dev/nvidia*.
TEST_F(ProfilesTest, AGpuProfileBindsExactlyItsNodesAndRestrictiveNone) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "fake GPU device nodes (mknod) need root";
  }
  const std::string nodes = dir + "/dev";
  ASSERT_EQ(testing::make_fake_gpus(nodes, 3, true), "");
  std::ofstream(config) << json{{"profiles",
                                 {{"gpu02", {{"base", "standard"}, {"gpus", "0,2"}, {"gpu_dev_dir", nodes}}},
                                  {"gpuall", {{"base", "standard"}, {"gpu", true}, {"gpu_dev_dir", nodes}}},
                                  {"nogpu", {{"base", "standard"}, {"gpu_dev_dir", nodes}}}}}}
                               .dump();
  start_server();
  const std::string list = "ls /dev | grep nvidia | tr '\\n' ' '; echo \"[${CUDA_VISIBLE_DEVICES-unset}]\"";
  json r = bash("gpu02", list);
  EXPECT_EQ(r["stdout"], "nvidia0 nvidia2 nvidiactl [0,2]\n") << r.dump();
  EXPECT_EQ(bash("gpuall", list)["stdout"], "nvidia0 nvidia1 nvidia2 nvidiactl [unset]\n");
  EXPECT_EQ(bash("nogpu", list)["stdout"], "[unset]\n");
  EXPECT_EQ(bash("restrictive", list)["stdout"], "[unset]\n");
  // The nodes are the real character devices, usable (here: opened) from inside.
  r = bash("gpu02", "stat -c '%F %t:%T' /dev/nvidia2");
  EXPECT_EQ(r["stdout"], "character special file c3:2\n") << r.dump();
  // A bad gpus value in the config is refused at start, clearly.
  std::ofstream(config) << R"({"profiles": {"bad": {"gpus": "0;rm"}}})";
  exec::ProcessResult run;
  {
    testing::ScopedEnv e({{"SANDBOX_MCP_CONFIG", config}});
    run = exec::run_process({SMCP_BINARY, "serve", "--state-dir", state}, 30s);
  }
  EXPECT_NE(run.status, 0);
  EXPECT_NE(run.err.find("profiles.bad.gpus must be"), std::string::npos) << run.err;
}

} // namespace
} // namespace smcp
