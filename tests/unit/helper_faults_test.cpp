// What goes wrong with the SSH helper (issue 23), against a scripted inner executor: a helper that
// does not take a request (stopped, hung) is replaced and the request sent again; one that cannot
// fork says so and is asked again after a pause; reads and kills do not wait for a starting
// helper, and commands wait for it no longer than their own deadline; a socket that is gone
// starts a new helper instead of turning the helper off. And what reviews found: the helper's
// answer line and the socket probe's answer carry a nonce the server drew, so lines the user's
// startup files print cannot pass for them; the probe says "gone" for a socket file nothing
// listens on; a request given up on is never written to the slow helper.
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

using Clock = std::chrono::steady_clock;
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

ScriptedExecutor::Reply helper_ready(const std::string& socket, std::chrono::milliseconds delay = 0ms) {
  return {std::string("\nsandbox-mcp-helper {nonce}: ready ") + k_token + " " + socket + "\n", std::nullopt, false,
          delay};
}

ScriptedExecutor::Reply answer(const std::string& out) {
  return {frame('h', "") + frame('a', "") + frame('o', out) + frame('x', "exit 0")};
}

// A stream the helper never takes: connected, then silence (the helper is stopped).
ScriptedExecutor::Reply silence() {
  return {"", std::nullopt, false};
}

std::shared_ptr<RemoteExecutor> make(const std::shared_ptr<ScriptedExecutor>& inner) {
  HelperOptions o;
  o.name = "gpu1";
  o.start_timeout = 5s;
  o.accept_timeout = 200ms;
  return make_helper_executor(inner, o);
}

RemoteCommand sh(const std::string& script, bool retry_safe = false) {
  RemoteCommand c;
  c.exec = "exec /bin/sh -s";
  c.input = script;
  c.what = "test";
  c.retry_safe = retry_safe;
  return c;
}

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

TEST(HelperFaults, AHelperThatDoesNotTakeARequestIsReplacedAndTheRequestSentAgain) {
  auto inner = std::make_shared<ScriptedExecutor>();
  inner->replies = {helper_ready("/stopped"), silence(), helper_ready("/new"), answer("hi\n")};
  auto ex = make(inner);
  const auto t0 = Clock::now();
  RemoteResult r = ex->run(sh("echo hi"), 5s);
  EXPECT_EQ(r.out, "hi\n");
  EXPECT_LT(seconds_since(t0), 2.0) << "the call waited for the stopped helper";
  ASSERT_EQ(inner->commands.size(), 4u);
  EXPECT_TRUE(inner->calls[0]->cancelled()) << "the stopped helper's channel is closed";
  EXPECT_TRUE(inner->calls[1]->cancelled()) << "the stream it did not take is closed";
  EXPECT_EQ(inner->commands[3].stream_socket, "/new");
  EXPECT_EQ(inner->calls[3]->written().rfind("smcp2 ", 0), 0u) << "the request, sent to the new helper";
  EXPECT_EQ(inner->calls[1]->written(), "") << "never written to the helper that did not greet";
  EXPECT_EQ(ex->status().shell_env, "snapshot");
}

TEST(HelperFaults, ARequestWaitingInTheConnectionsQueueDoesNotMakeTheHelperHung) {
  auto inner = std::make_shared<ScriptedExecutor>();
  inner->replies = {helper_ready("/busy"), silence(), helper_ready("/new"), answer("hi\n")};
  inner->queued = 3; // all channels busy: the request may not have reached the helper
  auto ex = make(inner);
  auto call = ex->start(sh("echo hi"));
  EXPECT_FALSE(call->wait_until(Clock::now() + 700ms));
  EXPECT_FALSE(inner->calls[0]->cancelled()) << "the helper was blamed for the connection's queue";
  inner->queued = 0; // the queue drained and still nothing: now it is the helper
  EXPECT_TRUE(call->wait_until(Clock::now() + 5s));
  EXPECT_EQ(call->result().out, "hi\n");
  EXPECT_TRUE(inner->calls[0]->cancelled());
}

