// HelperExecutor against a scripted inner executor: the helper's start (its answer after what the
// startup files print), requests framed to its socket with the helper's token and answers
// decoded, a stale snapshot (a new helper, the request sent again), a socket that cannot be
// reached (one new helper, then direct calls), a helper that cannot start or answers without a
// token (direct calls, the reason in status()), and refresh. Then helper.pl itself, run here with
// perl and a HOME of its own: the run directory is checked from / down, the reaper spares other
// hosts' files on a shared home, requests without the token are not served, and a snapshot
// changed after it was written is not loaded.
#include "sandbox/exec/helper_executor.h"
#include "sandbox/exec/scripts/embedded.h"

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

// A call that has already ended: its output was delivered when it started.
class DoneCall final : public RemoteCall {
public:
  DoneCall(RemoteResult result, std::optional<HostError> error, bool ends)
      : m_result(std::move(result)), m_error(std::move(error)), m_ends(ends) {}
  bool wait_until(Clock::time_point, std::stop_token) override { return m_ends || m_cancelled; }
  void cancel() override { m_cancelled = true; }
  RemoteResult result() override {
    if (m_error) {
      throw *m_error;
    }
    return m_result;
  }
  bool cancelled() const { return m_cancelled; }

private:
  RemoteResult m_result;
  std::optional<HostError> m_error;
  bool m_ends;
  bool m_cancelled = false;
};

// Answers each start() with the next scripted reply, and records what it was asked.
class ScriptedExecutor final : public RemoteExecutor {
public:
  struct Reply {
    std::string output; // delivered to on_output (Stream::out)
    std::optional<HostError> error;
    bool ends = true; // false: a long-lived call (the helper)
  };
  std::shared_ptr<RemoteCall> start(RemoteCommand command) override {
    std::lock_guard lock(m_mutex);
    commands.push_back(command);
    if (replies.empty()) {
      throw HostError(HostError::Kind::io, "no reply scripted for " + command.what);
    }
    Reply r = replies.front();
    replies.pop_front();
    if (command.on_output && !r.output.empty()) {
      command.on_output(Stream::out, r.output);
    }
    auto call = std::make_shared<DoneCall>(RemoteResult{0, {}, command.on_output ? "" : r.output, ""}, r.error, r.ends);
    calls.push_back(call);
    return call;
  }
  std::mutex m_mutex;
  std::deque<Reply> replies;
  std::vector<RemoteCommand> commands;
  std::vector<std::shared_ptr<DoneCall>> calls;
};

constexpr const char* k_token = "0123456789abcdef0123456789abcdef";

ScriptedExecutor::Reply helper_ready(const std::string& socket, const std::string& noise = "") {
  return {noise + "\nsandbox-mcp-helper: ready " + k_token + " " + socket + "\n", std::nullopt, false};
}

ScriptedExecutor::Reply answer(const std::string& out, const std::string& err, int status) {
  return {frame('a', "") + frame('o', out) + frame('e', err) + frame('x', "exit " + std::to_string(status))};
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
  EXPECT_EQ(req.input, std::string("smcp2 ") + k_token + " 15 7\nexec /bin/sh -secho hi");
  EXPECT_EQ(ex->status().shell_env, "snapshot");
}

TEST(HelperExecutor, ArgvIsQuotedWordByWordForTheHelpersShell) {
  auto inner = std::make_shared<ScriptedExecutor>();
  inner->replies = {helper_ready("/s"), answer("", "", 0)};
  auto ex = make(inner);
  RemoteCommand c;
  c.argv = {"podman", "exec", "a b", "it's"};
  ex->run(c, std::chrono::seconds(5));
  const std::string& req = inner->commands[1].input;
  EXPECT_EQ(req.rfind(std::string("smcp2 ") + k_token + " ", 0), 0u) << req;
  EXPECT_NE(req.find("'exec' 'a b' 'it'\\''s'"), std::string::npos) << req;
  EXPECT_TRUE(inner->commands[1].argv.empty());
}

TEST(HelperExecutor, AStaleSnapshotStartsANewHelperAndSendsTheRequestAgain) {
  auto inner = std::make_shared<ScriptedExecutor>();
  inner->replies = {helper_ready("/old"), {frame('s', "")}, helper_ready("/new"), answer("fresh\n", "", 0)};
  auto ex = make(inner);
  RemoteResult r = ex->run(sh("echo"), std::chrono::seconds(5));
  EXPECT_EQ(r.out, "fresh\n");
  ASSERT_EQ(inner->commands.size(), 4u);
  EXPECT_TRUE(inner->calls[0]->cancelled()) << "the old helper's channel is closed";
  EXPECT_EQ(inner->commands[3].stream_socket, "/new");
  EXPECT_EQ(inner->commands[3].input, inner->commands[1].input);
}

