// The SSH host through the real `sandbox-mcp serve` over stdio: SSH_HOST and the config file pick
// hosts, the alias rule keeps made-up names out, remote_hosts reports state, and a durable
// background job on an SSH host survives its sshd being killed (status `unreachable` with the
// output so far), then catches up from its recorded offset after the restart, and is killed as a
// whole process group.
#include "tests/support/stdio_client.h"
#include "tests/support/sshd_fixture.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

namespace smcp {
namespace {

using namespace std::chrono_literals;
using bench::StdioClient;
using nlohmann::json;
using testing::SshdFixture;

class SshMcpTest : public ::testing::Test {
protected:
  void SetUp() override {
    if (auto reason = SshdFixture::unavailable_reason(); !reason.empty()) {
      GTEST_SKIP() << "no sshd: " << reason;
    }
    fx = std::make_unique<SshdFixture>();
    state = fx->dir() + "/state";
    config = fx->dir() + "/sandbox-mcp.json";
    json c = {{"ssh_config", fx->config_file()},
              {"hosts", json::array({"h0", "h1", json{{"name", "h2"}, {"max_concurrency", 4}}})},
              {"pool", {{"keepalive_s", 5}}}};
    std::ofstream(config) << c.dump(2);
    ::setenv("SANDBOX_MCP_CONFIG", config.c_str(), 1);
    ::setenv("SSH_HOST", "h1", 1);
    client = std::make_unique<StdioClient>(
        SMCP_BINARY, std::vector<std::string>{"serve", "--state-dir", state, "--log-level", "warn"});
    ::unsetenv("SANDBOX_MCP_CONFIG");
    ::unsetenv("SSH_HOST");
  }
  void TearDown() override {
    client.reset();
    fx.reset();
  }

  // A tools/call that may fail: the whole result.
  json call_raw(const std::string& tool, const json& args) {
    return client->request("tools/call", {{"name", tool}, {"arguments", args}});
  }

