// Input validation and the server's own secrets, through the real `sandbox-mcp serve` (stdio):
// NUL characters never reach a command, path or environment (refused with -32602 naming the
// field); integers are never silently rounded; descriptions and job listings are bounded;
// resources/subscribe refuses unknown job URIs; and the SSH key passphrase taken from the
// environment reaches no command the server starts (yet still unlocks the key).
#include "tests/support/stdio_client.h"
#include "tests/support/sshd_fixture.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace smcp {
namespace {

using bench::StdioClient;
using nlohmann::json;
using namespace std::string_literals;

class InputSafetyTest : public ::testing::Test {
protected:
  void SetUp() override {
    char tmpl[] = "/tmp/smcp-input.XXXXXX";
    dir = ::mkdtemp(tmpl);
    client = std::make_unique<StdioClient>(
        SMCP_BINARY, std::vector<std::string>{"serve", "--state-dir", dir + "/state", "--log-level", "warn"});
  }
  void TearDown() override {
    client.reset();
    std::filesystem::remove_all(dir);
  }

  // The JSON-RPC error of a request expected to fail (null when it succeeded).
  json error_of(const std::string& method, const json& params) {
    try {
      client->request(method, params);
    } catch (const std::runtime_error& e) {
      return json::parse(e.what());
    }
    return nullptr;
  }
  json tool_error(const std::string& tool, const json& args) {
    return error_of("tools/call", {{"name", tool}, {"arguments", args}});
  }

