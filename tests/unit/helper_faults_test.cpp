// What goes wrong with the SSH helper (issue 23), against a scripted inner executor: a helper that
// does not take a request (stopped, hung) is replaced and the request sent again; one that cannot
// fork says so and is asked again after a pause; reads and kills do not wait for a starting
// helper, and commands wait for it no longer than their own deadline; a socket that is gone
// starts a new helper instead of turning the helper off.
#include "sandbox/exec/helper_executor.h"
#include "tests/support/scripted_executor.h"

#include <gtest/gtest.h>

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

} // namespace
} // namespace smcp::exec