TEST(HelperFaults, ACallWhoseDeadlinePassesBeforeAnyHelperTookItSaysNothingRan) {
  auto inner = std::make_shared<ScriptedExecutor>();
  inner->replies = {helper_ready("/stopped"), silence(), helper_ready("/b"), silence(),
                    helper_ready("/c"),       silence(), helper_ready("/d"), silence()};
  auto ex = make(inner);
  auto call = ex->start(sh("echo hi"));
  EXPECT_TRUE(call->wait_until(Clock::now() + 10s)) << "given up after the resends";
  try {
    call->result();
    FAIL() << "no error";
  } catch (const HostError& e) {
    EXPECT_EQ(e.kind(), HostError::Kind::unreachable);
    EXPECT_NE(std::string(e.what()).find("nothing ran: the helper on gpu1 did not take test within"), std::string::npos)
        << e.what();
  }
}

TEST(HelperFaults, AHelperThatCannotForkIsAskedAgainAfterAPause) {
  auto inner = std::make_shared<ScriptedExecutor>();
  const std::string busy = frame('r', "fork: Resource temporarily unavailable");
  inner->replies = {
      helper_ready("/h"), {frame('h', "") + busy}, {frame('h', "") + frame('a', "") + busy}, answer("at last\n")};
  auto ex = make(inner);
  const auto t0 = Clock::now();
  EXPECT_EQ(ex->run(sh("echo"), 5s).out, "at last\n");
  EXPECT_GE(seconds_since(t0), 0.29) << "no pause between the tries";
  ASSERT_EQ(inner->commands.size(), 4u) << "the same helper, not a new one";
  EXPECT_EQ(inner->commands[3].stream_socket, "/h");
  EXPECT_FALSE(inner->calls[0]->cancelled());
  // When it never can: an error that says nothing ran, and why.
  inner->replies.assign(7, {frame('h', "") + busy});
  try {
    ex->run(sh("echo"), 20s);
    FAIL() << "no error";
  } catch (const HostError& e) {
    EXPECT_NE(std::string(e.what()).find("could not start test (nothing ran): fork: Resource temporarily unavailable"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(ex->status().shell_env, "snapshot") << "the helper stays";
}

TEST(HelperFaults, ReadsAndKillsDoNotWaitForAStartingHelperAndCommandsKeepTheirDeadline) {
  auto inner = std::make_shared<ScriptedExecutor>();
  inner->replies = {helper_ready("/slow", 1500ms), {"read directly\n"}, answer("via helper\n")};
  auto ex = make(inner);
  auto t0 = Clock::now();
  auto command = ex->start(sh("echo"));
  EXPECT_LT(seconds_since(t0), 0.2) << "start() waited for the helper";
  while (inner->started() < 1) { // the helper's start is on its way (its own thread)
    std::this_thread::sleep_for(1ms);
  }
  t0 = Clock::now();
  EXPECT_EQ(ex->run(sh("read", true), 5s).out, "read directly\n");
  EXPECT_LT(seconds_since(t0), 0.5) << "a read waited for the starting helper";
  EXPECT_EQ(ex->status().shell_env_note, "the helper is starting (the startup files are running)");
  t0 = Clock::now();
  EXPECT_FALSE(command->wait_until(Clock::now() + 300ms)) << "not sent yet";
  EXPECT_LT(seconds_since(t0), 0.6) << "the command's own deadline was not kept";
  EXPECT_TRUE(command->wait_until(Clock::now() + 5s));
  EXPECT_EQ(command->result().out, "via helper\n");
  // A command cancelled before any helper took it: nothing ran.
  inner->replies = {silence()};
  auto other = ex->start(sh("echo"));
  other->cancel();
  EXPECT_TRUE(other->wait_until(Clock::now() + 5s));
  try {
    other->result();
    FAIL() << "no error";
  } catch (const HostError& e) {
    EXPECT_EQ(e.kind(), HostError::Kind::unreachable);
    EXPECT_EQ(std::string(e.what()), "nothing ran: the helper on gpu1 had not taken test when the call ended");
  }
}

TEST(HelperFaults, ASocketThatIsGoneStartsANewHelperEveryTimeWithoutTurningItOff) {
  auto inner = std::make_shared<ScriptedExecutor>();
  const HostError refused(HostError::Kind::refused, "gpu1 refused a stream: Channel open failure (connect failed)");
  // A helper of another host on a shared home removing sockets, twice in one call.
  inner->replies = {helper_ready("/a"), {"", refused}, {"\nsmcp-probe {nonce} gone\n"},
                    helper_ready("/b"), {"", refused}, {"\nsmcp-probe {nonce} gone\n"},
                    helper_ready("/c"), answer("ok\n")};
  auto ex = make(inner);
  EXPECT_EQ(ex->run(sh("echo"), 5s).out, "ok\n");
  EXPECT_EQ(ex->status().shell_env, "snapshot") << ex->status().shell_env_note;
}

// A forged "ready" line printed by a startup file (e.g. `cat /tmp/news` another user writes) before
// the helper's own: without the nonce it is not the helper's, and no request goes to its socket.
TEST(HelperFaults, AReadyLineWithoutTheNonceIsNotTheHelpers) {
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
TEST(HelperFaults, AProbeAnswerWithoutTheNonceIsNoAnswer) {
  auto inner = std::make_shared<ScriptedExecutor>();
  const HostError refused(HostError::Kind::refused, "gpu1 refused a stream: Channel open failure (connect failed)");
  inner->replies = {helper_ready("/a"),
                    {"", refused},
                    {"Welcome to the representative build host: present\n"},
                    helper_ready("/b"),
                    answer("ok\n")};
  auto ex = make(inner);
  EXPECT_EQ(ex->run(sh("echo"), 5s).out, "ok\n");
  EXPECT_EQ(ex->status().shell_env, "snapshot") << ex->status().shell_env_note;
  EXPECT_EQ(helper::socket_probe_answer("representative\npresent\n", "abc"), std::nullopt);
}

// The probe program, run by a local perl: a socket something listens on is present; a socket file
// nothing listens on any more (its helper was killed) and a missing path are gone.
TEST(HelperFaults, TheSocketProbeTellsALiveSocketFromALeftOverOne) {
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
TEST(HelperFaults, AStreamNotYetOpenDoesNotMakeTheHelperHung) {
  auto inner = std::make_shared<ScriptedExecutor>();
  ScriptedExecutor::Reply waiting{"", std::nullopt, false};
  waiting.reached = false;
  inner->replies = {helper_ready("/a"), waiting};
  auto ex = make(inner);
  auto call = ex->start(sh("echo hi"));
  EXPECT_FALSE(call->wait_until(Clock::now() + 1s));
  ASSERT_EQ(inner->calls.size(), 2u);
  EXPECT_FALSE(inner->calls[0]->cancelled()) << "the helper was blamed for a channel not yet open";
  EXPECT_FALSE(inner->calls[1]->cancelled());
  call->cancel();
}

// A helper too slow to greet (stopped, a host that stalls) is given up on and the request goes to
// a new helper; when the slow one greets after all, it gets no request: the command runs once.
// (The request used to go with the stream: a helper that took it just as the server gave up ran it,
// and the new helper ran it again.)
TEST(HelperFaults, ARequestGivenUpOnIsNeverWrittenToTheSlowHelper) {
  auto inner = std::make_shared<ScriptedExecutor>();
  ScriptedExecutor::Reply late{frame('h', "") + frame('a', "") + frame('o', "twice\n") + frame('x', "exit 0"),
                               std::nullopt, false, 600ms};
  inner->replies = {helper_ready("/slow"), late, helper_ready("/new"), answer("once\n")};
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
