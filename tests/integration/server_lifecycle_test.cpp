// The real `sandbox-mcp serve` process: SIGTERM (what MCP clients send to stdio servers) ends it
// cleanly — running foreground commands are ended, durable jobs are left running — and so does the
// end of its input.
#include "tests/support/stdio_client.h"
#include "tests/support/processes.h"

#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <sys/wait.h>
#include <thread>

namespace smcp {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

using testing::count_processes;

TEST(ServerLifecycle, SigtermEndsForegroundCommandsAndKeepsDurableJobs) {
  auto dir = std::filesystem::temp_directory_path() / ("smcp-lifecycle-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  const std::string tag = std::to_string(::getpid() % 100000);
  const std::string fg = "sleep 1001." + tag, bg = "sleep 1002." + tag;
  {
    bench::StdioClient client(SMCP_BINARY, {"serve", "--state-dir", (dir / "state").string()});
    json job = client.call("remote_bash", {{"command", bg}, {"run_in_background", true}});
    client.send({{"jsonrpc", "2.0"},
                 {"id", client.next_id()},
                 {"method", "tools/call"},
                 {"params", {{"name", "remote_bash"}, {"arguments", {{"command", fg}}}}}});
    for (int i = 0; i < 200 && (count_processes(fg) == 0 || count_processes(bg) == 0); ++i) {
      std::this_thread::sleep_for(10ms);
    }
    ASSERT_EQ(count_processes(fg), 1);
    ASSERT_EQ(count_processes(bg), 1);
    ASSERT_EQ(::kill(client.pid(), SIGTERM), 0);
    int status = 0;
    pid_t r = 0;
    for (int i = 0; i < 1000 && (r = ::waitpid(client.pid(), &status, WNOHANG)) == 0; ++i) {
      std::this_thread::sleep_for(10ms);
    }
    ASSERT_EQ(r, client.pid()) << "the server did not exit after SIGTERM";
    EXPECT_TRUE(WIFEXITED(status)) << "killed by signal " << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    EXPECT_EQ(WEXITSTATUS(status), 0);
    EXPECT_EQ(count_processes(fg), 0) << "the running foreground command survived the server";
    EXPECT_EQ(count_processes(bg), 1) << "the durable job must outlive the server";
  }
  // A new server still knows the job and can end it.
  bench::StdioClient again(SMCP_BINARY, {"serve", "--state-dir", (dir / "state").string()});
  json jobs = again.call("remote_bash_list", json::object());
  ASSERT_FALSE(jobs["jobs"].empty());
  json killed = again.call("remote_bash_kill", {{"bash_id", jobs["jobs"][0]["bash_id"]}});
  EXPECT_EQ(killed["verified"], true);
  EXPECT_EQ(count_processes(bg), 0);
  std::filesystem::remove_all(dir);
}

TEST(ServerLifecycle, KillNineOfTheServerEndsItsForegroundCommands) {
  auto dir = std::filesystem::temp_directory_path() / ("smcp-kill9-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  const std::string tag = std::to_string(::getpid() % 100000);
  const std::string fg = "sleep 1003." + tag, escaped = "sleep 1004." + tag, bg = "sleep 1005." + tag;
  bench::StdioClient client(SMCP_BINARY, {"serve", "--state-dir", (dir / "state").string()});
  json job = client.call("remote_bash", {{"command", bg}, {"run_in_background", true}});
  client.send({{"jsonrpc", "2.0"},
               {"id", client.next_id()},
               {"method", "tools/call"},
               {"params", {{"name", "remote_bash"}, {"arguments", {{"command", "setsid " + escaped + " & " + fg}}}}}});
  for (int i = 0; i < 300 && (count_processes(fg) == 0 || count_processes(escaped) == 0 || count_processes(bg) == 0);
       ++i) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_EQ(count_processes(fg), 1);
  ASSERT_EQ(count_processes(escaped), 1);
  ASSERT_EQ(::kill(client.pid(), SIGKILL), 0); // no chance to clean up
  for (int i = 0; i < 500 && (count_processes(fg) > 0 || count_processes(escaped) > 0); ++i) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(count_processes(fg), 0)
      << "a foreground command outlived its killed server (its timeout would never apply)";
  EXPECT_EQ(count_processes(escaped), 0) << "a setsid child of a foreground command outlived its killed server";
  EXPECT_EQ(count_processes(bg), 1) << "the durable job must outlive the server";
  // The next server still ends the durable job.
  bench::StdioClient again(SMCP_BINARY, {"serve", "--state-dir", (dir / "state").string()});
  json killed = again.call("remote_bash_kill", {{"bash_id", job["bash_id"]}});
  EXPECT_EQ(killed["verified"], true);
  EXPECT_EQ(count_processes(bg), 0);
  ::system(("pkill -f '^sleep 100[345]." + tag + "'").c_str());
  std::filesystem::remove_all(dir);
}

TEST(ServerLifecycle, RefusesAStateDirectoryOthersCanWrite) {
  auto dir = std::filesystem::temp_directory_path() / ("smcp-shared-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::filesystem::permissions(dir, std::filesystem::perms::all); // 0777, like /tmp without the sticky bit
  std::string cmd = std::string(SMCP_BINARY) + " serve --state-dir " + dir.string() + " < /dev/null 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[512];
  while (std::fgets(buf, sizeof buf, p)) {
    out += buf;
  }
  int status = ::pclose(p);
  EXPECT_NE(WEXITSTATUS(status), 0);
  EXPECT_NE(out.find("writable by other users"), std::string::npos) << out;
  EXPECT_FALSE(std::filesystem::exists(dir / "state.db")) << "nothing may be created in it";
  std::filesystem::remove_all(dir);
}

} // namespace
} // namespace smcp
