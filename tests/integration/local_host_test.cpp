// The local host's foreground runs against real processes: exit codes, signals, stream
// separation, timeouts and cancellation that end whole process trees (also what left the
// command's session), what a command leaves running, raw bytes, launchers.
#include "tests/support/local_host_fixture.h"
#include "tests/support/processes.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <thread>
#include <unistd.h>

namespace smcp::exec {
namespace {

using namespace std::chrono_literals;
using testing::Collect;
using testing::count_processes;
using LocalHostTest = testing::LocalHostFixture;

TEST_F(LocalHostTest, ReportsExitCodesAndSeparatesStreams) {
  Collect c;
  ExitInfo info = run("echo out; echo err >&2; exit 3", c);
  EXPECT_EQ(info.exit_code, 3);
  EXPECT_FALSE(info.signal);
  EXPECT_EQ(c.out, "out\n");
  EXPECT_EQ(c.err, "err\n");
  Collect ok;
  EXPECT_EQ(run("true", ok).exit_code, 0);
}

TEST_F(LocalHostTest, ReportsTheSignalThatEndedTheCommand) {
  Collect c;
  ExitInfo info = run("kill -KILL $$", c);
  EXPECT_FALSE(info.exit_code);
  EXPECT_EQ(info.signal, SIGKILL);
  EXPECT_FALSE(info.timed_out);
}

TEST_F(LocalHostTest, UsesCwdAndEnvAndNoStdin) {
  Collect c;
  CommandSpec spec;
  spec.command = "pwd; echo \"$GREETING\"; cat; echo done";
  spec.cwd = dir.string();
  spec.env = {{"GREETING", "hi 'there' $HOME"}};
  spec.timeout = 5s;
  ExitInfo info = host->run(spec, c, {});
  EXPECT_EQ(info.exit_code, 0);
  EXPECT_EQ(c.out, dir.string() + "\nhi 'there' $HOME\ndone\n") << "env values are passed verbatim, stdin is empty";
}

TEST_F(LocalHostTest, MissingCwdIsAClearError) {
  Collect c;
  CommandSpec spec;
  spec.command = "true";
  spec.cwd = "/no/such/dir";
  try {
    host->run(spec, c, {});
    FAIL();
  } catch (const HostError& e) {
    EXPECT_EQ(e.kind(), HostError::Kind::invalid);
    EXPECT_NE(std::string(e.what()).find("/no/such/dir"), std::string::npos);
  }
}

TEST_F(LocalHostTest, TimeoutEndsGrandchildrenToo) {
  Collect c;
  auto t0 = std::chrono::steady_clock::now();
  ExitInfo info = run("echo started; sh -c 'sleep 1000.4242 & sleep 1000.4242'", c, 300ms);
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_TRUE(info.timed_out);
  EXPECT_TRUE(info.signal.has_value());
  EXPECT_EQ(c.out, "started\n");
  EXPECT_LT(took, 5s);
  EXPECT_EQ(count_processes("sleep 1000.4242"), 0) << "a grandchild survived the timeout";
}

TEST_F(LocalHostTest, TermIgnoringProcessesAreKilledAfterTheGrace) {
  Collect c;
  ExitInfo info = run("trap '' TERM; sh -c 'trap \"\" TERM; sleep 1000.4343' & sleep 1000.4343", c, 200ms);
  EXPECT_TRUE(info.timed_out);
  EXPECT_EQ(count_processes("sleep 1000.4343"), 0);
}

TEST_F(LocalHostTest, StopTokenCancelsTheCommand) {
  Collect c;
  ExitInfo info = run_stopped_after("sleep 1000.4444", 100ms, c);
  EXPECT_TRUE(info.cancelled);
  EXPECT_EQ(count_processes("sleep 1000.4444"), 0);
}

TEST_F(LocalHostTest, BackgroundChildrenDoNotHoldTheCommandOpen) {
  Collect c;
  ExitInfo info = run_within("sleep 1000.4545 & echo parent-done", c, 3s);
  EXPECT_EQ(info.exit_code, 0);
  EXPECT_EQ(c.out, "parent-done\n");
  ::system("pkill -f 'sleep 1000.4545'");
}

TEST_F(LocalHostTest, ABackgroundWriterDoesNotKeepTheCommandRunning) {
  // `yes` in the background keeps the output pipe busy after the shell exits.
  class Counting : public OutputSink {
  public:
    void on_output(Stream, std::string_view d) override { bytes += d.size(); }
    std::uint64_t bytes = 0;
  } sink;
  CommandSpec spec;
  spec.command = "yes yes-4949 & echo started";
  spec.timeout = 20s;
  auto t0 = std::chrono::steady_clock::now();
  ExitInfo info = host->run(spec, sink, {});
  EXPECT_EQ(info.exit_code, 0);
  EXPECT_FALSE(info.timed_out);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s) << "the drain after exit must be bounded";
  for (int i = 0; i < 200 && count_processes("yes yes-4949") > 0; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(count_processes("yes yes-4949"), 0) << "the writer should die of EPIPE once the pipes close";
}

TEST_F(LocalHostTest, TimeoutEndsProcessesThatLeftTheSession) {
  // setsid puts `sleep 1000.5353` in a session of its own: only the supervisor's subreaper tree
  // still holds it.
  Collect c;
  ExitInfo info = run("setsid sleep 1000.5353 & sleep 1000.5454; wait", c, 300ms);
  EXPECT_TRUE(info.timed_out);
  EXPECT_TRUE(info.tree_verified) << info.tree_note;
  EXPECT_EQ(count_processes("sleep 1000.5454"), 0);
  EXPECT_EQ(count_processes("sleep 1000.5353"), 0) << "a setsid descendant survived the timeout";
  ::system("pkill -f '^sleep 1000.5[34]'");
}

TEST_F(LocalHostTest, CancellationEndsProcessesThatLeftTheSession) {
  Collect c;
  ExitInfo info = run_stopped_after("setsid -f sleep 1000.5555; sleep 1000.5656", 200ms, c);
  EXPECT_TRUE(info.cancelled);
  EXPECT_TRUE(info.tree_verified);
  EXPECT_EQ(count_processes("sleep 1000.5555"), 0) << "a double-forked setsid descendant survived";
  EXPECT_EQ(count_processes("sleep 1000.5656"), 0);
  ::system("pkill -f '^sleep 1000.5[56]'");
}

TEST_F(LocalHostTest, ProcessesLeftRunningAreEndedWhenTheCommandReturnsAndNamed) {
  Collect c;
  ExitInfo info = run_within("sleep 1000.5757 & setsid sleep 1000.5858 & echo started", c, 3s);
  EXPECT_EQ(info.exit_code, 0);
  EXPECT_EQ(c.out, "started\n");
  EXPECT_EQ(info.leftovers, 2);
  EXPECT_NE(info.leftover_names.find("sleep"), std::string::npos) << info.leftover_names;
  EXPECT_TRUE(info.tree_verified);
  EXPECT_EQ(count_processes("sleep 1000.5757"), 0) << "a background child outlived its foreground command";
  EXPECT_EQ(count_processes("sleep 1000.5858"), 0) << "a setsid child outlived its foreground command";
  ::system("pkill -f '^sleep 1000.5[78]'");
  Collect quiet;
  ExitInfo clean = run("sleep 0.01 & wait; echo done", quiet);
  EXPECT_EQ(clean.leftovers, 0) << "nothing was left behind";
}

TEST_F(LocalHostTest, PassesRawBytesAndUnicodeThrough) {
  Collect c;
  run("printf 'h\\303\\251llo \\342\\234\\223\\n'; printf '\\377\\000\\001'", c);
  EXPECT_EQ(c.out, std::string("h\xc3\xa9llo \xe2\x9c\x93\n\xff\x00\x01", 14));
}

TEST_F(LocalHostTest, ALauncherIsPutBeforeTheShell) {
  Collect c;
  CommandSpec spec;
  spec.command = "echo \"$LAUNCHED\"; echo \"$0\"";
  spec.launcher = {"env", "LAUNCHED=by-env"}; // found in PATH
  spec.timeout = 5s;
  ExitInfo info = host->run(spec, c, {});
  EXPECT_EQ(info.exit_code, 0);
  EXPECT_EQ(c.out, "by-env\n/bin/bash\n") << "env ran `/bin/bash -c COMMAND` with its variable";
  Collect nice;
  spec.command = "cut -d' ' -f19 /proc/$$/stat";
  spec.launcher = {"/usr/bin/nice", "-n", "7"};
  host->run(spec, nice, {});
  EXPECT_EQ(nice.out, std::to_string(std::min(19, ::nice(0) + 7)) + "\n")
      << "the shell runs at the launcher's niceness";
  Collect missing;
  spec.launcher = {"no-such-launcher-4242"};
  EXPECT_EQ(host->run(spec, missing, {}).exit_code, 127);
}

TEST_F(LocalHostTest, DurableJobsUseTheLauncherToo) {
  CommandSpec spec;
  spec.command = "echo \"$LAUNCHED\"";
  spec.launcher = {"env", "LAUNCHED=job-by-env"};
  JobRef ref = start(spec, "bash_launcher");
  EXPECT_EQ(wait_for_end(ref).exit_code, 0);
  EXPECT_EQ(host->read_job(ref, 0, 100).data, "job-by-env\n");
}

} // namespace
} // namespace smcp::exec
