// Durable background jobs through the real `sandbox-mcp serve` (stdio), on the local host and on
// an SSH host (a real sshd on loopback): the server restarts mid-run and the same bash_id keeps
// reading with no gap and no duplicate; a job that ends while the server is down reports its real
// exit code afterwards; a job started before a restart is killed after it; and a filtered read
// over output that overflowed the ring reports the dropped bytes while the full output stays
// readable with remote_file_read. A crash between reading and answering loses no line; ended jobs
// leave no memory behind; a job that fills the disk keeps its exit code and the server keeps serving.
#include "tests/support/sanitizers.h"
#include "tests/support/stdio_client.h"
#include "tests/support/sshd_fixture.h"

#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sys/mount.h>
#include <thread>

namespace smcp {
namespace {

using namespace std::chrono_literals;
using bench::StdioClient;
using nlohmann::json;

class DurableJobsTest : public ::testing::TestWithParam<std::string> {
protected:
  void SetUp() override {
    host = GetParam();
    std::string name = "smcp-durable-" + std::to_string(::getpid()) + "-" +
                       ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::replace(name.begin(), name.end(), '/', '_');
    dir = std::filesystem::temp_directory_path() / name;
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    if (host != "local") {
      if (auto reason = testing::SshdFixture::unavailable_reason(); !reason.empty()) {
        GTEST_SKIP() << "no sshd: " << reason;
      }
      sshd = std::make_unique<testing::SshdFixture>(testing::SshdOptions{.servers = 1});
      json c = {{"ssh_config", sshd->config_file()}, {"hosts", json::array({host})}};
      std::ofstream(dir / "config.json") << c.dump(2);
    }
    start_server();
  }
  void TearDown() override {
    client.reset();
    sshd.reset();
    if (!mounted.empty()) {
      ::umount2(mounted.c_str(), MNT_DETACH);
    }
    std::filesystem::remove_all(dir);
  }

  // Waits until every job in `ids` has ended (remote_bash_list asks the hosts).
  void wait_until_ended(const std::vector<std::string>& ids) {
    for (int i = 0; i < 600; ++i) {
      json listed = client->call("remote_bash_list", {{"host", host}, {"limit", 1000}});
      std::size_t ended = 0;
      for (const auto& j : listed["jobs"]) {
        if (std::find(ids.begin(), ids.end(), j["bash_id"]) != ids.end() && j["status"] != "running") {
          ++ended;
        }
      }
      if (ended == ids.size()) {
        return;
      }
      std::this_thread::sleep_for(100ms);
    }
    FAIL() << "the jobs did not end";
  }

  // The server's resident memory, in KiB.
  long rss_kib() const {
    std::ifstream status("/proc/" + std::to_string(client->pid()) + "/status");
    std::string line;
    while (std::getline(status, line)) {
      if (line.rfind("VmRSS:", 0) == 0) {
        return std::stol(line.substr(6));
      }
    }
    return -1;
  }

  void start_server(const std::vector<std::string>& extra = {}) {
    client.reset();
    if (sshd) {
      ::setenv("SANDBOX_MCP_CONFIG", (dir / "config.json").c_str(), 1);
    }
    std::vector<std::string> args{"serve", "--state-dir", (dir / "state").string(), "--log-level", "warn"};
    args.insert(args.end(), extra.begin(), extra.end());
    client = std::make_unique<StdioClient>(SMCP_BINARY, args);
    ::unsetenv("SANDBOX_MCP_CONFIG");
  }

  json start_job(const std::string& command) {
    return client->call("remote_bash", {{"command", command}, {"run_in_background", true}, {"host", host}});
  }

  // Reads until the job has ended, appending every answer's output to `all`.
  json read_to_end(const std::string& id, std::string& all, const json& extra = json::object()) {
    json r;
    for (int i = 0; i < 100; ++i) {
      json args = {{"bash_id", id}, {"wait_ms", 3000}};
      args.update(extra);
      r = client->call("remote_bash_output", args);
      all += r["output"].get<std::string>();
      if (r["status"] != "running" && r["status"] != "unreachable") {
        break;
      }
    }
    return r;
  }