TEST(HelperExecutor, RefusedStreamsTryOneNewHelperThenGoDirect) {
  auto inner = std::make_shared<ScriptedExecutor>();
  const HostError refused(HostError::Kind::refused, "gpu1 refused a stream: Channel open failure (connect failed)");
  inner->replies = {helper_ready("/a"), {"", refused}, helper_ready("/b"), {"", refused}, {"direct\n"}};
  auto ex = make(inner);
  RemoteResult r = ex->run(sh("echo"), std::chrono::seconds(5));
  EXPECT_EQ(r.out, "direct\n");
  ASSERT_EQ(inner->commands.size(), 5u);
  EXPECT_EQ(inner->commands[4].exec, "exec /bin/sh -s") << "sent as it was, through the login shell";
  EXPECT_TRUE(inner->commands[4].stream_socket.empty());
  EXPECT_EQ(ex->status().shell_env, "login-shell");
  EXPECT_NE(ex->status().shell_env_note.find("AllowStreamLocalForwarding"), std::string::npos);
  // And the next call goes directly at once (no new helper for a while).
  inner->replies = {{"again\n"}};
  EXPECT_EQ(ex->run(sh("echo"), std::chrono::seconds(5)).out, "again\n");
}

TEST(HelperExecutor, AHelperThatCannotStartLeavesCallsDirectWithTheReason) {
  auto inner = std::make_shared<ScriptedExecutor>();
  inner->replies = {{"\nsandbox-mcp-helper: failed bash exited with status 3\n"}, {"direct\n"}};
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
  inner->replies = {helper_ready("/a"), {frame('a', "") + frame('o', "partial")}};
  auto ex = make(inner);
  try {
    ex->run(sh("echo"), std::chrono::seconds(5));
    FAIL() << "no error";
  } catch (const HostError& e) {
    EXPECT_NE(std::string(e.what()).find("before its exit status"), std::string::npos) << e.what();
  }
}

TEST(HelperExecutor, AReadyLineWithoutAValidTokenIsNotUsed) {
  auto inner = std::make_shared<ScriptedExecutor>();
  inner->replies = {{"\nsandbox-mcp-helper: ready /run/h.sock\n", std::nullopt, false}, {"direct\n"}};
  auto ex = make(inner);
  EXPECT_EQ(ex->run(sh("echo"), std::chrono::seconds(5)).out, "direct\n");
  EXPECT_TRUE(inner->calls[0]->cancelled()) << "that helper's channel is closed";
  EXPECT_EQ(ex->status().shell_env, "login-shell");
}

// helper.pl itself, run here as the server runs it on a host: `perl -` reads the program from its
// stdin, which then stays open (the helper lives until it ends), with HOME set.
namespace fs = std::filesystem;

