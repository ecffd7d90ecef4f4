// Helpers shared by the sandbox, Slurm and profile integration tests: a program run to its end, a
// git repository with one commit, and MCP calls that must fail or that look a sandbox up.
#pragma once

#include "sandbox/exec/run_process.h"
#include "tests/support/stdio_client.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <thread>
#include <utility>
#include <vector>

namespace smcp::testing {

// Sets environment variables for the children started while it lives (the test's own process
// environment is what a spawned server or CLI inherits), and restores them when it goes.
class ScopedEnv {
public:
  explicit ScopedEnv(const std::vector<std::pair<std::string, std::string>>& vars = {}) {
    for (const auto& [k, v] : vars) {
      set(k, v);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;
  ~ScopedEnv() {
    for (auto it = m_saved.rbegin(); it != m_saved.rend(); ++it) { // the first value saved is restored last
      it->second ? ::setenv(it->first.c_str(), it->second->c_str(), 1) : ::unsetenv(it->first.c_str());
    }
  }
  void set(const std::string& k, const std::string& v) {
    const char* old = ::getenv(k.c_str());
    m_saved.emplace_back(k, old ? std::optional<std::string>(old) : std::nullopt);
    ::setenv(k.c_str(), v.c_str(), 1);
  }

private:
  std::vector<std::pair<std::string, std::optional<std::string>>> m_saved;
};

inline exec::ProcessResult run_program(const std::vector<std::string>& argv,
                                       std::chrono::milliseconds timeout = std::chrono::seconds(120)) {
  return exec::run_process(argv, timeout);
}

// A git repository in `dir` (created) on branch main, with a README ("hello") committed.
inline std::string make_git_repo(const std::string& dir) {
  std::filesystem::create_directories(dir);
  EXPECT_EQ(run_program({"git", "-C", dir, "init", "-q", "-b", "main"}).status, 0);
  std::ofstream(dir + "/README") << "hello\n";
  EXPECT_EQ(run_program({"git", "-C", dir, "add", "README"}).status, 0);
  EXPECT_EQ(
      run_program({"git", "-C", dir, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "init"}).status,
      0);
  return dir;
}

// Fake NVIDIA GPUs for tests on machines without one: character devices of the driver's major
// (195) named nvidia0 .. nvidia<n-1> in `dir` (created), and nvidiactl (minor 255) when `ctl`.
// Needs root. Empty when made, else what failed.
inline std::string make_fake_gpus(const std::string& dir, int n, bool ctl) {
  std::filesystem::create_directories(dir);
  auto node = [&](const std::string& name, unsigned minor) -> std::string {
    const std::string path = dir + "/" + name;
    return ::mknod(path.c_str(), S_IFCHR | 0666, makedev(195, minor)) == 0
               ? std::string()
               : "mknod " + path + ": " + std::strerror(errno);
  };
  for (int i = 0; i < n; ++i) {
    if (auto err = node("nvidia" + std::to_string(i), static_cast<unsigned>(i)); !err.empty()) {
      return err;
    }
  }
  return ctl ? node("nvidiactl", 255) : std::string();
}

// A tools/call that must fail: its JSON-RPC error or its isError text.
inline std::string tool_error(bench::StdioClient& client, const std::string& tool, const nlohmann::json& args) {
  try {
    nlohmann::json r = client.request("tools/call", {{"name", tool}, {"arguments", args}});
    EXPECT_TRUE(r.value("isError", false)) << r.dump();
    return r["content"][0]["text"].get<std::string>();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
}

// The sandbox_ls entry of `name`, or null.
inline nlohmann::json find_sandbox(bench::StdioClient& client, const std::string& name) {
  const nlohmann::json all = client.call("sandbox_ls", nlohmann::json::object());
  for (const auto& s : all["sandboxes"]) {
    if (s["name"] == name) {
      return s;
    }
  }
  return nullptr;
}

// Why container sandboxes cannot be tested here ("" when they can): no podman, or no sandbox image
// (scripts/test.sh builds it with `sandbox-mcp image build`).
inline std::string why_no_sandbox_image(const std::string& image = "localhost/sandbox-mcp:latest") {
  if (run_program({"podman", "--version"}, std::chrono::seconds(30)).status != 0) {
    return "podman is not installed (scripts/install-deps.sh --test installs it)";
  }
  if (run_program({"podman", "image", "exists", image}, std::chrono::seconds(30)).status != 0) {
    return image + " is missing (scripts/test.sh builds it with `sandbox-mcp image build`)";
  }
  return {};
}

// Removes whatever containers a test left for repository `repo` (ours carry its path in a label).
inline void remove_containers_of(const std::string& repo) {
  auto ps = run_program({"podman", "ps", "-aq", "--filter", "label=sandbox-mcp.repo=" + repo});
  std::istringstream ids(ps.out);
  for (std::string id; ids >> id;) {
    run_program({"podman", "rm", "-f", "-t", "0", id});
  }
}

// `podman rm -f` of one container as a human would do it behind our back, tried again while a
// mount of it is busy (a mount namespace another test made meanwhile holds its shm: podman then
// fails with "device or resource busy" for a moment). The last status.
inline int podman_rm(const std::string& container) {
  int status = -1;
  for (int attempt = 0; attempt < 10 && status != 0; ++attempt) {
    if (attempt > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    status = run_program({"podman", "rm", "-f", "-t", "0", container}).status;
  }
  return status;
}

} // namespace smcp::testing
