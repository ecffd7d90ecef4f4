// The SSH host against real sshd processes on loopback (tests/support/sshd_fixture): commands
// with their output, exit codes and signals, timeouts that end remote process trees, durable jobs
// and file windows. Host keys and logging in: ssh_host_keys_test.cpp; the session pool:
// ssh_pool_test.cpp.
#include "tests/support/ssh_host_fixture.h"

#include <csignal>
#include <filesystem>
#include <fstream>
#include <thread>

namespace smcp::ssh {
namespace {

TEST_F(SshHostTest, OpenSshItselfLogsIn) {
  std::string out;
  ASSERT_EQ(fx->ssh_cli("h0", "echo cli-ok", &out), 0) << out << fx->log(0);
  EXPECT_NE(out.find("cli-ok"), std::string::npos);
}

TEST_F(SshHostTest, RunsCommandsWithStdoutStderrAndExitCodes) {
  auto host = make(*fx, "h0");
  auto r = run(host, "echo hello; echo oops >&2; exit 42");
  EXPECT_EQ(r.out, "hello\n");
  EXPECT_EQ(r.err, "oops\n");
  EXPECT_EQ(r.info.exit_code, 42);
  EXPECT_FALSE(r.info.signal);
  r = run(host, "true");
  EXPECT_EQ(r.info.exit_code, 0);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "");
  // Large output arrives complete, both streams.
  r = run(host, "head -c 3000000 /dev/zero | tr '\\0' a; head -c 100000 /dev/zero | tr '\\0' b >&2");
  EXPECT_EQ(r.out.size(), 3000000u);
  EXPECT_EQ(r.err.size(), 100000u);
  EXPECT_EQ(r.out.find_first_not_of('a'), std::string::npos);
}

TEST_F(SshHostTest, CwdEnvAndQuotingSurviveTheTrip) {
  auto host = make(*fx, "h1");
  std::filesystem::path odd = std::filesystem::path(fx->dir()) / "dir with 'quotes' and $dollar";
  std::filesystem::create_directories(odd);
  exec::CommandSpec spec{.command = "pwd; printf '%s|' \"$A\" \"$B\"; basename \"$0\"",
                         .cwd = odd.string(),
                         .env = {{"A", "it's \"x\" $(id) `id` \\ "}, {"B", "two\nlines"}},
                         .timeout = 20s};
  auto r = testing::run_captured(*host, spec);
  EXPECT_EQ(r.info.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, odd.string() + "\nit's \"x\" $(id) `id` \\ |two\nlines|bash\n");
  // A missing working directory is a clear error.
  spec.cwd = odd.string() + "/missing";
  exec::HostError::Kind kind{};
  std::string msg = host_error_of([&] { testing::run_captured(*host, spec); }, &kind);
  EXPECT_EQ(kind, exec::HostError::Kind::invalid);
  EXPECT_NE(msg.find("does not exist"), std::string::npos) << msg;
}

TEST_F(SshHostTest, SignalsAreToldApartFromExitCodes) {
  auto host = make(*fx, "h1");
  auto r = run(host, "kill -KILL $$");
  EXPECT_EQ(r.info.signal, SIGKILL);
  EXPECT_FALSE(r.info.exit_code);
  r = run(host, "exit 137");
  EXPECT_EQ(r.info.exit_code, 137);
  EXPECT_FALSE(r.info.signal);
}

TEST_F(SshHostTest, TimeoutKillsTheRemoteProcessTree) {
  auto host = make(*fx, "h0");
  const std::string sleeper = "sleep 31" + std::to_string(::getpid());
  auto start = std::chrono::steady_clock::now();
  auto r = run(host, "ps -o sid= -p $$; sh -c '" + sleeper + " & " + sleeper + "'", 1500ms);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(r.info.timed_out);
  EXPECT_LT(took, 10s);
  const std::string sid = r.out.substr(0, r.out.find('\n'));
  ASSERT_FALSE(sid.empty());
  // A separate command: no live process of that session, and no sleeper, survives. (Zombies are
  // left to whoever reaps orphans: PID 1 of this container may not.)
  auto check = run(host, "ps -e -o sid= -o stat= -o args= | awk -v s=" + sid +
                             " '$1 == s && $2 !~ /^Z/' ; pgrep -r RSDT -f '^" + sleeper + "' || true");
  EXPECT_EQ(check.out, "") << "survivors in session " << sid;
}

TEST_F(SshHostTest, TimeoutEndsRemoteProcessesThatLeftTheSession) {
  auto host = make(*fx, "h0");
  const std::string escaped = "sleep 33" + std::to_string(::getpid()), main = "sleep 34" + std::to_string(::getpid());
  auto r = run(host, "setsid " + escaped + " & " + main + "; wait", 1500ms);
  EXPECT_TRUE(r.info.timed_out);
  EXPECT_TRUE(r.info.tree_verified) << r.info.tree_note;
  EXPECT_EQ(run(host, "pgrep -c -f '^" + main + "' || true").out, "0\n");
  EXPECT_EQ(run(host, "pgrep -c -f '^" + escaped + "' || true").out, "0\n")
      << "a setsid descendant survived a timeout reported as ending the whole tree";
  run(host, "pkill -f '^sleep 3[34]" + std::to_string(::getpid()) + "' || true");
}

TEST_F(SshHostTest, ProcessesLeftRunningAreEndedWhenTheCommandReturns) {
  auto host = make(*fx, "h0");
  const std::string left = "sleep 35" + std::to_string(::getpid()), escaped = "sleep 36" + std::to_string(::getpid());
  auto r = run(host, left + " & setsid " + escaped + " & echo started");
  EXPECT_EQ(r.info.exit_code, 0);
  EXPECT_EQ(r.out, "started\n");
  EXPECT_EQ(r.info.leftovers, 2);
  EXPECT_NE(r.info.leftover_names.find("sleep"), std::string::npos) << r.info.leftover_names;
  EXPECT_EQ(run(host, "pgrep -c -f '^" + left + "' || true").out, "0\n") << "a background child outlived its command";
  EXPECT_EQ(run(host, "pgrep -c -f '^" + escaped + "' || true").out, "0\n") << "a setsid child outlived its command";
  run(host, "pkill -f '^sleep 3[56]" + std::to_string(::getpid()) + "' || true");
}

TEST_F(SshHostTest, ABackgroundWriterDoesNotKeepTheCommandRunning) {
  auto host = make(*fx, "h0");
  const std::string writer = "yes ssh-writer-" + std::to_string(::getpid());
  auto start = std::chrono::steady_clock::now();
  exec::CommandSpec spec;
  spec.command = writer + " > /dev/stdout & echo started";
  spec.timeout = 20s;
  class Counting : public exec::OutputSink {
  public:
    void on_output(exec::Stream, std::string_view d) override { bytes += d.size(); }
    std::uint64_t bytes = 0;
  } sink;
  exec::ExitInfo info = host->run(spec, sink, {});
  EXPECT_EQ(info.exit_code, 0);
  EXPECT_FALSE(info.timed_out);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 6s) << "the drain after the command's end must be bounded";
  run(host, "pkill -f '^" + writer + "' || true");
}

