// HelperExecutor against a scripted inner executor: the helper's start (its answer after what the
// startup files print), requests framed to its socket with the helper's token and answers
// decoded, a stale snapshot (a new helper, the request sent again), a socket that cannot be
// reached (one new helper, then direct calls), a helper that cannot start or answers without a
// token (direct calls, the reason in status()), and refresh. Then helper.pl itself, run here with
// perl and a HOME of its own: the run directory is checked from / down, the reaper spares other
// hosts' files on a shared home, requests without the token are not served, and a snapshot
// changed after it was written is not loaded.
#include "sandbox/exec/helper_executor.h"
#include "tests/support/helper_process.h"
#include "tests/support/scripted_executor.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <utime.h>

namespace smcp::exec {
namespace {

using Clock = std::chrono::steady_clock;

std::string frame(char type, const std::string& data) {
  std::string out(1, type);
  for (int shift = 24; shift >= 0; shift -= 8) {
    out.push_back(static_cast<char>((data.size() >> shift) & 0xFF));
  }
  return out + data;
}

using testing::DoneCall;
using testing::ScriptedExecutor;

constexpr const char* k_token = "0123456789abcdef0123456789abcdef";

ScriptedExecutor::Reply helper_ready(const std::string& socket, const std::string& noise = "") {
  return {noise + "\nsandbox-mcp-helper {nonce}: ready " + k_token + " " + socket + "\n", std::nullopt, false};
}

ScriptedExecutor::Reply answer(const std::string& out, const std::string& err, int status) {
  return {frame('h', "") + frame('a', "") + frame('o', out) + frame('e', err) +
          frame('x', "exit " + std::to_string(status))};
}

std::shared_ptr<RemoteExecutor> make(const std::shared_ptr<ScriptedExecutor>& inner) {
  HelperOptions o;
  o.name = "gpu1";
  o.start_timeout = std::chrono::milliseconds(2000);
  return make_helper_executor(inner, o);
}

RemoteCommand sh(const std::string& script) {
  RemoteCommand c;
  c.exec = "exec /bin/sh -s";
  c.input = script;
  c.what = "test";
  return c;
}

TEST(HelperExecutor, StartsTheHelperOnceAndFramesEachRequestToItsSocket) {
  auto inner = std::make_shared<ScriptedExecutor>();
  inner->replies = {helper_ready("/run/h.sock", "bashrc noise\n"), answer("hi\n", "warn\n", 3), answer("", "", 0)};
  auto ex = make(inner);
  RemoteResult r = ex->run(sh("echo hi"), std::chrono::seconds(5));
  EXPECT_EQ(r.out, "hi\n");
  EXPECT_EQ(r.err, "warn\n");
  EXPECT_EQ(r.exit_status, 3);
  ex->run(sh("true"), std::chrono::seconds(5));
  ASSERT_EQ(inner->commands.size(), 3u);
  const RemoteCommand& helper = inner->commands[0];
  EXPECT_EQ(helper.exec, "exec 'perl' -");
  EXPECT_TRUE(helper.keep_input_open);
  EXPECT_TRUE(helper.background);
  EXPECT_EQ(helper.input.rfind("$mode = 'snapshot';\n", 0), 0u);
  const RemoteCommand& req = inner->commands[1];
  EXPECT_EQ(req.stream_socket, "/run/h.sock");
  EXPECT_EQ(req.input, "") << "the request is written after the helper's hello";
  EXPECT_EQ(inner->calls[1]->written(), std::string("smcp2 ") + k_token + " 15 7\nexec /bin/sh -secho hi");
  EXPECT_EQ(ex->status().shell_env, "snapshot");
}

TEST(HelperExecutor, ArgvIsQuotedWordByWordForTheHelpersShell) {
  auto inner = std::make_shared<ScriptedExecutor>();
  inner->replies = {helper_ready("/s"), answer("", "", 0)};
  auto ex = make(inner);
  RemoteCommand c;
  c.argv = {"podman", "exec", "a b", "it's"};
  ex->run(c, std::chrono::seconds(5));
  const std::string req = inner->calls[1]->written();
  EXPECT_EQ(req.rfind(std::string("smcp2 ") + k_token + " ", 0), 0u) << req;
  EXPECT_NE(req.find("'exec' 'a b' 'it'\\''s'"), std::string::npos) << req;
  EXPECT_TRUE(inner->commands[1].argv.empty());
}

TEST(HelperExecutor, AStaleSnapshotStartsANewHelperAndSendsTheRequestAgain) {
  auto inner = std::make_shared<ScriptedExecutor>();
  inner->replies = {
      helper_ready("/old"), {frame('h', "") + frame('s', "")}, helper_ready("/new"), answer("fresh\n", "", 0)};
  auto ex = make(inner);
  RemoteResult r = ex->run(sh("echo"), std::chrono::seconds(5));
  EXPECT_EQ(r.out, "fresh\n");
  ASSERT_EQ(inner->commands.size(), 4u);
  EXPECT_TRUE(inner->calls[0]->cancelled()) << "the old helper's channel is closed";
  EXPECT_EQ(inner->commands[3].stream_socket, "/new");
  EXPECT_EQ(inner->calls[3]->written(), inner->calls[1]->written());
}

TEST(HelperExecutor, RefusedStreamsTryOneNewHelperThenGoDirect) {
  auto inner = std::make_shared<ScriptedExecutor>();
  const HostError refused(HostError::Kind::refused, "gpu1 refused a stream: Channel open failure (connect failed)");
  // sshd says "connect failed" for a socket that is gone too: the host is asked which it is. Gone
  // (the helper exited): a new helper; there (sshd refuses): direct calls.
  inner->replies = {helper_ready("/a"), {"", refused}, {"\nsmcp-probe {nonce} gone\n"},
                    helper_ready("/b"), {"", refused}, {"\nsmcp-probe {nonce} present\n"},
                    {"direct\n"}};
  auto ex = make(inner);
  RemoteResult r = ex->run(sh("echo"), std::chrono::seconds(5));
  EXPECT_EQ(r.out, "direct\n");
  ASSERT_EQ(inner->commands.size(), 7u);
  EXPECT_NE(inner->commands[2].input.find("my $p = '/a'"), std::string::npos) << inner->commands[2].input;
  EXPECT_EQ(inner->commands[6].exec, "exec /bin/sh -s") << "sent as it was, through the login shell";
  EXPECT_TRUE(inner->commands[6].stream_socket.empty());
  EXPECT_EQ(ex->status().shell_env, "login-shell");
  EXPECT_NE(ex->status().shell_env_note.find("AllowStreamLocalForwarding"), std::string::npos);
  // And the next call goes directly at once (no new helper for a while).
  inner->replies = {{"again\n"}};
  EXPECT_EQ(ex->run(sh("echo"), std::chrono::seconds(5)).out, "again\n");
}

TEST(HelperExecutor, AHelperThatCannotStartLeavesCallsDirectWithTheReason) {
  auto inner = std::make_shared<ScriptedExecutor>();
  inner->replies = {{"\nsandbox-mcp-helper {nonce}: failed bash exited with status 3\n"}, {"direct\n"}};
  auto ex = make(inner);
  EXPECT_EQ(ex->run(sh("echo"), std::chrono::seconds(5)).out, "direct\n");
  EXPECT_EQ(ex->status().shell_env, "login-shell");
  EXPECT_NE(ex->status().shell_env_note.find("bash exited with status 3"), std::string::npos);
  // refresh_environment tries again at once.
  inner->replies = {helper_ready("/c"), answer("via helper\n", "", 0)};
  EXPECT_NE(ex->refresh_environment().find("taken again"), std::string::npos);
  EXPECT_EQ(ex->run(sh("echo"), std::chrono::seconds(5)).out, "via helper\n");
}

TEST(HelperExecutor, AStreamThatEndsBeforeItsExitStatusIsAnError) {
  auto inner = std::make_shared<ScriptedExecutor>();
  inner->replies = {helper_ready("/a"), {frame('h', "") + frame('a', "") + frame('o', "partial")}};
  auto ex = make(inner);
  try {
    ex->run(sh("echo"), std::chrono::seconds(5));
    FAIL() << "no error";
  } catch (const HostError& e) {
    EXPECT_NE(std::string(e.what()).find("was lost after the command started, before its exit status"),
              std::string::npos)
        << e.what();
    EXPECT_EQ(e.kind(), HostError::Kind::unreachable) << "it may still run: the caller ends it by its session";
  }
}

TEST(HelperExecutor, AReadyLineWithoutAValidTokenIsNotUsed) {
  auto inner = std::make_shared<ScriptedExecutor>();
  inner->replies = {{"\nsandbox-mcp-helper {nonce}: ready /run/h.sock\n", std::nullopt, false}, {"direct\n"}};
  auto ex = make(inner);
  EXPECT_EQ(ex->run(sh("echo"), std::chrono::seconds(5)).out, "direct\n");
  EXPECT_TRUE(inner->calls[0]->cancelled()) << "that helper's channel is closed";
  EXPECT_EQ(ex->status().shell_env, "login-shell");
}

// helper.pl itself, run here as the server runs it on a host (tests/support/helper_process.h).
namespace fs = std::filesystem;
using testing::LocalHelper;
std::vector<std::string> request(const std::string& socket, const std::string& token, const std::string& exec) {
  return testing::helper_request(socket, token, exec);
}

class HelperScript : public ::testing::Test {
protected:
  void SetUp() override {
    if (::access("/usr/bin/env", X_OK) != 0 || std::system("perl -e 1 >/dev/null 2>&1") != 0) {
      GTEST_SKIP() << "no perl";
    }
    char tmpl[] = "/tmp/smh-XXXXXX"; // short: the socket's path must fit in ~100 bytes
    base = ::mkdtemp(tmpl);
    home = base + "/h";
    fs::create_directory(home);
    fs::permissions(home, fs::perms::owner_all, fs::perm_options::replace);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(base, ec);
  }
  std::string run_dir() const { return home + "/.local/state/sandbox-mcp/run"; }
  static void mkdir_mode(const std::string& path, mode_t mode) {
    fs::create_directories(path);
    ASSERT_EQ(::chmod(path.c_str(), mode), 0) << path;
  }
  static void touch(const std::string& path, int days_old = 0) {
    std::ofstream(path) << "x";
    const time_t t = ::time(nullptr) - days_old * 86400;
    utimbuf times{t, t};
    ::utime(path.c_str(), &times);
  }
  // A pid no process has here.
  static int dead_pid() {
    for (int pid = 4194000;; --pid) {
      if (::kill(pid, 0) != 0 && errno == ESRCH) {
        return pid;
      }
    }
  }

