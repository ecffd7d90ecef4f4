// Fixtures of the SSH host tests (tests/integration/ssh_*_test.cpp): SSH hosts made from the
// loopback sshd fixture's ssh config, and one set of three servers shared by a test suite.
#pragma once

#include "ssh/ssh_host.h"
#include "tests/support/host_calls.h"
#include "tests/support/sshd_fixture.h"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>

namespace smcp::ssh {

using namespace std::chrono_literals;
using testing::host_error_of;
using testing::SshdFixture;
using testing::SshdOptions;

class SshTestBase : public ::testing::Test {
protected:
  static std::shared_ptr<exec::Host> make(testing::SshdFixture& fx, const std::string& alias,
                                          HostKeyPolicy policy = HostKeyPolicy::accept_new, PoolLimits limits = {},
                                          ShellEnv shell_env = ShellEnv::snapshot) {
    SshHostOptions o;
    o.shell_env = shell_env;
    o.name = alias;
    o.resolve.config_file = fx.config_file();
    o.host_key_policy = policy;
    o.limits = limits;
    o.kill_grace = std::chrono::seconds(1);
    o.jobs_root = fx.dir() + "/jobs-" + alias;
    return make_ssh_host(o);
  }
  static testing::CapturedRun run(const std::shared_ptr<exec::Host>& host, const std::string& command,
                                  std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    return testing::run_command(*host, command, timeout);
  }
};

// One set of three servers shared by the tests that leave them as they found them.
class SshHostTest : public SshTestBase {
protected:
  static void SetUpTestSuite() {
    if (auto reason = testing::SshdFixture::unavailable_reason(); !reason.empty()) {
      return;
    }
    fx = new testing::SshdFixture(testing::SshdOptions{});
  }
  static void TearDownTestSuite() {
    delete fx;
    fx = nullptr;
  }
  void SetUp() override {
    if (!fx) {
      GTEST_SKIP() << "no sshd: " << testing::SshdFixture::unavailable_reason();
    }
    fx->write_known_hosts(fx->known_hosts_line(0) + fx->known_hosts_line(1) + fx->known_hosts_line(2));
  }
  static inline testing::SshdFixture* fx = nullptr;
};

} // namespace smcp::ssh