  std::string marker() const { return "10" + std::to_string(::getpid() % 100000) + ".5"; }

  std::string host;
  std::filesystem::path dir;
  std::filesystem::path mounted; // a small filesystem this test mounted (unmounted in TearDown)
  std::unique_ptr<testing::SshdFixture> sshd;
  std::unique_ptr<StdioClient> client;
};

TEST_P(DurableJobsTest, ServerRestartMidRunLosesNoLineAndRepeatsNone) {
  const int n = 40;
  json started = start_job("for i in $(seq 1 " + std::to_string(n) + "); do echo \"line $i\"; sleep 0.1; done");
  const std::string id = started["bash_id"];
  std::string all;
  json r = client->call("remote_bash_output", {{"bash_id", id}, {"wait_ms", 10000}, {"until", "^line 8$"}});
  all += r["output"].get<std::string>();
  ASSERT_EQ(r["status"], "running");
  ASSERT_TRUE(r["matched"].get<bool>()) << r.dump();

  start_server(); // the old server exits (end of input), a new one takes over the same state
  r = read_to_end(id, all);
  EXPECT_EQ(r["status"], "exited") << r.dump();
  EXPECT_EQ(r["exit_code"], 0);
  std::string expected;
  for (int i = 1; i <= n; ++i) {
    expected += "line " + std::to_string(i) + "\n";
  }
  EXPECT_EQ(all, expected) << "lines lost or repeated across the restart";
}

TEST_P(DurableJobsTest, JobEndingWhileTheServerIsDownReportsItsExitCode) {
  json started = start_job("echo before; sleep 0.5; echo after; exit 7");
  const std::string id = started["bash_id"];
  client.reset(); // the server is down while the job ends
  std::this_thread::sleep_for(2s);
  start_server();
  json r = client->call("remote_bash_output", {{"bash_id", id}});
  EXPECT_EQ(r["status"], "exited") << r.dump();
  EXPECT_EQ(r["exit_code"], 7);
  EXPECT_EQ(r["output"], "before\nafter\n");
  json listed = client->call("remote_bash_list", {{"host", host}});
  ASSERT_FALSE(listed["jobs"].empty());
  EXPECT_EQ(listed["jobs"][0]["bash_id"], id);
  EXPECT_EQ(listed["jobs"][0]["exit_code"], 7);
}

TEST_P(DurableJobsTest, JobStartedBeforeARestartIsKilledAfterIt) {
  const std::string sleeper = "sleep " + marker();
  json started = start_job(sleeper + " & " + sleeper + "; echo never");
  const std::string id = started["bash_id"];
  std::this_thread::sleep_for(300ms);
  start_server();
  json running = client->call("remote_bash_output", {{"bash_id", id}});
  EXPECT_EQ(running["status"], "running");
  json killed = client->call("remote_bash_kill", {{"bash_id", id}});
  EXPECT_EQ(killed["signalled"], true);
  EXPECT_EQ(killed["verified"], true) << killed.dump();
  EXPECT_EQ(killed["status"], "killed") << killed.dump();
  EXPECT_EQ(killed["signal"], "SIGTERM");
  json check = client->call("remote_bash", {{"command", "pgrep -c -f '^" + sleeper + "' || true"}, {"host", host}});
  EXPECT_EQ(check["stdout"], "0\n") << "a process of the killed job survived";
}

TEST_P(DurableJobsTest, AJobWhoseSupervisorWasKilledIsEndedNotReportedGoneWhileItRuns) {
  const std::string a = "sleep " + marker() + "1", b = "sleep " + marker() + "2";
  json started = start_job("setsid " + a + " & " + b + " & wait");
  const std::string id = started["bash_id"];
  auto count = [&](const std::string& what) {
    json r = client->call("remote_bash", {{"command", "pgrep -c -f '^" + what + "' || true"}, {"host", host}});
    return r["stdout"].get<std::string>();
  };
  for (int i = 0; i < 100 && (count(a) != "1\n" || count(b) != "1\n"); ++i) {
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_EQ(count(b), "1\n");
  // The supervisor's pid is in the job's directory, next to its output file.
  json listed = client->call("remote_bash_list", {{"host", host}});
  ASSERT_FALSE(listed["jobs"].empty());
  std::string output_file = listed["jobs"][0]["output_file"];
  std::string pid_file = output_file.substr(0, output_file.rfind('/')) + "/pid";
  json pid = client->call("remote_file_read", {{"file_path", pid_file}, {"host", host}});
  std::string text = pid["content"];
  long supervisor = std::stol(text.substr(text.find('\t') + 1));
  ASSERT_GT(supervisor, 1);
  json k9 = client->call("remote_bash", {{"command", "kill -9 " + std::to_string(supervisor)}, {"host", host}});
  ASSERT_EQ(k9["exit_code"], 0) << k9.dump();
  std::this_thread::sleep_for(200ms);

  json r = client->call("remote_bash_output", {{"bash_id", id}, {"wait_ms", 3000}});
  EXPECT_EQ(r["status"], "killed") << r.dump();
  EXPECT_NE(r["note"].get<std::string>().find("were ended"), std::string::npos) << r.dump();
  EXPECT_EQ(count(b), "0\n") << "the job was reported killed while its processes kept running";
  EXPECT_EQ(count(a), "0\n") << "a setsid process of the job outlived its killed supervisor";
  json killed = client->call("remote_bash_kill", {{"bash_id", id}});
  EXPECT_EQ(killed["verified"], true) << killed.dump();
}

TEST_P(DurableJobsTest, FilteredReadOverAnOverflowedRingCountsDropsAndTheFullOutputStaysReadable) {
  start_server({"--ring-bytes", "65536"});
  // 20000 lines (~250 KB): far more than the 64 KiB ring.
  json started = start_job("for i in $(seq 1 20000); do if [ $((i % 1000)) -eq 0 ]; then echo \"MARK $i\"; "
                           "else echo \"line $i of the flood\"; fi; done");
  const std::string id = started["bash_id"];
  // Let it finish without reading (remote_bash_list asks for job states).
  for (int i = 0; i < 200; ++i) {
    json listed = client->call("remote_bash_list", {{"host", host}, {"limit", 1}});
    if (listed["jobs"][0]["status"] != "running") {
      break;
    }
    std::this_thread::sleep_for(100ms);
  }
  json r = client->call("remote_bash_output", {{"bash_id", id}, {"filter", "^MARK"}});
  EXPECT_EQ(r["status"], "exited");
  const auto dropped = r["dropped_bytes"].get<std::uint64_t>();
  const auto total = r["total_bytes"].get<std::uint64_t>();
  EXPECT_GT(dropped, 100000u) << r.dump().substr(0, 400);
  EXPECT_LE(total - dropped, 65536u) << "only the ring's worth was left to read";
  const std::string out = r["output"];
  EXPECT_NE(out.find("MARK 20000\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("MARK 1000\n"), std::string::npos) << "an early mark cannot survive the overflow";
  EXPECT_EQ(out.find("flood"), std::string::npos) << "the filter let a non-matching line through";
  EXPECT_GT(r["skipped_lines"].get<std::uint64_t>(), 1000u);

  const std::string file = r["output_file"];
  EXPECT_EQ(r["output_file_host"], host);
  json head = client->call("remote_file_read", {{"file_path", file}, {"host", host}, {"limit", 2}});
  EXPECT_EQ(head["content"], "     1\tline 1 of the flood\n     2\tline 2 of the flood\n");
  json mark = client->call("remote_file_read", {{"file_path", file}, {"host", host}, {"offset", 1000}, {"limit", 1}});
  EXPECT_EQ(mark["content"], "  1000\tMARK 1000\n") << "the dropped part is still on disk";
  json tail = client->call("remote_file_read", {{"file_path", file}, {"host", host}, {"offset", -1}});
  EXPECT_EQ(tail["content"], " 20000\tMARK 20000\n");
}

TEST_P(DurableJobsTest, RemovingAnEndedJobDeletesItsDirectoryOnTheHost) {
  json started = start_job("echo bye");
  const std::string id = started["bash_id"];
  std::string all;
  json r = read_to_end(id, all);
  ASSERT_EQ(r["status"], "exited");
  const std::string file = r["output_file"];
  const std::string job_dir = file.substr(0, file.rfind('/'));
  json exists = client->call("remote_bash", {{"command", "test -d '" + job_dir + "' && echo yes"}, {"host", host}});
  ASSERT_EQ(exists["stdout"], "yes\n") << job_dir;
  json removed = client->call("remote_bash_kill", {{"bash_id", id}, {"remove", true}});
  EXPECT_EQ(removed["removed"], true);
  json gone = client->call("remote_bash", {{"command", "test -e '" + job_dir + "' || echo gone"}, {"host", host}});
  EXPECT_EQ(gone["stdout"], "gone\n") << "the job directory is still on the host";
  json unknown = client->request("tools/call", {{"name", "remote_bash_output"}, {"arguments", {{"bash_id", id}}}});
  EXPECT_EQ(unknown["isError"], true);
}

TEST_P(DurableJobsTest, ACrashBeforeTheAnswerIsWrittenLosesNoLineAndADeliveredOneIsNotRepeated) {
  json started = start_job("seq 1 1000");
  const std::string id = started["bash_id"];
  wait_until_ended({id});
  std::string expected;
  for (int i = 1; i <= 1000; ++i) {
    expected += std::to_string(i) + "\n";
  }
  // The server dies (SIGKILL, by its test-only switch) after reading the output, before answering.
  ::setenv("SANDBOX_MCP_TEST_CRASH_BEFORE_ANSWER", "1", 1);
  start_server();
  ::unsetenv("SANDBOX_MCP_TEST_CRASH_BEFORE_ANSWER");
  EXPECT_THROW(client->call("remote_bash_output", {{"bash_id", id}}), std::runtime_error) << "the server answered";
  start_server();
  json r = client->call("remote_bash_output", {{"bash_id", id}});
  EXPECT_EQ(r["output"], expected) << "lines lost by the crash";
  EXPECT_EQ(r["exit_code"], 0);
  // A delivered answer stays delivered, even when the server is killed right after the next read.
  EXPECT_EQ(client->call("remote_bash_output", {{"bash_id", id}})["output"], "");
  ::kill(client->pid(), SIGKILL);
  start_server();
  EXPECT_EQ(client->call("remote_bash_output", {{"bash_id", id}})["output"], "") << "lines repeated after a crash";
}

TEST_P(DurableJobsTest, EndedJobsWhoseOutputWasReadLeaveNoMemoryBehind) {
  if (host != "local") {
    GTEST_SKIP() << "measured once, on the local host: the server's memory does not depend on where jobs run";
  }
#if SMCP_UNDER_SANITIZER
  GTEST_SKIP() << "resident memory is not meaningful under sanitizers (quarantine, shadow memory)";
#endif
  const int n = 30;
  std::vector<std::string> ids;
  for (int i = 0; i < n; ++i) {
    ids.push_back(start_job("yes 'a line of a big training log' | head -c 10000000")["bash_id"]);
  }
  wait_until_ended(ids);
  for (const auto& id : ids) {
    json r = client->call("remote_bash_output", {{"bash_id", id}});
    ASSERT_EQ(r["total_bytes"], 10000000) << r.dump().substr(0, 300);
  }
  const long rss = rss_kib();
  std::cout << "server RSS after " << n << " ended jobs of 10 MB, each read: " << rss / 1024 << " MiB\n";
  EXPECT_GT(rss, 0);
  EXPECT_LT(rss, 100 * 1024) << "ended jobs keep their output in memory";
}

TEST_P(DurableJobsTest, AJobThatFillsTheDiskKeepsItsExitCodeAndTheServerKeepsServing) {
  if (host != "local") {
    GTEST_SKIP() << "needs a small local filesystem for the state directory";
  }
  const auto small = dir / "small";
  std::filesystem::create_directories(small);
  if (::mount("tmpfs", small.c_str(), "tmpfs", 0, "size=2m,mode=0700") != 0) {
    GTEST_SKIP() << "cannot mount a 2 MB tmpfs here (" << std::strerror(errno) << "); the test needs root";
  }
  mounted = small;
  const auto state = small / "state";
  auto serve = [&] {
    client.reset();
    client = std::make_unique<StdioClient>(
        SMCP_BINARY, std::vector<std::string>{"serve", "--state-dir", state.string(), "--log-level", "error"});
  };
  serve();
  const std::string id =
      start_job("echo start; head -c 5000000 /dev/zero | tr '\\0' y; echo; echo end; exit 3")["bash_id"];
  wait_until_ended({id});
  json r = client->call("remote_bash_output", {{"bash_id", id}});
  EXPECT_EQ(r["status"], "exited") << r.dump().substr(0, 600);
  EXPECT_EQ(r["exit_code"], 3) << "the job's own exit status is lost";
  const std::string note = r.value("note", "");
  EXPECT_NE(note.find("disk full"), std::string::npos) << note;
  EXPECT_NE(note.find((state / "jobs" / id / "output").string()), std::string::npos) << "where: " << note;
  EXPECT_NE(note.find("more bytes of output could not be written"), std::string::npos) << "how much: " << note;
  EXPECT_EQ(note.find("rebooted"), std::string::npos) << note;
  EXPECT_EQ(r["output"].get<std::string>().rfind("start\nyyyy", 0), 0u);

  // What needs no disk keeps working.
  json fg = client->call("remote_bash", {{"command", "echo still serving"}, {"host", host}});
  EXPECT_EQ(fg["stdout"], "still serving\n");
  json listed = client->call("remote_bash_list", {{"host", host}});
  EXPECT_EQ(listed["jobs"][0]["exit_code"], 3);
  json file = client->call("remote_file_read", {{"file_path", r["output_file"]}, {"limit", 1}});
  EXPECT_EQ(file["content"], "     1\tstart\n");

  // A restart on the full disk still serves.
  serve();
  json again = client->call("remote_bash_output", {{"bash_id", id}});
  EXPECT_EQ(again["exit_code"], 3) << again.dump().substr(0, 600);
  EXPECT_NE(again.value("note", "").find("disk full"), std::string::npos);
  json listed_again = client->call("remote_bash_list", {{"host", host}});
  EXPECT_EQ(listed_again["jobs"][0]["bash_id"], id);
  json fg_again = client->call("remote_bash", {{"command", "echo after restart"}, {"host", host}});
  EXPECT_EQ(fg_again["stdout"], "after restart\n");

  // What must be recorded fails with a clear error naming the database, not SQLite's raw message.
  json refused = client->request(
      "tools/call", {{"name", "remote_bash"},
                     {"arguments", {{"command", "echo later"}, {"run_in_background", true}, {"host", host}}}});
  EXPECT_EQ(refused.value("isError", false), true) << refused.dump();
  const std::string why = refused["content"][0]["text"];
  EXPECT_NE(why.find("disk full"), std::string::npos) << why;
  EXPECT_NE(why.find((state / "state.db").string()), std::string::npos) << why;
  // Removing the job frees its output; then jobs start again.
  EXPECT_EQ(client->call("remote_bash_kill", {{"bash_id", id}, {"remove", true}})["removed"], true);
  json later = client->call("remote_bash", {{"command", "echo later"}, {"run_in_background", true}, {"host", host}});
  std::string all;
  EXPECT_EQ(read_to_end(later["bash_id"], all)["exit_code"], 0);
  EXPECT_EQ(all, "later\n");
}

INSTANTIATE_TEST_SUITE_P(Hosts, DurableJobsTest, ::testing::Values("local", "h0"),
                         [](const ::testing::TestParamInfo<std::string>& param) {
                           return param.param == "local" ? std::string("Local") : std::string("Ssh");
                         });

} // namespace
} // namespace smcp