  std::string base, home;
};

TEST_F(HelperScript, ReapsWhatDeadHelpersOfThisHostLeftAndNeverAnotherHostsFiles) {
  std::string host, boot;
  {
    LocalHelper first(home);
    ASSERT_EQ(first.answer().rfind("ready ", 0), 0u) << first.answer();
    EXPECT_EQ(fs::path(first.socket()).parent_path(), run_dir());
    host = first.host();
    boot = first.boot();
  }
  ASSERT_NE(host.find('_'), std::string::npos) << host;
  ASSERT_EQ(boot.size(), 9u) << boot;
  ASSERT_NE(boot, "b00000000");
  const std::string alive = std::to_string(::getpid());
  // A home on NFS: the same run directory holds the files of helpers on other nodes, whose pids
  // mean nothing here (this one is dead here, and maybe alive there).
  const std::string dead = std::to_string(dead_pid());
  const std::string d = run_dir() + "/";
  const std::vector<std::string> kept = {
      d + "h-node042_1234abcd-" + dead + "-0badf00d.sock",
      d + "s-node042_1234abcd-" + dead + "-0badf00d.sh",
      d + "h-" + host.substr(0, host.find('_')) + "_00000000-" + dead + "-0badf00d.sock", // same name, other machine
      d + "s-" + host + "-" + dead + "-0badf00e.sh",                 // this host's, but a job may still load it
      d + "h-" + dead + "-0badf00d.sock",                            // an older helper's: whose it is cannot be told
      d + "h-" + host + "-" + boot + "-" + alive + "-0badf00d.sock", // this boot's, alive
      d + "h-node042_1234abcd-b00000000-" + dead + "-0badf00d.sock", // another host's, any boot
  };
  const std::vector<std::string> reaped = {
      d + "h-" + host + "-" + dead + "-0badf00d.sock", d + "s-" + host + "-" + dead + "-0badf00d.sh",
      d + "h-" + host + "-" + boot + "-" + dead + "-0badf00d.sock",
      d + "h-" + host + "-b00000000-" + alive + "-0badf00d.sock"}; // an earlier boot: its pid means nothing now
  for (const auto& f : kept) {
    touch(f, f.find("0badf00e") == std::string::npos ? 3 : 0);
  }
  for (const auto& f : reaped) {
    touch(f, 3);
  }
  LocalHelper second(home);
  ASSERT_EQ(second.answer().rfind("ready ", 0), 0u) << second.answer();
  for (const auto& f : kept) {
    EXPECT_TRUE(fs::exists(f)) << f << " was removed";
  }
  for (const auto& f : reaped) {
    EXPECT_FALSE(fs::exists(f)) << f << " was left";
  }
  EXPECT_NE(second.socket().find("/h-" + host + "-" + second.boot() + "-" + std::to_string(second.pid())),
            std::string::npos)
      << second.socket();
}

TEST_F(HelperScript, RefusesARunDirectoryAnyoneElseCouldChange) {
  const std::string state = home + "/.local/state";
  struct Case {
    std::string what;
    std::function<void()> make;
    std::string expect; // in the answer
  };
  const std::string ww = base + "/ww";
  const std::string mine = base + "/mine";
  const std::vector<Case> cases = {
      {"a world-writable parent", [&] { mkdir_mode(state, 0777); },
       "failed cannot use " + run_dir() + ": " + state + " is writable by group or others (mode 0777) and not sticky"},
      {"a group-writable parent", [&] { mkdir_mode(state + "/sandbox-mcp", 0770); },
       state + "/sandbox-mcp is writable by group or others (mode 0770)"},
      {"a sticky world-writable parent (like /tmp)", [&] { mkdir_mode(state, 01777); }, "ready "},
      {"a parent that is a link into a world-writable directory",
       [&] {
         mkdir_mode(ww, 0777);
         fs::create_directories(state);
         fs::create_directory_symlink(ww, state + "/sandbox-mcp");
       },
       ww + " is writable by group or others"},
      {"a parent that is a link to a directory of ours",
       [&] {
         mkdir_mode(mine, 0700);
         fs::create_directories(state);
         fs::create_directory_symlink(mine, state + "/sandbox-mcp");
       },
       "ready "},
      {"a run directory that is a link",
       [&] {
         mkdir_mode(mine, 0700);
         fs::create_directories(state + "/sandbox-mcp");
         fs::create_directory_symlink(mine, run_dir());
       },
       run_dir() + " is a symbolic link"},
      {"a run directory others may enter", [&] { mkdir_mode(run_dir(), 0755); }, run_dir() + " has mode 0755"},
  };
  for (const auto& c : cases) {
    std::error_code ec;
    fs::remove_all(home + "/.local", ec);
    fs::remove_all(ww, ec);
    fs::remove_all(mine, ec);
    c.make();
    LocalHelper h(home);
    EXPECT_NE(h.answer().find(c.expect), std::string::npos) << c.what << ": " << h.answer();
    if (c.expect == "ready ") {
      // The socket's path has no link left in it.
      EXPECT_EQ(fs::canonical(fs::path(h.socket()).parent_path()), fs::path(h.socket()).parent_path()) << c.what;
    }
  }
  if (::geteuid() == 0) {
    // A directory on the way that belongs to someone else (not root).
    std::error_code ec;
    fs::remove_all(home + "/.local", ec);
    mkdir_mode(state, 0755);
    ASSERT_EQ(::chown(state.c_str(), 65534, 65534), 0);
    LocalHelper h(home);
    EXPECT_NE(h.answer().find(state + " belongs to uid 65534"), std::string::npos) << h.answer();
    ASSERT_EQ(::chown(state.c_str(), 0, 0), 0);
  }
}

TEST_F(HelperScript, ServesOnlyRequestsThatNameItsToken) {
  LocalHelper h(home);
  ASSERT_EQ(h.token().size(), 32u) << h.answer();
  EXPECT_EQ(request(h.socket(), h.token(), "echo hi"), (std::vector<std::string>{"h", "a", "o:hi\n", "x:exit 0"}));
  std::string wrong = h.token();
  wrong[0] = wrong[0] == '0' ? '1' : '0';
  EXPECT_EQ(request(h.socket(), wrong, "echo hi"), std::vector<std::string>{"h"})
      << "served without its token (the hello comes before the request is read, and says nothing)";
  // The socket and the snapshot are the user's only.
  struct stat st {};
  ASSERT_EQ(::lstat(h.socket().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 077, 0u);
}

TEST_F(HelperScript, ASnapshotChangedAfterItWasWrittenIsTakenAgainNotLoaded) {
  LocalHelper h(home, "snapshot");
  ASSERT_EQ(h.token().size(), 32u) << h.answer();
  const std::string snapshot = h.snapshot();
  ASSERT_TRUE(fs::exists(snapshot)) << snapshot;
  struct stat st {};
  ASSERT_EQ(::lstat(snapshot.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(request(h.socket(), h.token(), "echo ok"), (std::vector<std::string>{"h", "a", "o:ok\n", "x:exit 0"}));
  // Changed in place (anything that could write it), or replaced by another file: nothing runs,
  // the server is told to start a new helper (a new snapshot).
  std::ofstream(snapshot, std::ios::app) << "echo injected\n";
  EXPECT_EQ(request(h.socket(), h.token(), "echo ok"), (std::vector<std::string>{"h", "s"}));
  LocalHelper h2(home, "snapshot");
  const std::string s2 = h2.snapshot();
  std::ofstream(s2 + ".new") << "echo injected\n";
  fs::rename(s2 + ".new", s2);
  EXPECT_EQ(request(h2.socket(), h2.token(), "echo ok"), (std::vector<std::string>{"h", "s"}));
}

} // namespace
} // namespace smcp::exec
