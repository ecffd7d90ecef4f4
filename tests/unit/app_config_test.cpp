// The sandbox-mcp config file: hosts, policies, pool limits, passphrase sources, and clear errors.
#include "mcp-server/app/config.h"
#include "sandbox/exec/run_process.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace smcp::app {
namespace {

using nlohmann::json;

// parse_config's error for `text`, or "(accepted)".
std::string error(const char* text) {
  try {
    parse_config(json::parse(text), "cfg.json");
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "(accepted)";
}

TEST(AppConfig, DefaultsWithoutAFile) {
  FileConfig c = load_config("/nonexistent/sandbox-mcp.json");
  EXPECT_TRUE(c.path.empty());
  EXPECT_EQ(c.host_key_policy, ssh::HostKeyPolicy::accept_new);
  EXPECT_FALSE(c.allow_unlisted_hosts);
  EXPECT_TRUE(c.hosts.empty());
  EXPECT_EQ(c.pool.max_channels_per_session, 10);
}

TEST(AppConfig, ParsesEverything) {
  json doc = json::parse(R"({
    "default_host": "gpu1", "ssh_config": "~/cfg", "host_key_policy": "strict", "allow_unlisted_hosts": true,
    "bashrc": "skip", "passphrase": {"command": "pass show x"},
    "pool": {"max_sessions": 2, "max_channels_per_session": 5, "busy_channels": 2, "max_concurrency": 7,
             "max_handshakes": 1, "handshake_attempts": 9, "idle_timeout_s": 10, "last_session_idle_timeout_s": 20,
             "keepalive_s": 3, "connect_timeout_s": 4},
    "hosts": ["gpu1", {"name": "gpu2", "host_key_policy": "off", "max_concurrency": 3, "jobs_root": "/scratch/j",
                       "bashrc": "source"}]
  })");
  FileConfig c = parse_config(doc, "test.json");
  EXPECT_EQ(c.default_host, "gpu1");
  EXPECT_EQ(c.ssh_config, exec::local_home() + "/cfg");
  EXPECT_EQ(c.host_key_policy, ssh::HostKeyPolicy::strict);
  EXPECT_TRUE(c.allow_unlisted_hosts);
  EXPECT_EQ(c.shell_env, ssh::ShellEnv::skip);
  EXPECT_EQ(c.passphrase.command, "pass show x");
  EXPECT_EQ(c.pool.max_sessions, 2);
  EXPECT_EQ(c.pool.max_channels_per_session, 5);
  EXPECT_EQ(c.pool.busy_channels, 2);
  EXPECT_EQ(c.pool.max_concurrency, 7);
  EXPECT_EQ(c.pool.max_handshakes, 1);
  EXPECT_EQ(c.pool.handshake_attempts, 9);
  EXPECT_EQ(c.pool.idle_timeout.count(), 10);
  EXPECT_EQ(c.pool.last_session_idle_timeout.count(), 20);
  EXPECT_EQ(c.pool.default_keepalive.count(), 3);
  EXPECT_EQ(c.pool.default_connect_timeout.count(), 4);
  ASSERT_EQ(c.hosts.size(), 2u);
  EXPECT_EQ(c.hosts[0].name, "gpu1");
  EXPECT_FALSE(c.hosts[0].host_key_policy);
  EXPECT_EQ(c.hosts[1].name, "gpu2");
  EXPECT_EQ(c.hosts[1].host_key_policy, ssh::HostKeyPolicy::off);
  EXPECT_EQ(c.hosts[1].max_concurrency, 3);
  EXPECT_EQ(c.hosts[1].jobs_root, "/scratch/j");
  EXPECT_EQ(c.hosts[1].shell_env, ssh::ShellEnv::source);
}

TEST(AppConfig, ErrorsNameTheFileAndTheKey) {
  EXPECT_NE(error(R"({"host_key_policy": "maybe"})").find("cfg.json: host_key_policy must be"), std::string::npos);
  EXPECT_NE(error(R"({"hosts": [42]})").find("hosts"), std::string::npos);
  EXPECT_NE(error(R"({"hosts": ["local"]})").find("'local'"), std::string::npos);
  EXPECT_NE(error(R"({"hosts": ["-oProxyCommand=x"]})").find("not usable"), std::string::npos);
  EXPECT_NE(error(R"({"pool": {"max_sessions": 0}})").find("max_sessions must be between"), std::string::npos);
  EXPECT_NE(error(R"({"bashrc": "sometimes"})").find("bashrc must be"), std::string::npos);
  EXPECT_NE(error(R"([1, 2])").find("object"), std::string::npos);
  EXPECT_EQ(error(R"({"unknown_key": 1})"), "(accepted)") << "unknown keys are only logged";
}

TEST(AppConfig, SandboxSlurmAndProfileSections) {
  FileConfig c = parse_config(json::parse(R"({
    "sandbox": {"runtime": "podman", "image": "localhost/x:1", "cpus": "2", "memory": "4g", "pids": 300,
                "env": ["GITHUB_TOKEN"], "mounts": [{"source": "~/data", "target": "/data", "read_only": true}]},
    "slurm": {"partition": "gpu", "time": "1:00:00", "gres": "gpu:1", "start_timeout_s": 30},
    "profiles": {"ci": {"base": "restrictive", "memory_mb": 2048, "ro_mounts": ["/opt/x"]},
                 "standard": {"open_files": 1024}},
    "default_profile": "ci",
    "hosts": [{"name": "gpu1", "repo_base": "/srv/repo", "profile": "standard"}]
  })"),
                              "cfg.json");
  EXPECT_EQ(c.sandbox.container.image, "localhost/x:1");
  EXPECT_EQ(c.sandbox.container.pids, 300);
  ASSERT_EQ(c.sandbox.container.mounts.size(), 1u);
  EXPECT_TRUE(c.sandbox.container.mounts[0].read_only);
  EXPECT_EQ(c.sandbox.slurm.gres, "gpu:1");
  EXPECT_EQ(c.sandbox.slurm.start_timeout, std::chrono::seconds(30));
  const auto& ci = c.profiles.profiles.at("ci");
  EXPECT_FALSE(ci.network) << "from its base, restrictive";
  EXPECT_EQ(ci.memory_mb, 2048);
  EXPECT_EQ(ci.ro_mounts, std::vector<std::string>{"/opt/x"});
  EXPECT_EQ(c.profiles.profiles.at("standard").open_files, 1024);
  EXPECT_EQ(c.profiles.profiles.at("standard").memory_mb, 1024) << "the rest of the built-in stays";
  EXPECT_EQ(c.profiles.default_profile, "ci");
  EXPECT_EQ(c.profiles.host_default.at("gpu1"), "standard");
  EXPECT_NE(error(R"({"profiles": {"x": {"base": "nope"}}})").find("no profile named 'nope'"), std::string::npos);
  EXPECT_NE(error(R"({"default_profile": "nope"})").find("no profile named 'nope'"), std::string::npos);
  EXPECT_NE(error(R"({"hosts": [{"name": "h", "profile": "nope"}]})").find("no profile named 'nope'"),
            std::string::npos);
  EXPECT_NE(error(R"({"sandbox": {"runtime": "lxc"}})").find("runtime must be"), std::string::npos);
  EXPECT_NE(error(R"({"sandbox": {"mounts": [{"source": "/a", "target": "rel"}]}})").find("absolute target"),
            std::string::npos);
  EXPECT_NE(error(R"({"profiles": {"x": {"network": "yes"}}})").find("must be true or false"), std::string::npos);
}

TEST(AppConfig, InvalidJsonFileIsReported) {
  auto path = std::filesystem::temp_directory_path() / ("smcp-config-" + std::to_string(::getpid()) + ".json");
  std::ofstream(path) << "{ \"hosts\": [ // a comment is fine\n \"a\" ], }";
  try {
    load_config(path.string());
    FAIL() << "a trailing comma is not JSON";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos);
  }
  // nlohmann::json throws out_of_range, not parse_error, for a number beyond a double's range.
  std::ofstream(path) << "{ \"pool\": { \"max_sessions\": 1e400 } }";
  try {
    load_config(path.string());
    FAIL() << "1e400 is not a number we can represent";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
  }
  std::ofstream(path) << "{ \"hosts\": [ // a comment is fine\n \"a\" ] }";
  EXPECT_EQ(load_config(path.string()).hosts.size(), 1u);
  std::filesystem::remove(path);
}

} // namespace
} // namespace smcp::app
