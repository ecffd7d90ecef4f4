// The fixture of the sandbox boundary suites (tests/integration/sandbox_boundary*_test.cpp): a
// git repository, the real binary's CLI and MCP server on it, and `inside` to act as the agent in
// a sandbox's container (`podman exec` or `docker exec`, as the reviews' attacker did). Parameterized
// over the runtime (tests/support/container_runtimes.h); skips, saying why, without that runtime or
// the sandbox image in it.
#pragma once

#include "sandbox/exec/run_process.h"
#include "tests/support/container_runtimes.h"
#include "tests/support/sandbox_calls.h"
#include "tests/support/stdio_client.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

namespace smcp::testing {

constexpr const char* k_image = "localhost/sandbox-mcp:latest";

inline exec::ProcessResult run(const std::vector<std::string>& argv,
                               std::chrono::milliseconds timeout = std::chrono::seconds(120)) {
  return testing::run_program(argv, timeout);
}

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class SandboxBoundaryTest : public ::testing::TestWithParam<std::string> {
protected:
  void SetUp() override {
    if (auto no = testing::why_no_runtime(GetParam(), k_image); !no.why.empty()) {
      if (no.fail) {
        FAIL() << rt.name << " for sandboxes: " << no.why;
      }
      GTEST_SKIP() << "no " << rt.name << " for sandboxes: " << no.why;
    }
    char tmpl[] = "/tmp/smcp-boundary-XXXXXX";
    dir = ::mkdtemp(tmpl);
    repo = testing::make_git_repo(dir + "/repo");
    state = dir + "/state";
    config = dir + "/config.json";
    write_config(nlohmann::json::object());
    mark = dir + "/pwned"; // what an attack would create on the host
  }
  void TearDown() override {
    client.reset();
    if (!dir.empty()) {
      rt.remove_containers_of(repo);
      for (const auto& c : extra_containers) {
        run(rt.rm_argv(c));
      }
      for (const auto& i : extra_images) {
        run(rt({"rmi", i}));
      }
      std::filesystem::remove_all(dir);
    }
  }

  // The config file: `j`, and the runtime under test (docker is never chosen by "auto" here).
  void write_config(nlohmann::json j) {
    if (rt.docker()) {
      j["sandbox"]["runtime"] = "docker";
    }
    std::ofstream(config) << j.dump();
  }
  exec::ProcessResult cli(std::vector<std::string> args, const std::string& base = {}) {
    args.insert(args.begin(), {SMCP_BINARY, "--repo_base", base.empty() ? repo : base});
    testing::ScopedEnv e({{"SANDBOX_MCP_CONFIG", config}, {"SANDBOX_MCP_STATE_DIR", state}});
    return run(args);
  }
  // The sandbox's container, found by its labels (not by trusting any name we computed).
  std::string container_of(const std::string& name) {
    auto ps = run(rt({"ps", "-a", "--filter", "label=sandbox-mcp.sandbox=" + name, "--filter",
                      "label=sandbox-mcp.repo=" + repo, "--format", "{{.Names}}"}));
    std::string c = ps.out.substr(0, ps.out.find('\n'));
    EXPECT_FALSE(c.empty()) << "no container for sandbox " << name;
    return c;
  }
  // Runs `script` inside the sandbox as the agent, the way an attacker in it would.
  exec::ProcessResult inside(const std::string& name, const std::string& script) {
    return run(rt({"exec", "--workdir", "/workspace", container_of(name), "sh", "-c", script}));
  }
  void make(const std::string& name, const std::string& branch = "") {
    std::vector<std::string> a = {"new", "-n", name};
    if (!branch.empty()) {
      a.insert(a.end(), {"-b", branch});
    }
    auto r = cli(a);
    ASSERT_EQ(r.status, 0) << r.err << r.out;
  }
  void start_server(const std::vector<std::pair<std::string, std::string>>& env = {}) {
    client.reset();
    testing::ScopedEnv e({{"SANDBOX_MCP_CONFIG", config}});
    for (const auto& [k, v] : env) {
      e.set(k, v);
    }
    client = std::make_unique<bench::StdioClient>(
        SMCP_BINARY,
        std::vector<std::string>{"--repo_base", repo, "serve", "--state-dir", state, "--log-level", "warn"});
  }
  // The "kept at PREFIX" of an rm --force.
  static std::string kept_at(const std::string& out) {
    const std::string key = "is kept at ";
    auto at = out.find(key);
    if (at == std::string::npos) {
      return {};
    }
    std::string prefix = out.substr(at + key.size());
    return prefix.substr(0, prefix.find('\n'));
  }
  // Where rm --force keeps what earlier syncs brought: beside the rescue from inside.
  static std::string synced_of(std::string prefix) {
    if (!prefix.empty() && prefix.back() == '/') {
      prefix.pop_back();
    }
    return prefix + "-synced/";
  }
  // The content of `path` in the first ref under `prefix` that has it ("" when none does).
  std::string kept_file(const std::string& prefix, const std::string& path) {
    return run({"sh", "-c",
                "git -C \"$1\" for-each-ref --format='%(objectname)' \"$2\" | while read o; do git -C \"$1\" show "
                "\"$o:$3\" 2>/dev/null && break; done",
                "sh", repo, prefix, path})
        .out;
  }
  void expect_no_host_effect() {
    EXPECT_FALSE(std::filesystem::exists(mark)) << "code planted in the sandbox ran on the host";
  }

  const testing::Rt rt{GetParam()};
  std::string dir, repo, state, config, mark;
  std::vector<std::string> extra_containers;
  std::vector<std::string> extra_images;
  std::unique_ptr<bench::StdioClient> client;
};

} // namespace smcp::testing
