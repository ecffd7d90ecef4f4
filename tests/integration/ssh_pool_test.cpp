// The SSH host's session pool against real sshd processes on loopback
// (tests/support/sshd_fixture): session reuse and concurrency, ProxyJump, server death, restart
// and freeze (keepalives), idle reaping, and servers with unusual limits (MaxSessions,
// MaxStartups).
#include "tests/support/ssh_host_fixture.h"

#include <algorithm>
#include <atomic>
#include <iostream>
#include <thread>

namespace smcp::ssh {
namespace {

// The host h0 of `fx` with `limits`.
std::shared_ptr<exec::Host> host_with_limits(SshdFixture& fx, const PoolLimits& limits) {
  SshHostOptions ho;
  ho.name = "h0";
  ho.resolve.config_file = fx.config_file();
  ho.limits = limits;
  return make_ssh_host(ho);
}

struct Echoes {
  int ok = 0;                      // calls that printed their number
  std::vector<std::string> errors; // per call: what it threw, "" for nothing
};

// `n` calls at once of `sleep SECONDS; echo I` (I = 0 .. n - 1), each with a minute's timeout.
Echoes echo_in_parallel(exec::Host& host, int n, const std::string& seconds) {
  std::atomic<int> ok{0};
  auto errors = testing::run_in_parallel(n, [&](int i) {
    if (testing::run_command(host, "sleep " + seconds + "; echo " + std::to_string(i), 60s).out ==
        std::to_string(i) + "\n") {
      ++ok;
    }
    return std::string();
  });
  return {ok.load(), std::move(errors)};
}

TEST_F(SshHostTest, ManyCallsReuseOneSessionAndAreFast) {
  auto host = make(*fx, "h2");
  run(host, "true");
  std::vector<double> ms;
  for (int i = 0; i < 60; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    auto r = run(host, "echo " + std::to_string(i));
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    ASSERT_EQ(r.out, std::to_string(i) + "\n");
  }
  std::sort(ms.begin(), ms.end());
  auto st = host->status();
  EXPECT_EQ(st.connects, 1u);
  EXPECT_EQ(st.sessions, 1);
  EXPECT_EQ(st.state, "connected");
  ASSERT_TRUE(st.last_latency_ms);
  std::cout << "[ info ] remote_bash `echo` on a pooled session: p50 " << ms[ms.size() / 2] << " ms, max " << ms.back()
            << " ms; channel open+exec " << *st.last_latency_ms << " ms\n";
  EXPECT_LT(ms[ms.size() / 2], 50.0);
}

TEST_F(SshHostTest, SixtyFourConcurrentCallsOverThreeHosts) {
  std::vector<std::shared_ptr<exec::Host>> hosts = {make(*fx, "h0"), make(*fx, "h1"), make(*fx, "h2")};
  std::atomic<int> ok{0};
  auto failures = testing::run_in_parallel(64, [&](int i) -> std::string {
    auto r = run(hosts[static_cast<std::size_t>(i % 3)], "sleep 0.2; echo call-" + std::to_string(i));
    if (r.out == "call-" + std::to_string(i) + "\n" && r.info.exit_code == 0) {
      ++ok;
      return "";
    }
    return r.out + r.err;
  });
  for (const auto& f : failures) {
    EXPECT_EQ(f, "");
  }
  EXPECT_EQ(ok, 64);
  for (auto& h : hosts) {
    auto st = h->status();
    EXPECT_GE(st.sessions, 1);
    EXPECT_LE(st.sessions, 4);
  }
}

TEST_F(SshHostTest, ProxyJumpReachesTheLastServerThroughTheFirst) {
  auto host = make(*fx, "jumped");
  auto r = run(host, "echo via-jump");
  EXPECT_EQ(r.out, "via-jump\n") << r.err;
  auto st = host->status();
  ASSERT_EQ(st.via.size(), 1u);
  EXPECT_NE(st.via[0].find("h0"), std::string::npos);
  EXPECT_NE(st.target.find(":" + std::to_string(fx->port(2))), std::string::npos);
  // Several sessions through the same jump session, concurrently.
  std::atomic<int> ok{0};
  testing::run_in_parallel(12, [&](int i) {
    if (run(host, "sleep 0.1; echo " + std::to_string(i)).out == std::to_string(i) + "\n") {
      ++ok;
    }
    return std::string();
  });
  EXPECT_EQ(ok, 12);
  // The path goes through h0: with h0 down, the jumped host is unreachable and says why.
  fx->kill(0);
  exec::HostError::Kind kind{};
  std::string msg = host_error_of([&] { run(host, "true"); }, &kind);
  EXPECT_EQ(kind, exec::HostError::Kind::unreachable) << msg;
  EXPECT_NE(msg.find("jump host h0"), std::string::npos) << msg;
  fx->restart(0);
  EXPECT_EQ(run(host, "echo back").out, "back\n");
}

TEST_F(SshHostTest, SshdKilledMidCommandThenRestarted) {
  auto host = make(*fx, "h2");
  EXPECT_EQ(run(host, "echo before").out, "before\n");
  std::string msg;
  exec::HostError::Kind kind{};
  std::thread t([&] { msg = host_error_of([&] { run(host, "echo started; sleep 20", 60s); }, &kind); });
  std::this_thread::sleep_for(700ms);
  fx->kill(2);
  t.join();
  EXPECT_EQ(kind, exec::HostError::Kind::unreachable) << msg;
  EXPECT_NE(msg.find("lost while running `echo started; sleep 20`"), std::string::npos) << msg;
  EXPECT_NE(msg.find("may or may not have completed"), std::string::npos) << msg;
  // While it is down, calls fail fast and clearly.
  msg = host_error_of([&] { run(host, "true"); }, &kind);
  EXPECT_EQ(kind, exec::HostError::Kind::unreachable) << msg;
  EXPECT_NE(msg.find("Connection refused"), std::string::npos) << msg;
  fx->restart(2);
  EXPECT_EQ(run(host, "echo after").out, "after\n");
  EXPECT_EQ(host->status().state, "connected");
}

TEST_F(SshHostTest, ServerRestartWhileIdleIsInvisible) {
  auto host = make(*fx, "h1");
  EXPECT_EQ(run(host, "echo one").out, "one\n");
  fx->restart(1);
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(run(host, "echo two").out, "two\n");
  EXPECT_EQ(host->status().connects, 2u);
}

TEST_F(SshHostTest, UnansweredKeepalivesEndTheSession) {
  auto host = make(*fx, "fastalive");
  EXPECT_EQ(run(host, "echo alive").out, "alive\n");
  std::string msg;
  exec::HostError::Kind kind{};
  auto start = std::chrono::steady_clock::now();
  std::thread t([&] { msg = host_error_of([&] { run(host, "sleep 30", 60s); }, &kind); });
  std::this_thread::sleep_for(500ms);
  fx->freeze(0);
  t.join();
  auto took = std::chrono::steady_clock::now() - start;
  fx->thaw(0);
  EXPECT_EQ(kind, exec::HostError::Kind::unreachable) << msg;
  EXPECT_NE(msg.find("keepalive"), std::string::npos) << msg;
  EXPECT_LT(took, 12s);
  EXPECT_EQ(run(host, "echo again").out, "again\n");
}

TEST_F(SshHostTest, IdleSessionsAreReaped) {
  PoolLimits limits;
  limits.idle_timeout = 1s;
  limits.last_session_idle_timeout = 2s;
  limits.busy_channels = 1;
  // The pool's own reaping, without a helper: a helper's channel does not keep its session open,
  // but the helper restarts (a login shell) on the next call after its session closed, which
  // makes this test's 1-2 s timings meaningless.
  auto host = make(*fx, "h1", HostKeyPolicy::accept_new, limits, ShellEnv::source);
  testing::run_in_parallel(8, [&](int) {
    run(host, "sleep 0.5");
    return std::string();
  });
  EXPECT_GE(host->status().sessions, 2);
  std::this_thread::sleep_for(1800ms);
  EXPECT_EQ(host->status().sessions, 1) << "extra sessions close first";
  std::this_thread::sleep_for(2s);
  EXPECT_EQ(host->status().sessions, 0);
  EXPECT_EQ(run(host, "echo back").out, "back\n");
}

TEST(SshLimits, MaxSessionsIsLearnedAndRespected) {
  if (auto reason = SshdFixture::unavailable_reason(); !reason.empty()) {
    GTEST_SKIP() << reason;
  }
  SshdOptions o;
  o.servers = 1;
  o.max_sessions = 2;
  SshdFixture fx(o);
  PoolLimits limits;
  limits.max_sessions = 2;
  limits.max_channels_per_session = 10;
  auto host = host_with_limits(fx, limits);
  auto [ok, errors] = echo_in_parallel(*host, 12, "0.3");
  for (const auto& e : errors) {
    EXPECT_EQ(e, "");
  }
  EXPECT_EQ(ok, 12);
}

TEST(SshLimits, HandshakesDroppedByMaxStartupsAreRetried) {
  if (auto reason = SshdFixture::unavailable_reason(); !reason.empty()) {
    GTEST_SKIP() << reason;
  }
  SshdOptions o;
  o.servers = 1;
  o.max_startups = "1"; // a second unauthenticated connection at the same time is dropped
  SshdFixture fx(o);
  PoolLimits limits;
  limits.max_sessions = 4;
  limits.max_channels_per_session = 1; // 16 queued calls want 4 sessions at once
  limits.max_handshakes = 4;
  limits.handshake_attempts = 8;
  auto host = host_with_limits(fx, limits);
  auto [ok, errors] = echo_in_parallel(*host, 16, "0.5");
  for (const auto& e : errors) {
    if (!e.empty()) {
      ADD_FAILURE() << e;
    }
  }
  EXPECT_EQ(ok, 16);
  EXPECT_EQ(host->status().connects, 4u);
  EXPECT_NE(fx.log(0).find("past MaxStartups"), std::string::npos) << "sshd dropped no handshake: nothing was retried";
}

} // namespace
} // namespace smcp::ssh
