// bubblewrap execution profiles through the real `sandbox-mcp serve` with real bwrap and prlimit:
// what each profile lets a command reach and use, the limit reported when one ends a command, the
// concurrency limit, a confined background job across a restart, an SSH host (the sshd fixture),
// and clear errors when bwrap is missing; and the boundary (issue 21): the configured profile is a
// ceiling, no cwd shows the host's /proc, secrets or our sockets, env values are on no command
// line, work directories are deleted, and profiles run inside a podman sandbox without unmasking
// /proc. Skipped, saying why, only when bwrap cannot run here. SMCP_PROFILES_TEST_BINARY runs them
// against another build (how the boundary tests were seen to fail on the code before the fix).
#include "sandbox/exec/run_process.h"
#include "tests/support/sandbox_calls.h"
#include "tests/support/sshd_fixture.h"
#include "tests/support/stdio_client.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <netinet/in.h>
#include <fcntl.h>
#include <sstream>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <thread>
#include <unistd.h>

namespace smcp {
namespace {

using namespace std::chrono_literals;
using bench::StdioClient;
using nlohmann::json;
namespace fs = std::filesystem;

std::string server_binary() {
  const char* other = std::getenv("SMCP_PROFILES_TEST_BINARY");
  return other && *other ? other : SMCP_BINARY;
}

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
        server_binary(), std::vector<std::string>{"serve", "--state-dir", state, "--log-level", "warn"});
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
  // The host's checks are the host's: its home (~ as the host expands it) and / are refused there;
  // a call cannot pick a weaker profile than the host's; env values are on no command line there.
  for (const char* cwd : {"/", "~"}) {
    std::string err = error_of({{"host", "h0"}, {"command", "echo ran"}, {"cwd", cwd}});
    EXPECT_NE(err.find("refused cwd"), std::string::npos) << cwd << ": " << err;
  }
  EXPECT_NE(error_of({{"host", "h0"}, {"command", "true"}, {"profile", "standard"}}).find("hosts[].profile for h0"),
            std::string::npos);
  const std::string secret = "v-ssh-" + std::to_string(::getpid());
  json job = client->call("remote_bash", {{"host", "h0"},
                                          {"command", "sleep 2; echo \"$SECRET\""},
                                          {"env", {{"SECRET", secret}}},
                                          {"run_in_background", true}});
  for (int i = 0; i < 10; ++i) {
    for (const auto& e : fs::directory_iterator("/proc")) {
      std::ifstream f(e.path() / "cmdline");
      std::string cmdline((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
      EXPECT_EQ(cmdline.find(secret), std::string::npos) << cmdline.substr(0, 200);
    }
    std::this_thread::sleep_for(100ms);
  }
  json out = client->call("remote_bash_output", {{"bash_id", job["bash_id"]}, {"wait_ms", 20000}, {"until", "v-ssh"}});
  EXPECT_EQ(out["output"], secret + "\n") << out.dump();
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
    run = exec::run_process({server_binary(), "serve", "--state-dir", state}, 30s);
  }
  EXPECT_NE(run.status, 0);
  EXPECT_NE(run.err.find("profiles.bad.gpus must be"), std::string::npos) << run.err;
}

// Issue 21: SANDBOX_DEFAULT_PROFILE (or a host's configured profile) is a ceiling: a call may
// name a stricter profile, not a weaker one, unless the config's allowed_profiles lists it.
TEST_F(ProfilesTest, TheConfiguredProfileIsACeilingACallCannotWeaken) {
  std::ofstream(config) << R"({"profiles": {"tight": {"base": "restrictive", "memory_mb": 256},
                                            "ci": {"base": "standard"},
                                            "roomy": {"base": "restrictive", "memory_mb": 8192}},
                               "allowed_profiles": ["ci"]})";
  start_server({{"SANDBOX_DEFAULT_PROFILE", "restrictive"}});
  const std::string read_shadow = "cat /etc/shadow 2>/dev/null | head -c 5; echo; echo ran > /work/ran";
  for (const char* weaker : {"permissive", "standard", "roomy"}) {
    std::string err = error_of({{"command", read_shadow}, {"profile", weaker}});
    EXPECT_NE(err.find("profile '" + std::string(weaker) + "' is not allowed"), std::string::npos) << err;
    EXPECT_NE(err.find("'restrictive'"), std::string::npos) << err;
    EXPECT_NE(err.find("ceiling"), std::string::npos) << err;
    EXPECT_NE(err.find("allowed_profiles"), std::string::npos) << err;
    EXPECT_NE(err.find("SANDBOX_DEFAULT_PROFILE"), std::string::npos) << err;
  }
  // The ceiling itself, no profile (the ceiling applies), a stricter one, and one the config allows.
  EXPECT_EQ(bash("restrictive", "echo ok")["profile"], "restrictive");
  EXPECT_EQ(client->call("remote_bash", {{"command", "echo ok"}})["profile"], "restrictive");
  EXPECT_EQ(bash("tight", "echo ok")["profile"], "tight");
  EXPECT_EQ(bash("ci", "echo ok")["profile"], "ci");
  // A ceiling of standard: restrictive is stricter, permissive is not.
  client.reset();
  std::ofstream(config) << "{}";
  start_server({{"SANDBOX_DEFAULT_PROFILE", "standard"}});
  EXPECT_EQ(bash("restrictive", "echo ok")["profile"], "restrictive");
  EXPECT_NE(error_of({{"command", read_shadow}, {"profile", "permissive"}}).find("'standard'"), std::string::npos);
  // A bad name in allowed_profiles stops the server at start.
  std::ofstream(config) << R"({"allowed_profiles": ["nope"]})";
  exec::ProcessResult run;
  {
    testing::ScopedEnv e({{"SANDBOX_MCP_CONFIG", config}});
    run = exec::run_process({server_binary(), "serve", "--state-dir", state}, 30s);
  }
  EXPECT_NE(run.status, 0);
  EXPECT_NE(run.err.find("allowed_profiles: no profile named 'nope'"), std::string::npos) << run.err;
}