class LocalHelper {
public:
  explicit LocalHelper(const std::string& home, const std::string& mode = "skip") {
    int in[2];
    int out[2];
    if (::pipe(in) != 0 || ::pipe(out) != 0) {
      throw std::runtime_error("pipe");
    }
    const std::string home_env = "HOME=" + home;
    std::vector<const char*> argv = {"/usr/bin/env", home_env.c_str(), "perl", "-", nullptr};
    m_pid = ::fork();
    if (m_pid == 0) {
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      ::close(in[0]);
      ::close(in[1]);
      ::close(out[0]);
      ::close(out[1]);
      ::execv(argv[0], const_cast<char* const*>(argv.data()));
      ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    m_in = in[1];
    m_out = out[0];
    const std::string program = "$mode = '" + mode + "';\n" + std::string(scripts::helper_pl) + "\n__END__\n";
    for (std::size_t at = 0; at < program.size();) {
      const ssize_t w = ::write(m_in, program.data() + at, program.size() - at);
      if (w <= 0) {
        break;
      }
      at += static_cast<std::size_t>(w);
    }
    // Its answer: the line after the marker.
    static constexpr std::string_view k_marker = "\nsandbox-mcp-helper: ";
    std::string got;
    const auto deadline = Clock::now() + std::chrono::seconds(30);
    while (Clock::now() < deadline) {
      const auto at = got.find(k_marker);
      if (at != std::string::npos && got.find('\n', at + k_marker.size()) != std::string::npos) {
        m_answer = got.substr(at + k_marker.size(), got.find('\n', at + k_marker.size()) - at - k_marker.size());
        break;
      }
      pollfd p{m_out, POLLIN, 0};
      if (::poll(&p, 1, 100) > 0) {
        char buf[4096];
        const ssize_t r = ::read(m_out, buf, sizeof buf);
        if (r <= 0) {
          break;
        }
        got.append(buf, static_cast<std::size_t>(r));
      }
    }
    if (m_answer.rfind("ready ", 0) == 0 && m_answer.size() > 6 + 33) {
      m_token = m_answer.substr(6, 32);
      m_socket = m_answer.substr(6 + 33);
    }
  }
  ~LocalHelper() { stop(); }
  LocalHelper(const LocalHelper&) = delete;
  LocalHelper& operator=(const LocalHelper&) = delete;

  // Its channel closes: it removes its socket and exits.
  void stop() {
    if (m_in >= 0) {
      ::close(m_in);
      m_in = -1;
    }
    if (m_pid > 0) {
      int st = 0;
      ::waitpid(m_pid, &st, 0);
      m_pid = -1;
    }
    if (m_out >= 0) {
      ::close(m_out);
      m_out = -1;
    }
  }

  const std::string& answer() const { return m_answer; } // "ready TOKEN SOCKET" or "failed WHY"
  const std::string& token() const { return m_token; }
  const std::string& socket() const { return m_socket; }
  pid_t pid() const { return m_pid; }
  // Its snapshot: s-HOST-PID-RAND.sh beside h-HOST-PID-RAND.sock.
  std::string snapshot() const {
    const fs::path p(m_socket);
    const std::string name = p.filename();
    return (p.parent_path() / ("s-" + name.substr(2, name.size() - 2 - 5) + ".sh")).string();
  }
  // The name of this host in the helper's file names (h-HOST-PID-RAND.sock).
  std::string host() const {
    const std::string name = fs::path(m_socket).filename();
    return name.substr(2, name.find('-', 2) - 2);
  }

private:
  pid_t m_pid = -1;
  int m_in = -1;
  int m_out = -1;
  std::string m_answer, m_token, m_socket;
};

// One request to a helper's socket; the frames it answered ("a", "o:hi\n", "x:exit 0"...) until
// it closed the connection.
std::vector<std::string> request(const std::string& socket, const std::string& token, const std::string& exec) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", socket.c_str());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return {"connect failed: " + std::string(std::strerror(errno))};
  }
  const std::string req = "smcp2 " + token + " " + std::to_string(exec.size()) + " 0\n" + exec;
  if (::write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) {
    ::close(fd);
    return {"write failed"};
  }
  std::string got;
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 10000) <= 0) {
      got += "<timeout>";
      break;
    }
    char buf[4096];
    const ssize_t r = ::read(fd, buf, sizeof buf);
    if (r <= 0) {
      break;
    }
    got.append(buf, static_cast<std::size_t>(r));
  }
  ::close(fd);
  std::vector<std::string> frames;
  std::size_t at = 0;
  while (got.size() - at >= 5) {
    const auto* b = reinterpret_cast<const unsigned char*>(got.data() + at);
    const std::size_t len = (std::size_t(b[1]) << 24) | (std::size_t(b[2]) << 16) | (std::size_t(b[3]) << 8) | b[4];
    frames.push_back(std::string(1, got[at]) + (len ? ":" + got.substr(at + 5, len) : ""));
    at += 5 + len;
  }
  return frames;
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
  std::string host;
  {
    LocalHelper first(home);
    ASSERT_EQ(first.answer().rfind("ready ", 0), 0u) << first.answer();
    EXPECT_EQ(fs::path(first.socket()).parent_path(), run_dir());
    host = first.host();
  }
  ASSERT_NE(host.find('_'), std::string::npos) << host;
  // A home on NFS: the same run directory holds the files of helpers on other nodes, whose pids
  // mean nothing here (this one is dead here, and maybe alive there).
  const std::string dead = std::to_string(dead_pid());
  const std::string d = run_dir() + "/";
  const std::vector<std::string> kept = {
      d + "h-node042_1234abcd-" + dead + "-0badf00d.sock",
      d + "s-node042_1234abcd-" + dead + "-0badf00d.sh",
      d + "h-" + host.substr(0, host.find('_')) + "_00000000-" + dead + "-0badf00d.sock", // same name, other machine
      d + "s-" + host + "-" + dead + "-0badf00e.sh", // this host's, but a job may still load it
      d + "h-" + dead + "-0badf00d.sock",            // an older helper's: whose it is cannot be told
  };
  const std::vector<std::string> reaped = {d + "h-" + host + "-" + dead + "-0badf00d.sock",
                                           d + "s-" + host + "-" + dead + "-0badf00d.sh"};
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
  EXPECT_NE(second.socket().find("/h-" + host + "-" + std::to_string(second.pid())), std::string::npos)
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
  EXPECT_EQ(request(h.socket(), h.token(), "echo hi"), (std::vector<std::string>{"a", "o:hi\n", "x:exit 0"}));
  std::string wrong = h.token();
  wrong[0] = wrong[0] == '0' ? '1' : '0';
  EXPECT_EQ(request(h.socket(), wrong, "echo hi"), std::vector<std::string>{}) << "served without its token";
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
  EXPECT_EQ(request(h.socket(), h.token(), "echo ok"), (std::vector<std::string>{"a", "o:ok\n", "x:exit 0"}));
  // Changed in place (anything that could write it), or replaced by another file: nothing runs,
  // the server is told to start a new helper (a new snapshot).
  std::ofstream(snapshot, std::ios::app) << "echo injected\n";
  EXPECT_EQ(request(h.socket(), h.token(), "echo ok"), std::vector<std::string>{"s"});
  LocalHelper h2(home, "snapshot");
  const std::string s2 = h2.snapshot();
  std::ofstream(s2 + ".new") << "echo injected\n";
  fs::rename(s2 + ".new", s2);
  EXPECT_EQ(request(h2.socket(), h2.token(), "echo ok"), std::vector<std::string>{"s"});
}

} // namespace
} // namespace smcp::exec
