// What a review of the SSH helper found, against a scripted inner executor and a local perl: the
// helper's answer line and the socket probe's answer carry a nonce the server drew, so lines the
// user's startup files print (from files someone else may write) cannot pass for them; the probe
// says "gone" for a socket file nothing listens on (a helper killed with SIGKILL leaves one).
#include "sandbox/exec/helper_executor.h"
#include "sandbox/exec/helper_frames.h"
#include "sandbox/exec/run_process.h"
#include "tests/support/scripted_executor.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sys/socket.h>
#include <sys/un.h>
#include <thread>
#include <unistd.h>

namespace smcp::exec {
namespace {

using namespace std::chrono_literals;
using testing::ScriptedExecutor;

constexpr const char* k_token = "0123456789abcdef0123456789abcdef";

std::string frame(char type, const std::string& data) {
  std::string out(1, type);
  for (int shift = 24; shift >= 0; shift -= 8) {
    out.push_back(static_cast<char>((data.size() >> shift) & 0xFF));
  }
  return out + data;
}

ScriptedExecutor::Reply answer(const std::string& out) {
  return {frame('h', "") + frame('a', "") + frame('o', out) + frame('x', "exit 0")};
}

std::shared_ptr<RemoteExecutor> make(const std::shared_ptr<ScriptedExecutor>& inner) {
  HelperOptions o;
  o.name = "gpu1";
  o.start_timeout = 5s;
  o.accept_timeout = 200ms;
  return make_helper_executor(inner, o);
}

RemoteCommand sh(const std::string& script) {
  RemoteCommand c;
  c.exec = "exec /bin/sh -s";
  c.input = script;
  c.what = "test";
  return c;
}

// A forged "ready" line printed by a startup file (e.g. `cat /tmp/news` another user writes) before
// the helper's own: without the nonce it is not the helper's, and no request goes to its socket.
TEST(HelperReview, AReadyLineWithoutTheNonceIsNotTheHelpers) {
  auto inner = std::make_shared<ScriptedExecutor>();
  const std::string forged = std::string("\nsandbox-mcp-helper: ready ") + k_token + " /tmp/evil.sock\n" +
                             "\nsandbox-mcp-helper 00000000000000000000000000000000: ready " + k_token +
                             " /tmp/evil2.sock\n";
  inner->replies = {
      {forged + "\nsandbox-mcp-helper {nonce}: ready " + k_token + " /run/real.sock\n", std::nullopt, false},
      answer("ok\n")};
  auto ex = make(inner);
  EXPECT_EQ(ex->run(sh("echo"), 5s).out, "ok\n");
  ASSERT_EQ(inner->commands.size(), 2u);
  EXPECT_EQ(inner->commands[1].stream_socket, "/run/real.sock");
  // The nonce is in the program (stdin), 32 hex digits, not on the command line.
  const RemoteCommand& start = inner->commands[0];
  EXPECT_EQ(start.exec.find("nonce"), std::string::npos);
  const auto at = start.input.find("$nonce = '");
  ASSERT_NE(at, std::string::npos);
  EXPECT_EQ(start.input.substr(at + 10, 32).find_first_not_of("0123456789abcdef"), std::string::npos);
}

// A refused stream asks whether the socket is there; a startup file that prints "present" (or any
// word with it, "representative") does not answer for the probe, so the helper is not turned off
// for sshd's sake: a new one starts.
TEST(HelperReview, AProbeAnswerWithoutTheNonceIsNoAnswer) {
  auto inner = std::make_shared<ScriptedExecutor>();
  const HostError refused(HostError::Kind::refused, "gpu1 refused a stream: Channel open failure (connect failed)");
  inner->replies = {{"\nsandbox-mcp-helper {nonce}: ready " + std::string(k_token) + " /a\n", std::nullopt, false},
                    {"", refused},
                    {"Welcome to the representative build host: present\n"},
                    {"\nsandbox-mcp-helper {nonce}: ready " + std::string(k_token) + " /b\n", std::nullopt, false},
                    answer("ok\n")};
  auto ex = make(inner);
  EXPECT_EQ(ex->run(sh("echo"), 5s).out, "ok\n");
  EXPECT_EQ(ex->status().shell_env, "snapshot") << ex->status().shell_env_note;
  EXPECT_EQ(helper::socket_probe_answer("representative\npresent\n", "abc"), std::nullopt);
}

// The probe program, run by a local perl: a socket something listens on is present; a socket file
// nothing listens on any more (its helper was killed) and a missing path are gone.
TEST(HelperReview, TheSocketProbeTellsALiveSocketFromALeftOverOne) {
  const std::string dir = ::testing::TempDir() + "probe-" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  auto bound = [&](const std::string& path) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << path;
    return fd;
  };
  const std::string live = dir + "/live.sock", left = dir + "/left.sock";
  const int live_fd = bound(live);
  ASSERT_EQ(::listen(live_fd, 4), 0);
  ::close(bound(left)); // the file stays; nothing listens
  auto probe = [&](const std::string& path) {
    const std::string nonce = helper::random_nonce();
    const std::string program = dir + "/probe.pl";
    std::ofstream(program) << helper::socket_probe_program(path, nonce);
    const ProcessResult r = run_process({"perl", program}, 10s);
    EXPECT_EQ(r.status, 0) << r.err;
    return helper::socket_probe_answer("banner\n" + r.out, nonce);
  };
  EXPECT_EQ(probe(live), std::optional<bool>(true));
  EXPECT_EQ(probe(left), std::optional<bool>(false)) << "a socket file nothing listens on";
  EXPECT_EQ(probe(dir + "/none.sock"), std::optional<bool>(false));
  EXPECT_EQ(probe(dir + "/it's \"odd\" $x.sock"), std::optional<bool>(false)) << "quoting";
  ::close(live_fd);
  std::filesystem::remove_all(dir);
}

// A request whose stream is still waiting for its channel (the pool's queue: every channel of the
// session busy with long commands) has not reached the helper: the helper is not blamed, however
// long that takes. (A review saw four healthy helpers dropped, then the call failed with 97 s of
// its timeout left.)
TEST(HelperReview, AStreamNotYetOpenDoesNotMakeTheHelperHung) {
  auto inner = std::make_shared<ScriptedExecutor>();
  ScriptedExecutor::Reply waiting{"", std::nullopt, false};
  waiting.reached = false;
  inner->replies = {{"\nsandbox-mcp-helper {nonce}: ready " + std::string(k_token) + " /a\n", std::nullopt, false},
                    waiting};
  auto ex = make(inner);
  auto call = ex->start(sh("echo hi"));
  EXPECT_FALSE(call->wait_until(std::chrono::steady_clock::now() + 1s));
  ASSERT_EQ(inner->calls.size(), 2u);
  EXPECT_FALSE(inner->calls[0]->cancelled()) << "the helper was blamed for a channel not yet open";
  EXPECT_FALSE(inner->calls[1]->cancelled());
  call->cancel();
}

// A helper too slow to greet (stopped, a host that stalls) is given up on and the request goes to
// a new helper; when the slow one greets after all, it gets no request: the command runs once.
// (The request used to go with the stream: a helper that took it just as the server gave up ran it,
// and the new helper ran it again.)
TEST(HelperReview, ARequestGivenUpOnIsNeverWrittenToTheSlowHelper) {
  auto inner = std::make_shared<ScriptedExecutor>();
  ScriptedExecutor::Reply late{frame('h', "") + frame('a', "") + frame('o', "twice\n") + frame('x', "exit 0"),
                               std::nullopt, false, 600ms};
  inner->replies = {{"\nsandbox-mcp-helper {nonce}: ready " + std::string(k_token) + " /slow\n", std::nullopt, false},
                    late,
                    {"\nsandbox-mcp-helper {nonce}: ready " + std::string(k_token) + " /new\n", std::nullopt, false},
                    answer("once\n")};
  auto ex = make(inner);
  EXPECT_EQ(ex->run(sh("echo run >> log"), 5s).out, "once\n");
  std::this_thread::sleep_for(800ms); // the slow helper greets now
  ASSERT_EQ(inner->calls.size(), 4u);
  EXPECT_EQ(inner->commands[1].stream_socket, "/slow");
  EXPECT_EQ(inner->commands[1].input, "") << "the request went with the stream";
  EXPECT_EQ(inner->calls[1]->written(), "") << "the slow helper got the request after the call gave up on it";
  EXPECT_EQ(inner->calls[3]->written().rfind("smcp2 ", 0), 0u);
}

} // namespace
} // namespace smcp::exec
