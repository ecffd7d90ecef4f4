// The container sandbox suites' fixture (tests/integration/sandbox_test.cpp and
// sandbox_gpu_test.cpp): a scratch repository, state and config per test, the real binary through
// the CLI and over MCP stdio, parameterized by runtime ("podman" or "docker": container_runtimes.h).
#pragma once

#include "sandbox/exec/run_process.h"
#include "tests/support/container_runtimes.h"
#include "tests/support/sandbox_calls.h"
#include "tests/support/sshd_fixture.h"
#include "tests/support/stdio_client.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <thread>
#include <unistd.h>

namespace smcp::testing::sandbox_suite {

using namespace std::chrono_literals;
using bench::StdioClient;
using nlohmann::json;
namespace fs = std::filesystem;

constexpr const char* k_image = "localhost/sandbox-mcp:latest";

inline exec::ProcessResult run(const std::vector<std::string>& argv, std::chrono::milliseconds timeout = 120s) {
  return testing::run_program(argv, timeout);
}

inline std::string make_repo(const std::string& dir) {
  return testing::make_git_repo(dir);
}

class SandboxTest : public ::testing::TestWithParam<std::string> {
protected:
  void SetUp() override {
    if (auto no = testing::why_no_runtime(rt.name, k_image); !no.why.empty()) {
      if (no.fail) {
        FAIL() << rt.name << " for sandboxes: " << no.why;
      }
      GTEST_SKIP() << "no " << rt.name << " for sandboxes: " << no.why;
    }
    char tmpl[] = "/tmp/smcp-sbx-XXXXXX";
    dir = ::mkdtemp(tmpl);
    repo = make_repo(dir + "/repo");
    state = dir + "/state";
    config = dir + "/config.json";
    write_config(json::object());
  }
  void TearDown() override {
    client.reset();
    if (!dir.empty()) {
      rt.remove_containers_of(repo); // whatever a failed test left
      fs::remove_all(dir);
    }
  }

  // The config file: `j`, and the runtime under test (docker is never chosen by "auto" here).
  void write_config(json j) {
    if (rt.docker()) {
      j["sandbox"]["runtime"] = "docker";
    }
    std::ofstream(config) << j.dump();
  }
  bool container_exists(const std::string& name) { return rt.container_exists(name); }
  exec::ProcessResult cli(std::vector<std::string> args) {
    args.insert(args.begin(), {SMCP_BINARY, "--repo_base", repo});
    testing::ScopedEnv e({{"SANDBOX_MCP_CONFIG", config}, {"SANDBOX_MCP_STATE_DIR", state}});
    return run(args);
  }
  void start_server() {
    client.reset();
    testing::ScopedEnv e({{"SANDBOX_MCP_CONFIG", config}});
    client =
        std::make_unique<StdioClient>(SMCP_BINARY, std::vector<std::string>{"--repo_base", repo, "serve", "--state-dir",
                                                                            state, "--log-level", "warn"});
  }
  std::string error_of(const std::string& tool, const json& args) { return testing::tool_error(*client, tool, args); }
  json sandbox_of(const std::string& name) { return testing::find_sandbox(*client, name); }

  const testing::Rt rt{GetParam()};
  std::string dir, repo, state, config;
  std::unique_ptr<StdioClient> client;
};

} // namespace smcp::testing::sandbox_suite