// Issue 21: no cwd makes the host's /proc, secrets or our own sockets reachable. Each refusal is an
// error saying why, and nothing runs.
TEST_F(ProfilesTest, NoCwdShowsTheHostsProcSecretsOrOurSockets) {
  const std::string home = dir + "/home";
  fs::create_directories(home + "/.ssh");
  std::ofstream(home + "/.ssh/id_test") << "PRIVATE KEY\n";
  fs::create_directories(home + "/proj");
  std::ofstream(home + "/proj/file.txt") << "project\n";
  fs::create_directories(dir + "/links");
  fs::create_directory_symlink("/", dir + "/links/root");
  fs::create_directory_symlink("/proc/1/root", dir + "/links/pid1root");
  fs::create_directory_symlink(home + "/.ssh", dir + "/links/keys");
  // A helper's socket, where the SSH helper keeps it; it runs commands unconfined.
  const std::string run_dir = home + "/.local/state/sandbox-mcp/run";
  fs::create_directories(run_dir);
  int sock = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string sock_path = run_dir + "/h.sock";
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", sock_path.c_str());
  ASSERT_EQ(::bind(sock, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(sock, 4), 0);
  start_server({{"HOME", home}});
  const std::string probe = "ls /proc | grep -c '^[0-9]' ; cat */id_test .ssh/id_test 2>/dev/null; "
                            "find . -maxdepth 6 -type s 2>/dev/null | head -3; echo ran";
  const std::vector<std::string> refused = {"/",
                                            "/proc",
                                            "/proc/self",
                                            "/etc",
                                            "/usr/lib",
                                            "/tmp",
                                            dir + "/links/root",
                                            home,
                                            home + "/.ssh",
                                            dir + "/links/keys",
                                            home + "/.local",
                                            home + "/.local/state",
                                            run_dir,
                                            state,
                                            dir};
  for (const auto& cwd : refused) {
    std::string err = error_of({{"command", probe}, {"profile", "restrictive"}, {"cwd", cwd}});
    EXPECT_NE(err.find("refused cwd"), std::string::npos) << cwd << ": " << err;
    EXPECT_EQ(err.find("PRIVATE KEY"), std::string::npos) << err;
    EXPECT_EQ(err.find("ran"), std::string::npos) << err;
  }
  // A link to pid 1's root is refused, or cannot even be entered.
  std::string err = error_of({{"command", probe}, {"profile", "restrictive"}, {"cwd", dir + "/links/pid1root"}});
  EXPECT_TRUE(err.find("refused cwd /") != std::string::npos || err.find("does not exist") != std::string::npos) << err;
  // A project directory works: read-only, the sandbox's own /proc (a handful of processes), and
  // /proc, /dev and /tmp are the sandbox's.
  json ok = bash("restrictive",
                 "pwd; cat file.txt; ls /proc | grep -c '^[0-9]'; touch x 2>/dev/null || echo read-only; "
                 "ls -A /tmp",
                 {{"cwd", home + "/proj"}});
  std::istringstream lines(ok["stdout"].get<std::string>());
  std::string pwd, content, pids, ro, tmp;
  std::getline(lines, pwd);
  std::getline(lines, content);
  std::getline(lines, pids);
  std::getline(lines, ro);
  std::getline(lines, tmp);
  EXPECT_EQ(pwd, home + "/proj") << ok.dump();
  EXPECT_EQ(content, "project") << ok.dump();
  EXPECT_LT(std::stoi(pids.empty() ? "99" : pids), 10) << ok.dump();
  EXPECT_EQ(ro, "read-only") << ok.dump();
  EXPECT_EQ(tmp, fs::path(dir).filename().string()) << "only the way to the cwd: " << ok.dump();
  ::close(sock);
}

// A listening Unix socket: at `path`, or abstract when it starts with '@'.
struct UnixListener {
  explicit UnixListener(const std::string& path) {
    fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, path.data(), std::min(path.size(), sizeof a.sun_path - 1));
    if (path[0] == '@') {
      a.sun_path[0] = '\0';
    }
    const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + (path[0] == '@' ? 0 : 1));
    ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), len) == 0 && ::listen(fd, 16) == 0;
  }
  ~UnixListener() { ::close(fd); }
  int fd = -1;
  bool ok = false;
};