TEST_F(SshHostTest, DurableJobOverSsh) {
  auto host = make(*fx, "h0");
  exec::CommandSpec spec;
  spec.command = "for i in 1 2 3; do echo line $i; sleep 0.1; done; exit 4";
  auto ref = host->start_job(spec, "bash_ssh1", host->jobs_root() + "/bash_ssh1");
  EXPECT_EQ(ref.dir, fx->dir() + "/jobs-h0/bash_ssh1");
  exec::JobChunk chunk;
  for (int i = 0; i < 100; ++i) {
    chunk = host->read_job(ref, 0, 1 << 20);
    if (chunk.state.phase != exec::JobState::Phase::running) {
      break;
    }
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(chunk.state.phase, exec::JobState::Phase::exited);
  EXPECT_EQ(chunk.state.exit_code, 4);
  EXPECT_EQ(chunk.data, "line 1\nline 2\nline 3\n");
  // Long-running job killed as a whole group, verified.
  const std::string sleeper = "sleep 32" + std::to_string(::getpid());
  spec.command = sleeper + " & setsid " + sleeper + " & " + sleeper;
  auto ref2 = host->start_job(spec, "bash_ssh2", host->jobs_root() + "/bash_ssh2");
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(run(host, "pgrep -c -f '^" + sleeper + "'").out, "3\n");
  EXPECT_TRUE(host->kill_job(ref2, SIGTERM, 1s));
  EXPECT_EQ(run(host, "pgrep -c -f '^" + sleeper + "' || true").out, "0\n")
      << "kill_job verified with a setsid child alive";
  host->remove_job(ref);
  EXPECT_FALSE(std::filesystem::exists(ref.dir));
}

TEST_F(SshHostTest, FileWindowsAreCutOnTheHost) {
  auto host = make(*fx, "h1");
  std::string path = fx->dir() + "/big.log";
  {
    std::ofstream f(path);
    for (int i = 1; i <= 200000; ++i) {
      f << "log line " << i << "\n";
    }
  }
  exec::FileReadRequest req;
  req.path = path;
  req.offset = -3;
  auto w = host->read_file(req);
  ASSERT_EQ(w.lines.size(), 3u);
  EXPECT_EQ(w.lines[2], "log line 200000");
  EXPECT_EQ(w.start_line, 199998);
  EXPECT_EQ(w.total_lines, 200000);
  req.offset = 100;
  req.limit = 2;
  w = host->read_file(req);
  EXPECT_EQ(w.lines, (std::vector<std::string>{"log line 100", "log line 101"}));
  EXPECT_TRUE(w.more_after);
  exec::HostError::Kind kind{};
  req.path = fx->dir() + "/nope";
  host_error_of([&] { host->read_file(req); }, &kind);
  EXPECT_EQ(kind, exec::HostError::Kind::not_found);
  req.path = fx->dir();
  host_error_of([&] { host->read_file(req); }, &kind);
  EXPECT_EQ(kind, exec::HostError::Kind::invalid);
}

} // namespace
} // namespace smcp::ssh
