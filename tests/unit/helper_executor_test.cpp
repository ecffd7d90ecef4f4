// HelperExecutor against a scripted inner executor: the helper's start (its answer after what the
// startup files print), requests framed to its socket and answers decoded, a stale snapshot (a new
// helper, the request sent again), a socket that cannot be reached (one new helper, then direct
// calls), a helper that cannot start (direct calls, the reason in status()), and refresh.
#include "sandbox/exec/helper_executor.h"

#include <gtest/gtest.h>

#include <deque>
#include <functional>
#include <mutex>

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

ScriptedExecutor::Reply helper_ready(const std::string& socket, const std::string& noise = "") {
  return {noise + "\nsandbox-mcp-helper: ready " + socket + "\n", std::nullopt, false};
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
  EXPECT_EQ(req.input, "smcp1 15 7\nexec /bin/sh -secho hi");
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
  EXPECT_EQ(req.rfind("smcp1 ", 0), 0u) << req;
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

} // namespace
} // namespace smcp::exec
