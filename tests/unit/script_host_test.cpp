// ScriptHost (the remote half of an SSH host), run with a local /bin/sh instead of sshd
// (exec::LocalExecutor): foreground runs, timeouts that end whole process trees, durable jobs,
// kills, and file windows that must match LocalHost's read_file_window line for line. Each test
// runs with the perl supervisor and with the POSIX sh fallback.
#include "sandbox/exec/local_host.h"
#include "sandbox/exec/remote_scripts.h"
#include "sandbox/exec/run_process.h"
#include "sandbox/exec/script_host.h"
#include "tests/support/host_calls.h"
#include "sandbox/exec/local_executor.h"
#include "tests/support/processes.h"

#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

namespace smcp::exec {
namespace {

using namespace std::chrono_literals;
using Supervisor = ScriptHostOptions::Supervisor;

using Capture = smcp::testing::CapturedOutput;

class RemoteScripts : public ::testing::TestWithParam<Supervisor> {
protected:
  void SetUp() override {
    if (GetParam() == Supervisor::perl && !std::filesystem::exists("/usr/bin/perl")) {
      GTEST_SKIP() << "perl is not installed";
    }
    dir = std::filesystem::temp_directory_path() /
          ("smcp-ssh-scripts-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::create_directories(dir);
    ScriptHostOptions o;
    o.name = "fake";
    o.supervisor = GetParam();
    o.kill_grace = 500ms;
    o.jobs_root = (dir / "jobs").string();
    o.count_lines_below = 4096; // small, so tail windows of bigger files use negative numbers
    executor = std::make_shared<exec::LocalExecutor>();
    host = make_script_host(o, executor);
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }

  exec::ExitInfo run(const std::string& command, Capture& c, std::chrono::milliseconds timeout = 10s) {
    exec::CommandSpec spec;
    spec.command = command;
    spec.timeout = timeout;
    return host->run(spec, c, {});
  }

  // Processes whose command line starts with `needle` (the sleeps themselves, not the shells that
  // mention them).
  static int count_processes(const std::string& needle) { return testing::count_processes(needle); }

  exec::JobChunk wait_job_end(const exec::JobRef& ref, std::chrono::milliseconds limit = 10s) {
    auto until = std::chrono::steady_clock::now() + limit;
    exec::JobChunk chunk;
    do {
      chunk = host->read_job(ref, 0, 1 << 20);
      if (chunk.state.phase != exec::JobState::Phase::running) {
        return chunk;
      }
      std::this_thread::sleep_for(20ms);
    } while (std::chrono::steady_clock::now() < until);
    return chunk;
  }

  static inline int counter = 0;
  std::filesystem::path dir;
  std::shared_ptr<exec::LocalExecutor> executor;
  std::shared_ptr<exec::Host> host;
};

TEST_P(RemoteScripts, RunsCommandsWithOutputAndExitCodes) {
  Capture c;
  auto info = run("echo out; echo err >&2; exit 3", c);
  EXPECT_EQ(c.out, "out\n");
  EXPECT_EQ(c.err, "err\n");
  EXPECT_EQ(info.exit_code, 3);
  EXPECT_FALSE(info.signal);
  EXPECT_FALSE(info.timed_out);
}

TEST_P(RemoteScripts, RunsTheCommandThroughTheLauncherInTheForegroundAndAsAJob) {
  // The launcher's words go first, each as it is (quotes and spaces included), then SHELL -c CMD.
  exec::CommandSpec spec;
  spec.command = "echo \"launched=$SMCP_LAUNCHED\"; echo \"arg0=${0##*/}\"";
  spec.launcher = {"env", "SMCP_LAUNCHED=it's a \"launcher\" $HOME"};
  spec.timeout = 10s;
  Capture c;
  auto info = host->run(spec, c, {});
  EXPECT_EQ(info.exit_code, 0) << c.err;
  EXPECT_EQ(c.out, "launched=it's a \"launcher\" $HOME\narg0=bash\n");
  const std::string id = "bash_launch_" + std::to_string(::getpid());
  auto ref = host->start_job(spec, id, host->jobs_root() + "/" + id);
  auto chunk = wait_job_end(ref);
  EXPECT_EQ(chunk.state.phase, exec::JobState::Phase::exited);
  EXPECT_EQ(chunk.data, "launched=it's a \"launcher\" $HOME\narg0=bash\n");
  // A launcher that does not exist: the command does not run, and it says so.
  spec.launcher = {"/nonexistent/launcher"};
  Capture missing;
  auto failed = host->run(spec, missing, {});
  EXPECT_NE(failed.exit_code.value_or(0), 0);
  EXPECT_EQ(missing.out, "");
}

TEST_P(RemoteScripts, PassesCwdAndEnvWithNastyCharacters) {
  std::filesystem::path odd = dir / "it's a $dir";
  std::filesystem::create_directories(odd);
  exec::CommandSpec spec;
  spec.command = "pwd; printf '%s|' \"$V1\" \"$V2\"";
  spec.cwd = odd.string();
  spec.env = {{"V1", "a'b \"c\" $(id) `x`"}, {"V2", "line\nbreak"}};
  spec.timeout = 10s;
  Capture c;
  auto info = host->run(spec, c, {});
  EXPECT_EQ(info.exit_code, 0) << c.err;
  EXPECT_EQ(c.out, odd.string() + "\na'b \"c\" $(id) `x`|line\nbreak|");
}

TEST_P(RemoteScripts, MissingCwdIsAnInvalidRequest) {
  exec::CommandSpec spec;
  spec.command = "true";
  spec.cwd = (dir / "nope").string();
  Capture c;
  try {
    host->run(spec, c, {});
    FAIL() << "expected HostError";
  } catch (const exec::HostError& e) {
    EXPECT_EQ(e.kind(), exec::HostError::Kind::invalid);
    EXPECT_NE(std::string(e.what()).find("does not exist"), std::string::npos);
  }
}

TEST_P(RemoteScripts, BadEnvNameIsRefusedBeforeRunning) {
  exec::CommandSpec spec;
  spec.command = "true";
  spec.env = {{"A-B", "x"}};
  Capture c;
  EXPECT_THROW(host->run(spec, c, {}), exec::HostError);
}

TEST_P(RemoteScripts, ReportsSignals) {
  Capture c;
  auto info = run("kill -TERM $$", c);
  EXPECT_EQ(info.signal, SIGTERM);
  EXPECT_FALSE(info.exit_code);
}

TEST_P(RemoteScripts, ExitAbove128IsExactWithPerlAndGuessedWithoutIt) {
  Capture c;
  auto info = run("exit 143", c);
  if (GetParam() == Supervisor::shell) {
    EXPECT_EQ(info.signal, 15); // documented limitation of the shell fallback
  } else {
    EXPECT_EQ(info.exit_code, 143);
    EXPECT_FALSE(info.signal);
  }
}

TEST_P(RemoteScripts, TimeoutEndsTheWholeProcessTree) {
  const std::string marker = "sleep 4" + std::to_string(::getpid()) + std::to_string(counter) + "7";
  Capture c;
  auto start = std::chrono::steady_clock::now();
  auto info = run("sh -c '" + marker + " & " + marker + "'", c, 700ms);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(info.timed_out);
  EXPECT_TRUE(info.signal || info.exit_code);
  EXPECT_LT(took, 8s);
  EXPECT_EQ(count_processes(marker), 0) << "a process of the timed-out command survived";
}

TEST_P(RemoteScripts, ReturnsWhenTheCommandEndsEvenIfChildrenHoldItsOutput) {
  const std::string marker = "sleep 5" + std::to_string(::getpid()) + std::to_string(counter) + "3";
  Capture c;
  auto start = std::chrono::steady_clock::now();
  auto info = run("echo started; " + marker + " & echo done", c);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(info.exit_code, 0);
  EXPECT_FALSE(info.timed_out);
  EXPECT_LT(took, 3s);
  EXPECT_NE(c.out.find("done"), std::string::npos);
  ProcessResult r = run_process({"pkill", "-f", marker}, 5s);
}

TEST_P(RemoteScripts, CancelEndsTheTree) {
  const std::string marker = "sleep 6" + std::to_string(::getpid()) + std::to_string(counter) + "1";
  exec::CommandSpec spec;
  spec.command = marker;
  std::stop_source stop;
  Capture c;
  std::thread canceller([&] {
    std::this_thread::sleep_for(400ms);
    stop.request_stop();
  });
  auto info = host->run(spec, c, stop.get_token());
  canceller.join();
  EXPECT_TRUE(info.cancelled);
  EXPECT_EQ(count_processes(marker), 0);
}

TEST_P(RemoteScripts, DurableJobLifecycle) {
  exec::CommandSpec spec;
  spec.command = "echo one; echo two >&2; exit 7";
  auto ref = host->start_job(spec, "bash_test1_" + std::to_string(::getpid()),
                             host->jobs_root() + "/bash_test1_" + std::to_string(::getpid()));
  EXPECT_GT(ref.pid, 1);
  EXPECT_EQ(ref.dir, (dir / "jobs" / ("bash_test1_" + std::to_string(::getpid()))).string());
  auto chunk = wait_job_end(ref);
  EXPECT_EQ(chunk.state.phase, exec::JobState::Phase::exited);
  EXPECT_EQ(chunk.state.exit_code, 7);
  EXPECT_EQ(chunk.data, "one\ntwo\n");
  EXPECT_EQ(chunk.size, 8u);
  for (const char* f : {"output", "pid", "status", "command", "boot_id"}) {
    EXPECT_TRUE(std::filesystem::exists(std::filesystem::path(ref.dir) / f)) << f;
  }
  // Reads by offset, newest bytes first when capped.
  auto tail = host->read_job(ref, 0, 4);
  EXPECT_EQ(tail.offset, 4u);
  EXPECT_EQ(tail.data, "two\n");
  auto from = host->read_job(ref, 6, 100);
  EXPECT_EQ(from.offset, 6u);
  EXPECT_EQ(from.data, "o\n");
  host->remove_job(ref);
  EXPECT_FALSE(std::filesystem::exists(ref.dir));
  EXPECT_THROW(host->read_job(ref, 0, 10), exec::HostError);
}

TEST_P(RemoteScripts, DurableJobSurvivesAndIsKilledAsAGroup) {
  const std::string marker = "sleep 7" + std::to_string(::getpid()) + std::to_string(counter) + "9";
  exec::CommandSpec spec;
  spec.command = "echo begin; " + marker + " & " + marker + "; echo never";
  auto ref = host->start_job(spec, "bash_test2_" + std::to_string(::getpid()),
                             host->jobs_root() + "/bash_test2_" + std::to_string(::getpid()));
  std::this_thread::sleep_for(300ms);
  auto chunk = host->read_job(ref, 0, 1024);
  EXPECT_EQ(chunk.state.phase, exec::JobState::Phase::running);
  EXPECT_EQ(chunk.data, "begin\n");
  EXPECT_EQ(count_processes(marker), 2);
  std::string detail;
  EXPECT_EQ(host->kill_job(ref, SIGTERM, 1s, &detail), GetParam() == Supervisor::perl)
      << "verified only with the subreaper supervisor: " << detail;
  EXPECT_EQ(count_processes(marker), 0);
  chunk = wait_job_end(ref, 5s);
  EXPECT_EQ(chunk.state.phase, exec::JobState::Phase::signaled);
  EXPECT_EQ(chunk.state.signal, SIGTERM);
  EXPECT_TRUE(host->kill_job(ref, SIGTERM, 1s)) << "killing an ended job is a verified no-op";
}

TEST_P(RemoteScripts, JobWithMissingCwdIsRefused) {
  exec::CommandSpec spec;
  spec.command = "true";
  spec.cwd = (dir / "missing").string();
  EXPECT_THROW(host->start_job(spec, "bash_test3_" + std::to_string(::getpid()),
                               host->jobs_root() + "/bash_test3_" + std::to_string(::getpid())),
               exec::HostError);
}

TEST_P(RemoteScripts, JobWhoseProcessesVanishedIsReportedSo) {
  exec::CommandSpec spec;
  spec.command = "sleep 30";
  auto ref = host->start_job(spec, "bash_test4_" + std::to_string(::getpid()),
                             host->jobs_root() + "/bash_test4_" + std::to_string(::getpid()));
  // Kill the supervisor and everything else in the session from outside: no status is written.
  ProcessResult r = run_process({"pkill", "-KILL", "-s", std::to_string(ref.pid)}, 5s);
  std::this_thread::sleep_for(200ms);
  auto chunk = host->read_job(ref, 0, 100);
  EXPECT_EQ(chunk.state.phase, exec::JobState::Phase::vanished);
}

TEST_P(RemoteScripts, AReusedPidIsNotMistakenForTheJob) {
  const std::string marker = "sleep 8" + std::to_string(::getpid()) + std::to_string(counter) + "1";
  exec::CommandSpec spec;
  spec.command = marker;
  auto ref = host->start_job(spec, "bash_test5_" + std::to_string(::getpid()),
                             host->jobs_root() + "/bash_test5_" + std::to_string(::getpid()));
  const auto starttime = std::filesystem::path(ref.dir) / "starttime";
  for (int i = 0; i < 100 && !std::filesystem::exists(starttime); ++i) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_TRUE(std::filesystem::exists(starttime)) << "the supervisor records its start time";
  EXPECT_EQ(host->read_job(ref, 0, 100).state.phase, exec::JobState::Phase::running);
  // As if the supervisor had died and its pid now belonged to a process started at another time.
  std::string real;
  std::getline(std::ifstream(starttime), real);
  std::ofstream(starttime) << "1\n";
  EXPECT_EQ(host->read_job(ref, 0, 100).state.phase, exec::JobState::Phase::vanished);
  // The job's own command still carries the job's marker: it is found (and ended) without its
  // supervisor, while the process that holds the pid now is left alone.
  EXPECT_TRUE(host->kill_job(ref, SIGTERM, 500ms));
  EXPECT_EQ(count_processes(marker), 0);
  EXPECT_EQ(::kill(static_cast<pid_t>(ref.pid), 0), 0) << "the process that holds the job's pid was signalled";
  std::ofstream(starttime) << real << "\n";
  wait_job_end(ref);
  EXPECT_TRUE(host->kill_job(ref, SIGTERM, 1s));
}

TEST_P(RemoteScripts, TimeoutEndsProcessesThatLeftTheSessionOrSaysItCannot) {
  const std::string a = "sleep 9" + std::to_string(::getpid()) + std::to_string(counter) + "1";
  const std::string b = "sleep 9" + std::to_string(::getpid()) + std::to_string(counter) + "2";
  Capture c;
  auto info = run("setsid " + a + " & " + b + "; wait", c, 700ms);
  EXPECT_TRUE(info.timed_out);
  EXPECT_EQ(count_processes(b), 0);
  if (GetParam() == Supervisor::perl) {
    EXPECT_TRUE(info.tree_verified) << info.tree_note;
    EXPECT_EQ(count_processes(a), 0) << "a setsid descendant survived the timeout";
  } else {
    EXPECT_FALSE(info.tree_verified) << "the sh fallback cannot see processes that left the session";
    EXPECT_NE(info.tree_note.find("cannot track processes that left the session"), std::string::npos) << info.tree_note;
  }
  run_process({"pkill", "-f", a}, 5s);
}

TEST_P(RemoteScripts, ProcessesLeftRunningAreEndedWhenTheCommandReturns) {
  const std::string a = "sleep 9" + std::to_string(::getpid()) + std::to_string(counter) + "3";
  const std::string b = "sleep 9" + std::to_string(::getpid()) + std::to_string(counter) + "4";
  Capture c;
  auto start = std::chrono::steady_clock::now();
  auto info = run(a + " & setsid " + b + " & echo started", c);
  EXPECT_EQ(info.exit_code, 0);
  EXPECT_EQ(c.out, "started\n");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  if (GetParam() == Supervisor::perl) {
    EXPECT_EQ(info.leftovers, 2);
    EXPECT_NE(info.leftover_names.find("sleep"), std::string::npos) << info.leftover_names;
    EXPECT_EQ(count_processes(a), 0) << "a background child outlived its foreground command";
    EXPECT_EQ(count_processes(b), 0) << "a setsid child outlived its foreground command";
  }
  run_process({"pkill", "-f", a}, 5s);
  run_process({"pkill", "-f", b}, 5s);
}

TEST_P(RemoteScripts, KillingAJobEndsItsSetsidChildren) {
  const std::string a = "sleep 9" + std::to_string(::getpid()) + std::to_string(counter) + "5";
  exec::CommandSpec spec;
  spec.command = "setsid " + a + " & wait";
  auto ref = host->start_job(spec, "bash_setsid_" + std::to_string(::getpid()),
                             host->jobs_root() + "/bash_setsid_" + std::to_string(::getpid()));
  for (int i = 0; i < 300 && count_processes(a) == 0; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_EQ(count_processes(a), 1);
  std::string detail;
  bool verified = host->kill_job(ref, SIGTERM, 1s, &detail);
  EXPECT_EQ(count_processes(a), 0) << "kill_job left the job's setsid child running";
  if (GetParam() == Supervisor::perl) {
    EXPECT_TRUE(verified) << detail;
  } else {
    EXPECT_FALSE(verified) << "without the subreaper the end is not verified";
    EXPECT_NE(detail.find("cannot track"), std::string::npos) << detail;
  }
  run_process({"pkill", "-f", a}, 5s);
}

TEST_P(RemoteScripts, AJobWhoseSupervisorWasKilledIsEndedAndSaysSo) {
  const std::string a = "sleep 9" + std::to_string(::getpid()) + std::to_string(counter) + "6";
  const std::string b = "sleep 9" + std::to_string(::getpid()) + std::to_string(counter) + "7";
  exec::CommandSpec spec;
  spec.command = "setsid " + a + " & " + b + " & wait";
  auto ref = host->start_job(spec, "bash_orphan_" + std::to_string(::getpid()),
                             host->jobs_root() + "/bash_orphan_" + std::to_string(::getpid()));
  for (int i = 0; i < 300 && (count_processes(a) == 0 || count_processes(b) == 0); ++i) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_EQ(count_processes(b), 1);
  ASSERT_EQ(::kill(static_cast<pid_t>(ref.pid), SIGKILL), 0);
  for (int i = 0; i < 200 && ::kill(static_cast<pid_t>(ref.pid), 0) == 0; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  auto chunk = host->read_job(ref, 0, 100);
  EXPECT_EQ(chunk.state.phase, exec::JobState::Phase::vanished);
  EXPECT_NE(chunk.state.note.find("of the job that were still running were ended"), std::string::npos)
      << chunk.state.note;
  EXPECT_EQ(count_processes(b), 0) << "the job's processes outlived its killed supervisor";
  EXPECT_EQ(count_processes(a), 0) << "a setsid process outlived the job's killed supervisor";
  EXPECT_TRUE(host->kill_job(ref, SIGTERM, 500ms));
  run_process({"pkill", "-f", a}, 5s);
  run_process({"pkill", "-f", b}, 5s);
}

TEST_P(RemoteScripts, SkipCommandBashrcRunsTheCommandAtShellLevelTwo) {
  ScriptHostOptions o;
  o.name = "fake";
  o.supervisor = GetParam();
  o.skip_command_bashrc = true;
  auto skipping = make_script_host(o, std::make_shared<exec::LocalExecutor>());
  exec::CommandSpec spec;
  spec.command = "echo $SHLVL";
  spec.timeout = 10s;
  Capture c;
  skipping->run(spec, c, {});
  EXPECT_EQ(c.out, "2\n") << "bash sources ~/.bashrc for sshd commands only below level 2";
  spec.env = {{"SHLVL", "5"}};
  Capture c2;
  skipping->run(spec, c2, {});
  EXPECT_EQ(c2.out, "6\n") << "a SHLVL the caller sets wins";
}

// The server ends a remote command on its timeout over a second channel; when the server is gone
// (killed, or its connection lost), the perl supervisor ends the tree itself a little later.
TEST(ScriptHostGuard, PerlSupervisorEndsTheTreeWhenItsServerNeverDoes) {
  if (!std::filesystem::exists("/usr/bin/perl")) {
    GTEST_SKIP() << "perl is not installed";
  }
  const std::string a = "sleep 9" + std::to_string(::getpid()) + "81",
                    b = "sleep 9" + std::to_string(::getpid()) + "82";
  exec::CommandSpec spec;
  spec.command = "setsid " + a + " & " + b;
  spec.timeout = 1s;
  ForegroundScript fs = foreground_script(spec, "/bin/bash", "n0nce", "/usr/bin/perl", 200ms);
  auto script = std::filesystem::temp_directory_path() / ("smcp-guard-" + std::to_string(::getpid()) + ".pl");
  std::ofstream(script) << fs.input;
  // Nobody will ever kill it: the supervisor runs on its own, as after its server died.
  ASSERT_EQ(std::system(("/usr/bin/perl " + script.string() + " </dev/null >/dev/null 2>&1 &").c_str()), 0);
  for (int i = 0; i < 300 && (testing::count_processes(a) == 0 || testing::count_processes(b) == 0); ++i) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_EQ(testing::count_processes(b), 1);
  // Its own deadline: timeout + grace + 5 s (whole seconds).
  for (int i = 0; i < 1200 && (testing::count_processes(a) > 0 || testing::count_processes(b) > 0); ++i) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(testing::count_processes(b), 0) << "the command outlived its timeout without a server";
  EXPECT_EQ(testing::count_processes(a), 0) << "a setsid child outlived its timeout without a server";
  run_process({"pkill", "-f", a}, 5s);
  run_process({"pkill", "-f", b}, 5s);
  std::filesystem::remove(script);
}

INSTANTIATE_TEST_SUITE_P(Supervisors, RemoteScripts, ::testing::Values(Supervisor::perl, Supervisor::shell),
                         [](const auto& p) { return p.param == Supervisor::perl ? "perl" : "shell"; });

// ---- file windows: the remote script must agree with LocalHost's reader ----

class ScriptHostFileWindow : public ::testing::Test {
protected:
  void SetUp() override {
    dir = std::filesystem::temp_directory_path() / ("smcp-ssh-window-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    ScriptHostOptions o;
    o.name = "fake";
    o.count_lines_below = k_count_below;
    host = make_script_host(o, std::make_shared<exec::LocalExecutor>());
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  std::string write(const std::string& name, const std::string& content) {
    auto p = dir / name;
    std::ofstream(p, std::ios::binary) << content;
    return p.string();
  }
  static void expect_same(const exec::FileWindow& a, const exec::FileWindow& b, const std::string& what) {
    EXPECT_EQ(a.lines, b.lines) << what;
    EXPECT_EQ(a.start_line, b.start_line) << what;
    EXPECT_EQ(a.more_before, b.more_before) << what;
    EXPECT_EQ(a.more_after, b.more_after) << what;
    EXPECT_EQ(a.cut_lines, b.cut_lines) << what;
    EXPECT_EQ(a.total_lines, b.total_lines) << what;
  }
  static constexpr std::uint64_t k_count_below = 2000;
  std::filesystem::path dir;
  std::shared_ptr<exec::Host> host;
};

TEST_F(ScriptHostFileWindow, MatchesLocalReaderOnManyFilesAndWindows) {
  std::mt19937 rng(42);
  std::vector<std::pair<std::string, std::string>> files = {
      {"empty", ""},
      {"one", "x"},
      {"one_nl", "x\n"},
      {"blank_lines", "\n\n\n"},
      {"no_final_nl", "a\nb\nc"},
      {"utf8_long", std::string(30, 'a') + "é日本語🚀" + std::string(10, 'b') + "\nshort\n"},
  };
  std::string numbered;
  for (int i = 1; i <= 500; ++i) {
    numbered += "line " + std::to_string(i) + "\n";
  }
  files.emplace_back("numbered", numbered); // bigger than k_count_below: tail windows count from the end
  std::string random_text;
  for (int i = 0; i < 300; ++i) {
    int len = static_cast<int>(rng() % 80);
    for (int j = 0; j < len; ++j) {
      random_text.push_back(static_cast<char>('!' + rng() % 90));
    }
    random_text.push_back('\n');
  }
  files.emplace_back("random", random_text);
  const long offsets[] = {1, 2, 3, 10, 499, 500, 501, 1000, -1, -2, -3, -10, -499, -500, -501, -1000};
  const std::size_t limits[] = {1, 2, 5, 2000};
  for (const auto& [name, content] : files) {
    std::string path = write(name, content);
    for (long off : offsets) {
      for (std::size_t lim : limits) {
        for (std::size_t max_line : {std::size_t{2000}, std::size_t{33}}) {
          exec::FileReadRequest req;
          req.path = path;
          req.offset = off;
          req.limit = lim;
          req.max_line_bytes = max_line;
          req.max_total_bytes = max_line == 33 ? 500 : 256 * 1024;
          auto local = exec::read_file_window(req, k_count_below);
          auto remote = host->read_file(req);
          expect_same(remote, local,
                      name + " offset " + std::to_string(off) + " limit " + std::to_string(lim) + " max_line " +
                          std::to_string(max_line));
        }
      }
    }
  }
}

TEST_F(ScriptHostFileWindow, ErrorsMatchLocalKinds) {
  auto kind_of = [&](const std::string& path) {
    exec::FileReadRequest req;
    req.path = path;
    try {
      host->read_file(req);
    } catch (const exec::HostError& e) {
      return e.kind();
    }
    return exec::HostError::Kind::io;
  };
  EXPECT_EQ(kind_of((dir / "missing").string()), exec::HostError::Kind::not_found);
  EXPECT_EQ(kind_of(dir.string()), exec::HostError::Kind::invalid);
  EXPECT_EQ(kind_of(write("bin", std::string("ab\0cd\n", 6))), exec::HostError::Kind::invalid);
  EXPECT_EQ(kind_of("/dev/null"), exec::HostError::Kind::invalid);
}

TEST_F(ScriptHostFileWindow, TildeMeansTheRemoteHome) {
  exec::FileReadRequest req;
  req.path = "~/.smcp-test-does-not-exist";
  try {
    host->read_file(req);
    FAIL();
  } catch (const exec::HostError& e) {
    EXPECT_EQ(e.kind(), exec::HostError::Kind::not_found);
  }
}

} // namespace
} // namespace smcp::exec
