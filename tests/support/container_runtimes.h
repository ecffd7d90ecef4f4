// The container runtimes the sandbox suites run on (value-parameterized: `/Podman` and `/Docker`):
// podman as installed, and docker as the tests' own engine (scripts/docker-local.sh: Debian's
// docker.io on a private socket), started once per test process. The commands a test runs itself
// (to look at or break a container behind the manager's back) go through `Rt`, which names the
// same thing for both.
#pragma once

#include "tests/support/sandbox_calls.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace smcp::testing {

// Why a runtime cannot be tested here: `skip` with the reason, or `fail` (the harness is broken).
struct RuntimeUnavailable {
  bool fail = false;
  std::string why; // empty: the runtime works and has the image
};

// Starts the tests' docker engine once per process (scripts/docker-local.sh start: quick when it
// runs already) and points this process's environment at it (DOCKER_HOST), so that every server,
// CLI and `docker` command the tests start reaches it; podman ignores the variable.
inline const RuntimeUnavailable& docker_engine() {
  static RuntimeUnavailable result;
  static std::once_flag once;
  std::call_once(once, [] {
    auto r = run_program({SMCP_SOURCE_DIR "/scripts/docker-local.sh", "start"}, std::chrono::seconds(600));
    const std::string key = "DOCKER_HOST=";
    auto at = r.out.rfind(key);
    if (r.status == 0 && at != std::string::npos) {
      std::string host = r.out.substr(at + key.size());
      host = host.substr(0, host.find('\n'));
      ::setenv("DOCKER_HOST", host.c_str(), 1);
      return;
    }
    std::string err = r.err;
    while (!err.empty() && err.back() == '\n') {
      err.pop_back();
    }
    // 77: the engine cannot run here (not root, no docker.io, dockerd dies at start): a skip.
    result.fail = r.status != 77;
    result.why = "scripts/docker-local.sh start exited " + std::to_string(r.status) + ": " + err;
  });
  return result;
}

// Why sandboxes of `runtime` ("podman" or "docker") cannot be tested here ("" when they can).
inline RuntimeUnavailable why_no_runtime(const std::string& runtime,
                                         const std::string& image = "localhost/sandbox-mcp:latest") {
  if (runtime == "podman") {
    return {false, why_no_sandbox_image(image)};
  }
  if (const auto& engine = docker_engine(); !engine.why.empty()) {
    return engine;
  }
  if (run_program({"docker", "image", "inspect", "--format", "{{.Id}}", image}, std::chrono::seconds(30)).status != 0) {
    return {false, image + " is not in the docker engine (scripts/docker-local.sh loads it from podman, where "
                           "`sandbox-mcp image build` makes it)"};
  }
  return {};
}

// The parameter's name in test names: Podman, Docker.
inline std::string runtime_test_name(const ::testing::TestParamInfo<std::string>& info) {
  return info.param == "docker" ? "Docker" : "Podman";
}

// What a test runs itself on one runtime.
struct Rt {
  std::string name; // podman | docker

  bool docker() const { return name == "docker"; }
  // `NAME ARGS...`
  std::vector<std::string> operator()(std::vector<std::string> args) const {
    args.insert(args.begin(), name);
    return args;
  }
  bool container_exists(const std::string& c) const {
    return run_program(docker() ? std::vector<std::string>{"docker", "container", "inspect", "--format", "{{.Id}}", c}
                                : std::vector<std::string>{"podman", "container", "exists", c},
                       std::chrono::seconds(30))
               .status == 0;
  }
  bool image_exists(const std::string& image) const {
    return run_program(docker() ? std::vector<std::string>{"docker", "image", "inspect", "--format", "{{.Id}}", image}
                                : std::vector<std::string>{"podman", "image", "exists", image},
                       std::chrono::seconds(30))
               .status == 0;
  }
  // `rm -f` at once (podman waits 10 s for its stop without -t 0).
  std::vector<std::string> rm_argv(const std::string& c) const {
    return docker() ? std::vector<std::string>{"docker", "rm", "-f", c}
                    : std::vector<std::string>{"podman", "rm", "-f", "-t", "0", c};
  }
  // Removes one container as a human would behind our back, tried again while a mount of it is
  // busy (another test's mount namespace can hold it for a moment). The last status.
  int rm(const std::string& c) const {
    int status = -1;
    for (int attempt = 0; attempt < 10 && status != 0; ++attempt) {
      if (attempt > 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
      }
      status = run_program(rm_argv(c)).status;
    }
    return status;
  }
  // Whatever containers a test left for repository `repo` (ours carry its path in a label).
  void remove_containers_of(const std::string& repo) const {
    auto ps = run_program((*this)({"ps", "-aq", "--filter", "label=sandbox-mcp.repo=" + repo}));
    std::istringstream ids(ps.out);
    for (std::string id; ids >> id;) {
      run_program(rm_argv(id));
    }
  }
};

} // namespace smcp::testing