// Unix sockets lead to servers outside the confinement (a tmux server, an ssh-agent, a daemon):
// under every profile, a confined command cannot connect to one under its cwd (a copy of the
// /tmp/tmux-0 layout) nor to an abstract one of the host's network namespace (the seccomp filter
// makes socket(AF_UNIX) fail with EACCES); socketpair and ordinary commands still work.
TEST_F(ProfilesTest, NoConfinedCommandConnectsToAUnixSocket) {
  const std::string cwd = dir + "/tmux-0", mark = dir + "/escaped";
  fs::create_directories(cwd);
  UnixListener file(cwd + "/listener");
  UnixListener abstract("@smcp-prof-" + std::to_string(::getpid()));
  ASSERT_TRUE(file.ok && abstract.ok);
  const bool tmux =
      exec::run_process({"tmux", "-S", cwd + "/default", "new-session", "-d", "sleep 300"}, 30s).status == 0;
  start_server();
  const std::string connect = "python3 -c 'import socket, sys; s = socket.socket(socket.AF_UNIX); "
                              "s.connect(sys.argv[1].replace(\"@\", \"\\0\")); print(\"connected\")' ";
  for (const char* profile : {"restrictive", "standard", "permissive"}) {
    json r = bash(profile, connect + "./listener 2>&1 | tail -1", {{"cwd", cwd}});
    EXPECT_EQ(r["stdout"], "PermissionError: [Errno 13] Permission denied\n") << profile << r.dump();
    r = bash(profile, connect + "@smcp-prof-" + std::to_string(::getpid()) + " 2>&1 | tail -1");
    EXPECT_NE(r["stdout"], "connected\n") << profile << r.dump();
    if (tmux) {
      r = bash(profile, "tmux -S ./default new-window 'id > " + mark + "'", {{"cwd", cwd}});
      EXPECT_NE(r["exit_code"], 0) << profile << r.dump();
    }
    r = bash(profile,
             "python3 -c 'import socket; a, b = socket.socketpair(); a.send(b\"pair\"); print(b.recv(4).decode())'; "
             "echo ok",
             {{"cwd", cwd}});
    EXPECT_EQ(r["stdout"], "pair\nok\n") << profile << r.dump();
  }
  if (tmux) {
    std::this_thread::sleep_for(500ms);
    EXPECT_FALSE(fs::exists(mark)) << "a window of the tmux server outside ran a command of the confined one";
    exec::run_process({"tmux", "-S", cwd + "/default", "kill-server"}, 30s);
  }
}