  std::unique_ptr<SshdFixture> fx;
  std::unique_ptr<StdioClient> client;
  std::string state, config;
};

TEST_F(SshMcpTest, RemoteBashOnSshHostsThroughTheServer) {
  json r = client->call("remote_bash", {{"command", "echo hi; echo err >&2; exit 3"}});
  EXPECT_EQ(r["host"], "h1");
  EXPECT_EQ(r["exit_code"], 3);
  EXPECT_EQ(r["stdout"], "hi\n");
  EXPECT_EQ(r["stderr"], "err\n");
  r = client->call("remote_bash", {{"command", "echo $SSH_CONNECTION | awk '{print $4}'"}, {"host", "h0"}});
  EXPECT_EQ(r["stdout"], std::to_string(fx->port(0)) + "\n");
  // Defined by a Host block in the ssh config (not in the sandbox-mcp config): allowed.
  r = client->call("remote_bash", {{"command", "echo jumped"}, {"host", "jumped"}});
  EXPECT_EQ(r["stdout"], "jumped\n");
  // Neither configured nor a Host block: refused before any connection.
  json bad = call_raw("remote_bash", {{"command", "true"}, {"host", "made-up.example"}});
  EXPECT_TRUE(bad.value("isError", false));
  EXPECT_NE(bad["content"][0]["text"].get<std::string>().find("unknown host 'made-up.example'"), std::string::npos)
      << bad.dump();
  // Timeout through the tool: the note says the tree was ended.
  r = client->call("remote_bash", {{"command", "sleep 30"}, {"timeout", 800}});
  EXPECT_EQ(r["timed_out"], true);
  // A window of a file, cut on the host.
  std::ofstream(fx->dir() + "/f.txt") << "a\nb\nc\nd\n";
  r = client->call("remote_file_read", {{"file_path", fx->dir() + "/f.txt"}, {"offset", -2}});
  EXPECT_EQ(r["content"], "     3\tc\n     4\td\n");
  EXPECT_EQ(r["host"], "h1");
}

TEST_F(SshMcpTest, RemoteHostsListsStateAndProbes) {
  client->call("remote_bash", {{"command", "true"}});
  json r = client->call("remote_hosts", {{"probe", true}});
  EXPECT_EQ(r["default_host"], "h1");
  std::set<std::string> names;
  for (const auto& h : r["hosts"]) {
    names.insert(h["name"].get<std::string>());
    if (h["name"] == "local") {
      EXPECT_EQ(h["kind"], "local");
      continue;
    }
    EXPECT_EQ(h["kind"], "ssh") << h.dump();
    EXPECT_EQ(h["state"], "connected") << h.dump();
    EXPECT_GE(h["sessions"].get<int>(), 1) << h.dump();
    EXPECT_TRUE(h["probe_ms"].is_number()) << h.dump();
    EXPECT_TRUE(h["latency_ms"].is_number()) << h.dump();
  }
  EXPECT_EQ(names, (std::set<std::string>{"local", "h0", "h1", "h2"}));
  fx->kill(0);
  r = client->call("remote_hosts", {{"host", "h0"}, {"probe", true}});
  ASSERT_EQ(r["hosts"].size(), 1u);
  EXPECT_TRUE(r["hosts"][0]["probe_error"].is_string()) << r.dump();
  EXPECT_NE(r["hosts"][0]["probe_error"].get<std::string>().find("Connection refused"), std::string::npos) << r.dump();
}

TEST_F(SshMcpTest, BackgroundJobSurvivesSshdDeathAndCatchesUp) {
  const int n = 300;
  json started = client->call("remote_bash", {{"command", "i=0; while [ $i -lt " + std::to_string(n) +
                                                              " ]; do i=$((i+1)); echo line $i; sleep 0.02; done"},
                                              {"run_in_background", true},
                                              {"host", "h2"}});
  const std::string id = started["bash_id"];
  std::string all;
  json r = client->call("remote_bash_output", {{"bash_id", id}, {"wait_ms", 5000}, {"until", "line 20$"}});
  all += r["output"].get<std::string>();
  EXPECT_EQ(r["status"], "running");

  fx->kill(2);
  r = client->call("remote_bash_output", {{"bash_id", id}});
  all += r["output"].get<std::string>();
  EXPECT_EQ(r["status"], "unreachable") << r.dump();
  EXPECT_NE(r.value("note", "").find("h2"), std::string::npos) << r.dump();
  json listed = client->call("remote_bash_list", json::object());
  bool seen = false;
  for (const auto& j : listed["jobs"]) {
    if (j["bash_id"] == id) {
      seen = true;
      EXPECT_EQ(j["status"], "unreachable");
    }
  }
  EXPECT_TRUE(seen);
  std::this_thread::sleep_for(1500ms); // the job keeps writing on the host meanwhile

  fx->restart(2);
  // Each wait returns at the first new output, so bound the loop by time, not by reads.
  for (auto until = std::chrono::steady_clock::now() + 60s; std::chrono::steady_clock::now() < until;) {
    r = client->call("remote_bash_output", {{"bash_id", id}, {"wait_ms", 2000}});
    all += r["output"].get<std::string>();
    if (r["status"] != "running" && r["status"] != "unreachable") {
      break;
    }
  }
  EXPECT_EQ(r["status"], "exited") << r.dump();
  EXPECT_EQ(r["exit_code"], 0);
  std::string expected;
  for (int i = 1; i <= n; ++i) {
    expected += "line " + std::to_string(i) + "\n";
  }
  EXPECT_EQ(all, expected) << "output lost or repeated across the reconnect";

  // A second job, ended by remote_bash_kill: its whole process group goes.
  const std::string sleeper = "sleep 33" + std::to_string(::getpid());
  started = client->call(
      "remote_bash",
      {{"command", sleeper + " & " + sleeper + "; echo never"}, {"run_in_background", true}, {"host", "h2"}});
  std::this_thread::sleep_for(500ms);
  json killed = client->call("remote_bash_kill", {{"bash_id", started["bash_id"]}});
  EXPECT_EQ(killed["verified"], true) << killed.dump();
  EXPECT_EQ(killed["status"], "killed") << killed.dump();
  json check = client->call("remote_bash", {{"command", "pgrep -c -f '^" + sleeper + "' || true"}, {"host", "h2"}});
  EXPECT_EQ(check["stdout"], "0\n");
}

} // namespace
} // namespace smcp