  std::string dir;
  std::unique_ptr<StdioClient> client;
};

void expect_invalid(const json& error, const std::string& field, const std::string& words) {
  ASSERT_TRUE(error.is_object()) << "expected a -32602 error about '" << field << "', the call succeeded";
  EXPECT_EQ(error["code"], -32602) << error.dump();
  const std::string message = error["message"].get<std::string>();
  EXPECT_NE(message.find("'" + field + "'"), std::string::npos) << message;
  EXPECT_NE(message.find(words), std::string::npos) << message;
}

TEST_F(InputSafetyTest, NulCharactersAreRefusedNamingTheField) {
  // Each of these would otherwise be cut at the NUL: `ls -d /`, /etc/hostname, an env value "a".
  expect_invalid(tool_error("remote_bash", {{"command", "ls -d /\0tmp"s}}), "command", "NUL");
  expect_invalid(tool_error("remote_file_read", {{"file_path", "/etc/hostname\0.txt"s}}), "file_path", "NUL");
  expect_invalid(tool_error("remote_bash", {{"command", "env"}, {"env", {{"X", "a\0b"s}}}}), "env.X", "NUL");
  expect_invalid(tool_error("remote_bash", {{"command", "true"}, {"cwd", "/tmp\0/x"s}}), "cwd", "NUL");
  json key = tool_error("remote_bash", {{"command", "env"}, {"env", {{"A\0B"s, "1"}}}});
  expect_invalid(key, "env", "NUL");
  EXPECT_EQ(key["message"].get<std::string>().find("'='"), std::string::npos) << key.dump();
  // The server keeps serving, and a clean call works.
  EXPECT_EQ(client->call("remote_bash", {{"command", "echo ok"}})["stdout"], "ok\n");
}

TEST_F(InputSafetyTest, EnvNamesWithAnEqualsSignOrEmptyAreRefusedWithTheRightReason) {
  expect_invalid(tool_error("remote_bash", {{"command", "env"}, {"env", {{"A=B", "1"}}}}), "env.A=B", "'='");
  expect_invalid(tool_error("remote_bash", {{"command", "env"}, {"env", {{"", "1"}}}}), "env", "empty");
}

TEST_F(InputSafetyTest, IntegersBeyondTwoToThe53AreRefusedNotRounded) {
  std::ofstream(dir + "/f.txt") << "one\ntwo\n";
  for (const json& offset : {json(9223372036854775807LL), json(9007199254740992LL), json(-9007199254740993LL),
                             json(18446744073709551615ULL), json(1e300)}) {
    expect_invalid(tool_error("remote_file_read", {{"file_path", dir + "/f.txt"}, {"offset", offset}}), "offset",
                   "9007199254740991");
  }
  // The largest exact integer is taken as it is: far beyond the end, an empty window.
  json r = client->call("remote_file_read", {{"file_path", dir + "/f.txt"}, {"offset", 9007199254740991LL}});
  EXPECT_EQ(r["lines"], 0) << r.dump();
  EXPECT_EQ(client->call("remote_file_read", {{"file_path", dir + "/f.txt"}, {"offset", -1}})["content"],
            "     2\ttwo\n");
}

TEST_F(InputSafetyTest, DescriptionsAreBoundedAndListingsStaySmall) {
  expect_invalid(tool_error("remote_bash", {{"command", "true"}, {"description", std::string(3 << 20, 'd')}}),
                 "description", "at most 1024");
  const std::string description(1024, 'd');
  client->call("remote_bash", {{"command", "true"}, {"description", description}});
  // A 200 KB command (kept as a job: it ran in the background) is listed cut, with a marker.
  const std::string long_command = ": " + std::string(200000, 'c') + "; true";
  json job = client->call("remote_bash", {{"command", long_command}, {"run_in_background", true}});
  json answer = client->request("tools/call", {{"name", "remote_bash_list"}, {"arguments", json::object()}});
  const std::size_t answer_bytes = answer.dump().size();
  EXPECT_LT(answer_bytes, 20000u) << "remote_bash_list repeated the long command";
  json listed = answer["structuredContent"]["jobs"];
  ASSERT_FALSE(listed.empty());
  EXPECT_EQ(listed[0]["bash_id"], job["bash_id"]);
  const std::string shown = listed[0]["command"];
  EXPECT_EQ(shown.rfind(long_command.substr(0, 1024), 0), 0u) << "the head of the command is kept";
  EXPECT_NE(shown.find("more bytes"), std::string::npos) << shown.substr(0, 2000);
  // The whole command is still available from remote_bash_output.
  json out = client->call("remote_bash_output", {{"bash_id", job["bash_id"]}, {"wait_ms", 5000}});
  EXPECT_EQ(out["command"], long_command);
}

TEST_F(InputSafetyTest, SubscribingToAnUnknownJobIsResourceNotFound) {
  json missing = error_of("resources/subscribe", {{"uri", "job://bash_000000000000/output"}});
  ASSERT_TRUE(missing.is_object()) << "subscribe to an unknown job succeeded";
  EXPECT_EQ(missing["code"], -32002) << missing.dump();
  EXPECT_NE(missing["message"].get<std::string>().find("job://bash_000000000000/output"), std::string::npos);
  json bogus = error_of("resources/subscribe", {{"uri", "file:///etc/passwd"}});
  ASSERT_TRUE(bogus.is_object());
  EXPECT_EQ(bogus["code"], -32002);
  // An existing job's output can be subscribed to.
  json job = client->call("remote_bash", {{"command", "echo x"}, {"run_in_background", true}});
  const std::string uri = "job://" + job["bash_id"].get<std::string>() + "/output";
  EXPECT_EQ(client->request("resources/subscribe", {{"uri", uri}}), json::object());
}

TEST_F(InputSafetyTest, ProgressTokensMustBeStringsOrIntegers) {
  for (const json& token : {json::object({{"a", 1}}), json(1.5), json(true), json(nullptr), json::array({1})}) {
    json err = error_of(
        "tools/call",
        {{"name", "remote_bash"}, {"arguments", {{"command", "echo hi"}}}, {"_meta", {{"progressToken", token}}}});
    ASSERT_TRUE(err.is_object()) << "progressToken " << token.dump() << " was accepted";
    EXPECT_EQ(err["code"], -32602);
    EXPECT_NE(err["message"].get<std::string>().find("progressToken"), std::string::npos) << err.dump();
  }
}

// The passphrase of an encrypted SSH key, named by the config's passphrase.env, is taken out of the
// environment at start: no local command or background job sees it, and the key still unlocks.
TEST(ServerSecrets, PassphraseVariableReachesNoCommandButUnlocksTheKey) {
  if (auto reason = testing::SshdFixture::unavailable_reason(); !reason.empty()) {
    GTEST_SKIP() << "no sshd: " << reason;
  }
  testing::SshdFixture fx;
  const std::string config = fx.dir() + "/sandbox-mcp.json";
  json c = {{"ssh_config", fx.config_file()},
            {"hosts", json::array({"enckey"})},
            {"passphrase", {{"env", "SMCP_TEST_SECRET_PASSPHRASE"}}}};
  std::ofstream(config) << c.dump(2);
  ::setenv("SANDBOX_MCP_CONFIG", config.c_str(), 1);
  ::setenv("SMCP_TEST_SECRET_PASSPHRASE", testing::SshdFixture::encrypted_key_passphrase().c_str(), 1);
  StdioClient client(SMCP_BINARY, {"serve", "--state-dir", fx.dir() + "/state", "--log-level", "warn"});
  ::unsetenv("SANDBOX_MCP_CONFIG");
  ::unsetenv("SMCP_TEST_SECRET_PASSPHRASE");

  json fg = client.call("remote_bash", {{"command", "env"}});
  EXPECT_EQ(fg["stdout"].get<std::string>().find("SMCP_TEST_SECRET_PASSPHRASE"), std::string::npos);
  EXPECT_NE(fg["stdout"].get<std::string>().find("PATH="), std::string::npos) << "env printed nothing?";
  json bg = client.call("remote_bash", {{"command", "env"}, {"run_in_background", true}});
  std::string output;
  json out = json::object();
  for (int i = 0; i < 20 && out.value("status", "running") == "running"; ++i) {
    out = client.call("remote_bash_output", {{"bash_id", bg["bash_id"]}, {"wait_ms", 5000}});
    output += out.value("output", "");
  }
  EXPECT_EQ(out["status"], "exited") << out.dump();
  EXPECT_NE(output.find("PATH="), std::string::npos) << output;
  EXPECT_EQ(output.find("SMCP_TEST_SECRET_PASSPHRASE"), std::string::npos) << "a background job saw it";
  EXPECT_EQ(client.call("remote_bash", {{"command", "echo unlocked"}, {"host", "enckey"}})["stdout"], "unlocked\n");
}

} // namespace
} // namespace smcp