// Issue 21: a call's env values are never on a command line (`ps`), and still reach the command.
TEST_F(ProfilesTest, EnvValuesAreOnNoCommandLineAndStillReachTheCommand) {
  start_server();
  const std::string secret = "v-123-" + std::to_string(::getpid());
  for (const char* profile : {"restrictive", "standard"}) {
    json job = bash(
        profile, "sleep 3; printf '%s|%s|%s\\n' \"$SECRET\" \"$ODD\" \"${SMCP_PROFILE_ENV-unset}\"",
        {{"run_in_background", true}, {"env", {{"SECRET", secret}, {"ODD", "a b\n$(x) `y` \\c %s ' \" \xc3\xa9"}}}});
    std::vector<std::string> seen;
    for (int i = 0; i < 20; ++i) {
      for (const auto& e : fs::directory_iterator("/proc")) {
        std::ifstream f(e.path() / "cmdline");
        std::string cmdline((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
        if (cmdline.find(secret) != std::string::npos) {
          seen.push_back(cmdline.substr(0, 200));
        }
      }
      std::this_thread::sleep_for(100ms);
    }
    EXPECT_TRUE(seen.empty()) << profile << ": " << (seen.empty() ? "" : seen.front());
    json out = client->call("remote_bash_output", {{"bash_id", job["bash_id"]}, {"wait_ms", 20000}, {"until", "\\|"}});
    EXPECT_EQ(out["output"], secret + "|a b\n$(x) `y` \\c %s ' \" \xc3\xa9|unset\n") << profile << out.dump();
  }
  // LD_PRELOAD reaches the command only: one loader complaint (bash's), none from sh, prlimit or bwrap.
  json r = bash("standard", "true", {{"env", {{"LD_PRELOAD", "/nonexistent/preload.so"}}}});
  const std::string err = r["stderr"];
  std::size_t count = 0;
  for (std::size_t at = err.find("preload.so"); at != std::string::npos; at = err.find("preload.so", at + 1)) {
    ++count;
  }
  EXPECT_EQ(count, 1u) << err;
  // A name a profile cannot take is refused before anything runs.
  EXPECT_NE(error_of({{"command", "true"}, {"profile", "standard"}, {"env", {{"A-B", "x"}}}}).find("A-B"),
            std::string::npos);
}

// Issue 21: per-execution work directories are deleted when their command ends (foreground,
// timed out, background), and those a killed launcher left are swept, never a live one, and
// nothing through a link.
TEST_F(ProfilesTest, WorkDirectoriesAreDeletedAndStaleOnesSwept) {
  const std::string work = dir + "/work";
  fs::create_directories(work);
  fs::permissions(work, fs::perms::owner_all);
  // What a SIGKILLed launcher leaves (old, one unreadable inside), one a live launcher holds, a
  // link to a directory that must survive.
  fs::create_directories(work + "/exec-stale/locked");
  std::ofstream(work + "/exec-stale/locked/f") << "x";
  fs::permissions(work + "/exec-stale/locked", fs::perms::none);
  fs::create_directories(work + "/exec-live");
  fs::create_directories(dir + "/victim");
  std::ofstream(dir + "/victim/keep") << "x";
  fs::create_directory_symlink(dir + "/victim", work + "/exec-link");
  const auto old = fs::file_time_type::clock::now() - std::chrono::minutes(10);
  fs::last_write_time(work + "/exec-stale", old);
  fs::last_write_time(work + "/exec-live", old);
  int live = ::open((work + "/exec-live").c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(live, 0);
  ASSERT_EQ(::flock(live, LOCK_EX | LOCK_NB), 0);
  start_server();
  json r = bash("standard", "echo data > /work/out; cat /work/out");
  EXPECT_EQ(r["stdout"], "data\n");
  EXPECT_FALSE(fs::exists(r["work_dir"].get<std::string>())) << r.dump();
  EXPECT_FALSE(fs::exists(work + "/exec-stale"));
  EXPECT_TRUE(fs::exists(work + "/exec-live"));
  EXPECT_TRUE(fs::exists(dir + "/victim/keep"));
  ::close(live);
  json t = bash("standard", "touch /work/x; sleep 30", {{"timeout", 1000}});
  EXPECT_TRUE(t["timed_out"].get<bool>()) << t.dump();
  EXPECT_EQ(t["stderr"], "") << t.dump();
  EXPECT_FALSE(fs::exists(t["work_dir"].get<std::string>())) << t.dump();
  json job = bash("standard", "echo start > /work/f; sleep 1; cat /work/f; echo done", {{"run_in_background", true}});
  json out = client->call("remote_bash_output", {{"bash_id", job["bash_id"]}, {"wait_ms", 20000}, {"until", "done"}});
  std::string text = out["output"];
  for (int i = 0; i < 50 && out["status"] == "running"; ++i) {
    std::this_thread::sleep_for(100ms);
    out = client->call("remote_bash_output", {{"bash_id", job["bash_id"]}});
    text += out["output"].get<std::string>();
  }
  EXPECT_EQ(out["status"], "exited") << out.dump();
  EXPECT_FALSE(fs::exists(job["work_dir"].get<std::string>()));
  EXPECT_EQ(text, "start\ndone\n") << "the job's output does not depend on its work directory";
}

// Issue 21: inside a podman sandbox, profiles work without `--security-opt unmask=/proc/*`: the
// container's /proc read-only (no new one can be mounted there), its other processes' entries out
// of reach, /proc/sys still read-only. Skipped when podman or the sandbox image is missing.
TEST_F(ProfilesTest, ProfilesRunInsideAPodmanSandboxWithoutUnmaskingProc) {
  if (exec::run_process({"podman", "image", "exists", "localhost/sandbox-mcp:latest"}, 60s).status != 0) {
    GTEST_SKIP() << "no podman or no sandbox image (sandbox-mcp image build makes it)";
  }
  const std::string repo = testing::make_git_repo(dir + "/repo");
  {
    testing::ScopedEnv e({{"SANDBOX_MCP_CONFIG", config}, {"SANDBOX_WORK_DIR", "/tmp/sandbox-mcp-work"}});
    client = std::make_unique<StdioClient>(
        server_binary(),
        std::vector<std::string>{"--repo_base", repo, "serve", "--state-dir", state, "--log-level", "warn"});
  }
  client->call("sandbox_new", {{"name", "pfc"}});
  json r = client->call("remote_bash", {{"sandbox", "pfc"},
                                        {"profile", "restrictive"},
                                        {"env", {{"SECRET", "v-inside"}}},
                                        {"command", "pwd; echo $SECRET; cat /proc/1/environ >/dev/null 2>&1 || echo "
                                                    "no-environ; ls /proc/1/root/ >/dev/null 2>&1 || echo no-root; "
                                                    "echo x 2>/dev/null > /proc/sys/kernel/core_pattern || echo "
                                                    "ro-sys; ls /workspace 2>&1 | head -1; python3 -c 'x = "
                                                    "bytearray(900 * 1024 * 1024)' 2>&1 | tail -1; python3 -c "
                                                    "'import socket; socket.socket(socket.AF_UNIX)' 2>&1 | tail -1"}});
  EXPECT_EQ(r["stdout"], "/work\nv-inside\nno-environ\nno-root\nro-sys\nls: cannot access '/workspace': No such "
                         "file or directory\nMemoryError\nPermissionError: [Errno 13] Permission denied\n")
      << r.dump();
  std::string err = error_of({{"sandbox", "pfc"}, {"profile", "restrictive"}, {"command", "true"}, {"cwd", "/"}});
  EXPECT_NE(err.find("refused cwd /"), std::string::npos) << err;
  client->call("sandbox_rm", {{"name", "pfc"}});
}

} // namespace
} // namespace smcp
