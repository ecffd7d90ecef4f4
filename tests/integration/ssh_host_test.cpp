// The SSH host against real sshd processes on loopback (tests/support/sshd_fixture): commands,
// timeouts that end remote process trees, host key policies, authentication failures, ProxyJump,
// server death and restart, keepalive, pool limits (MaxSessions, MaxStartups), idle reaping,
// durable jobs and file windows.
#include "sandbox/exec/host_status.h"
#include "sandbox/exec/run_process.h"
#include "ssh/ssh_host.h"
#include "tests/support/sshd_fixture.h"

#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <thread>

namespace smcp::ssh {
using exec::ProcessResult;
using exec::run_process;
namespace {

using namespace std::chrono_literals;
using testing::SshdFixture;
using testing::SshdOptions;

struct Capture final : exec::OutputSink {
  std::mutex m;
  std::string out, err;
  void on_output(exec::Stream s, std::string_view d) override {
    std::lock_guard lock(m);
    (s == exec::Stream::out ? out : err).append(d);
  }
};

struct Ran {
  exec::ExitInfo info;
  std::string out, err;
};

exec::HostStatus status_of(const std::shared_ptr<exec::Host>& host) {
  return host->status();
}

std::string error_of(const std::function<void()>& f, exec::HostError::Kind* kind = nullptr) {
  try {
    f();
  } catch (const exec::HostError& e) {
    if (kind) {
      *kind = e.kind();
    }
    return e.what();
  }
  return "(no error)";
}

class SshTestBase : public ::testing::Test {
protected:
  static std::shared_ptr<exec::Host> make(SshdFixture& fx, const std::string& alias,
                                          HostKeyPolicy policy = HostKeyPolicy::accept_new, PoolLimits limits = {}) {
    SshHostOptions o;
    o.name = alias;
    o.resolve.config_file = fx.config_file();
    o.host_key_policy = policy;
    o.limits = limits;
    o.kill_grace = 1s;
    o.jobs_root = fx.dir() + "/jobs-" + alias;
    return make_ssh_host(o);
  }
  static Ran run(const std::shared_ptr<exec::Host>& host, const std::string& command,
                 std::chrono::milliseconds timeout = 30s) {
    exec::CommandSpec spec;
    spec.command = command;
    spec.timeout = timeout;
    Capture c;
    Ran r;
    r.info = host->run(spec, c, {});
    r.out = c.out;
    r.err = c.err;
    return r;
  }
};

// One set of three servers shared by the tests that leave them as they found them.
class SshHostTest : public SshTestBase {
protected:
  static void SetUpTestSuite() {
    if (auto reason = SshdFixture::unavailable_reason(); !reason.empty()) {
      return;
    }
    fx = new SshdFixture(SshdOptions{});
  }
  static void TearDownTestSuite() {
    delete fx;
    fx = nullptr;
  }
  void SetUp() override {
    if (!fx) {
      GTEST_SKIP() << "no sshd: " << SshdFixture::unavailable_reason();
    }
    fx->write_known_hosts(fx->known_hosts_line(0) + fx->known_hosts_line(1) + fx->known_hosts_line(2));
  }
  static inline SshdFixture* fx = nullptr;
};

TEST_F(SshHostTest, OpenSshItselfLogsIn) {
  std::string out;
  ASSERT_EQ(fx->ssh_cli("h0", "echo cli-ok", &out), 0) << out << fx->log(0);
  EXPECT_NE(out.find("cli-ok"), std::string::npos);
}

TEST_F(SshHostTest, RunsCommandsWithStdoutStderrAndExitCodes) {
  auto host = make(*fx, "h0");
  auto r = run(host, "echo hello; echo oops >&2; exit 42");
  EXPECT_EQ(r.out, "hello\n");
  EXPECT_EQ(r.err, "oops\n");
  EXPECT_EQ(r.info.exit_code, 42);
  EXPECT_FALSE(r.info.signal);
  r = run(host, "true");
  EXPECT_EQ(r.info.exit_code, 0);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "");
  // Large output arrives complete, both streams.
  r = run(host, "head -c 3000000 /dev/zero | tr '\\0' a; head -c 100000 /dev/zero | tr '\\0' b >&2");
  EXPECT_EQ(r.out.size(), 3000000u);
  EXPECT_EQ(r.err.size(), 100000u);
  EXPECT_EQ(r.out.find_first_not_of('a'), std::string::npos);
}

TEST_F(SshHostTest, CwdEnvAndQuotingSurviveTheTrip) {
  auto host = make(*fx, "h1");
  std::filesystem::path odd = std::filesystem::path(fx->dir()) / "dir with 'quotes' and $dollar";
  std::filesystem::create_directories(odd);
  exec::CommandSpec spec;
  spec.command = "pwd; printf '%s|' \"$A\" \"$B\"; basename \"$0\"";
  spec.cwd = odd.string();
  spec.env = {{"A", "it's \"x\" $(id) `id` \\ "}, {"B", "two\nlines"}};
  spec.timeout = 20s;
  Capture c;
  auto info = host->run(spec, c, {});
  EXPECT_EQ(info.exit_code, 0) << c.err;
  EXPECT_EQ(c.out, odd.string() + "\nit's \"x\" $(id) `id` \\ |two\nlines|bash\n");
  // A missing working directory is a clear error.
  spec.cwd = odd.string() + "/missing";
  exec::HostError::Kind kind{};
  std::string msg = error_of([&] { host->run(spec, c, {}); }, &kind);
  EXPECT_EQ(kind, exec::HostError::Kind::invalid);
  EXPECT_NE(msg.find("does not exist"), std::string::npos) << msg;
}

TEST_F(SshHostTest, SignalsAreToldApartFromExitCodes) {
  auto host = make(*fx, "h1");
  auto r = run(host, "kill -KILL $$");
  EXPECT_EQ(r.info.signal, SIGKILL);
  EXPECT_FALSE(r.info.exit_code);
  r = run(host, "exit 137");
  EXPECT_EQ(r.info.exit_code, 137);
  EXPECT_FALSE(r.info.signal);
}

TEST_F(SshHostTest, TimeoutKillsTheRemoteProcessTree) {
  auto host = make(*fx, "h0");
  const std::string sleeper = "sleep 31" + std::to_string(::getpid());
  auto start = std::chrono::steady_clock::now();
  auto r = run(host, "ps -o sid= -p $$; sh -c '" + sleeper + " & " + sleeper + "'", 1500ms);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(r.info.timed_out);
  EXPECT_LT(took, 10s);
  const std::string sid = r.out.substr(0, r.out.find('\n'));
  ASSERT_FALSE(sid.empty());
  // A separate command: no live process of that session, and no sleeper, survives. (Zombies are
  // left to whoever reaps orphans: PID 1 of this container may not.)
  auto check = run(host, "ps -e -o sid= -o stat= -o args= | awk -v s=" + sid +
                             " '$1 == s && $2 !~ /^Z/' ; pgrep -r RSDT -f '^" + sleeper + "' || true");
  EXPECT_EQ(check.out, "") << "survivors in session " << sid;
}

TEST_F(SshHostTest, TimeoutEndsRemoteProcessesThatLeftTheSession) {
  auto host = make(*fx, "h0");
  const std::string escaped = "sleep 33" + std::to_string(::getpid()), main = "sleep 34" + std::to_string(::getpid());
  auto r = run(host, "setsid " + escaped + " & " + main + "; wait", 1500ms);
  EXPECT_TRUE(r.info.timed_out);
  EXPECT_TRUE(r.info.tree_verified) << r.info.tree_note;
  EXPECT_EQ(run(host, "pgrep -c -f '^" + main + "' || true").out, "0\n");
  EXPECT_EQ(run(host, "pgrep -c -f '^" + escaped + "' || true").out, "0\n")
      << "a setsid descendant survived a timeout reported as ending the whole tree";
  run(host, "pkill -f '^sleep 3[34]" + std::to_string(::getpid()) + "' || true");
}

TEST_F(SshHostTest, ProcessesLeftRunningAreEndedWhenTheCommandReturns) {
  auto host = make(*fx, "h0");
  const std::string left = "sleep 35" + std::to_string(::getpid()), escaped = "sleep 36" + std::to_string(::getpid());
  auto r = run(host, left + " & setsid " + escaped + " & echo started");
  EXPECT_EQ(r.info.exit_code, 0);
  EXPECT_EQ(r.out, "started\n");
  EXPECT_EQ(r.info.leftovers, 2);
  EXPECT_NE(r.info.leftover_names.find("sleep"), std::string::npos) << r.info.leftover_names;
  EXPECT_EQ(run(host, "pgrep -c -f '^" + left + "' || true").out, "0\n") << "a background child outlived its command";
  EXPECT_EQ(run(host, "pgrep -c -f '^" + escaped + "' || true").out, "0\n") << "a setsid child outlived its command";
  run(host, "pkill -f '^sleep 3[56]" + std::to_string(::getpid()) + "' || true");
}

TEST_F(SshHostTest, ABackgroundWriterDoesNotKeepTheCommandRunning) {
  auto host = make(*fx, "h0");
  const std::string writer = "yes ssh-writer-" + std::to_string(::getpid());
  auto start = std::chrono::steady_clock::now();
  exec::CommandSpec spec;
  spec.command = writer + " > /dev/stdout & echo started";
  spec.timeout = 20s;
  class Counting : public exec::OutputSink {
  public:
    void on_output(exec::Stream, std::string_view d) override { bytes += d.size(); }
    std::uint64_t bytes = 0;
  } sink;
  exec::ExitInfo info = host->run(spec, sink, {});
  EXPECT_EQ(info.exit_code, 0);
  EXPECT_FALSE(info.timed_out);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 6s) << "the drain after the command's end must be bounded";
  run(host, "pkill -f '^" + writer + "' || true");
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
  auto st = status_of(host);
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
  std::vector<std::string> failures(64);
  std::vector<std::thread> threads;
  for (int i = 0; i < 64; ++i) {
    threads.emplace_back([&, i] {
      try {
        auto r = run(hosts[static_cast<std::size_t>(i % 3)], "sleep 0.2; echo call-" + std::to_string(i));
        if (r.out == "call-" + std::to_string(i) + "\n" && r.info.exit_code == 0) {
          ++ok;
        } else {
          failures[static_cast<std::size_t>(i)] = r.out + r.err;
        }
      } catch (const std::exception& e) {
        failures[static_cast<std::size_t>(i)] = e.what();
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  for (const auto& f : failures) {
    EXPECT_EQ(f, "");
  }
  EXPECT_EQ(ok, 64);
  for (auto& h : hosts) {
    auto st = status_of(h);
    EXPECT_GE(st.sessions, 1);
    EXPECT_LE(st.sessions, 4);
  }
}

TEST_F(SshHostTest, ProxyJumpReachesTheLastServerThroughTheFirst) {
  auto host = make(*fx, "jumped");
  auto r = run(host, "echo via-jump");
  EXPECT_EQ(r.out, "via-jump\n") << r.err;
  auto st = status_of(host);
  ASSERT_EQ(st.via.size(), 1u);
  EXPECT_NE(st.via[0].find("h0"), std::string::npos);
  EXPECT_NE(st.target.find(":" + std::to_string(fx->port(2))), std::string::npos);
  // Several sessions through the same jump session, concurrently.
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 12; ++i) {
    threads.emplace_back([&, i] {
      if (run(host, "sleep 0.1; echo " + std::to_string(i)).out == std::to_string(i) + "\n") {
        ++ok;
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(ok, 12);
  // The path goes through h0: with h0 down, the jumped host is unreachable and says why.
  fx->kill(0);
  exec::HostError::Kind kind{};
  std::string msg = error_of([&] { run(host, "true"); }, &kind);
  EXPECT_EQ(kind, exec::HostError::Kind::unreachable) << msg;
  EXPECT_NE(msg.find("jump host h0"), std::string::npos) << msg;
  fx->restart(0);
  EXPECT_EQ(run(host, "echo back").out, "back\n");
}

TEST_F(SshHostTest, HostKeyMismatchIsRefusedWithBothFingerprints) {
  fx->write_known_hosts(fx->wrong_known_hosts_line(1));
  auto host = make(*fx, "h1");
  exec::HostError::Kind kind{};
  std::string msg = error_of([&] { run(host, "true"); }, &kind);
  EXPECT_EQ(kind, exec::HostError::Kind::refused) << msg;
  EXPECT_NE(msg.find("MISMATCH"), std::string::npos) << msg;
  EXPECT_NE(msg.find("ssh-keygen -R '[127.0.0.1]:" + std::to_string(fx->port(1)) + "'"), std::string::npos) << msg;
  // Both fingerprints: the presented one (from ssh-keygen) and the recorded one.
  ProcessResult presented = run_process({"ssh-keygen", "-lf", fx->dir() + "/hostkey1.pub"}, 10s);
  ProcessResult recorded = run_process({"ssh-keygen", "-lf", fx->dir() + "/other_hostkey.pub"}, 10s);
  auto fp = [](const std::string& line) { return line.substr(line.find("SHA256:"), 50); };
  EXPECT_NE(msg.find(fp(presented.out)), std::string::npos) << msg;
  EXPECT_NE(msg.find(fp(recorded.out)), std::string::npos) << msg;
  // Even with policy off, a known and different key is refused.
  auto off = make(*fx, "h1", HostKeyPolicy::off);
  msg = error_of([&] { run(off, "true"); }, &kind);
  EXPECT_EQ(kind, exec::HostError::Kind::refused) << msg;
  EXPECT_NE(msg.find("MISMATCH"), std::string::npos) << msg;
}

TEST_F(SshHostTest, WildcardKnownHostsEntriesAreHonoured) {
  // OpenSSH matches `[127.0.0.*]:PORT` against this host; libssh2 alone would not, and accept-new
  // would then accept (and append) any key.
  auto wildcard = [](std::string line) { return line.replace(line.find("127.0.0.1"), 9, "127.0.0.*"); };
  fx->write_known_hosts(wildcard(fx->wrong_known_hosts_line(1)));
  auto host = make(*fx, "h1", HostKeyPolicy::accept_new);
  exec::HostError::Kind kind{};
  std::string msg = error_of([&] { run(host, "true"); }, &kind);
  EXPECT_EQ(kind, exec::HostError::Kind::refused) << msg;
  EXPECT_NE(msg.find("MISMATCH"), std::string::npos) << msg;
  EXPECT_NE(msg.find("pattern [127.0.0.*]"), std::string::npos) << msg;
  std::ifstream kh(fx->known_hosts());
  std::string content((std::istreambuf_iterator<char>(kh)), std::istreambuf_iterator<char>());
  EXPECT_EQ(content, wildcard(fx->wrong_known_hosts_line(1))) << "nothing may be appended after a mismatch";

  fx->write_known_hosts(wildcard(fx->known_hosts_line(1)));
  auto good = make(*fx, "h1", HostKeyPolicy::strict);
  EXPECT_EQ(run(good, "echo ok").out, "ok\n") << "the right key under a pattern is accepted even when strict";

  // A negated pattern excludes the host: then it is simply unknown (refused under strict).
  std::string negated = wildcard(fx->known_hosts_line(1));
  negated.insert(0, "!" + negated.substr(0, negated.find(' ')) + ",");
  fx->write_known_hosts(negated);
  auto excluded = make(*fx, "h1", HostKeyPolicy::strict);
  msg = error_of([&] { run(excluded, "true"); }, &kind);
  EXPECT_EQ(kind, exec::HostError::Kind::refused) << msg;
  EXPECT_NE(msg.find("not in known_hosts"), std::string::npos) << msg;
}

TEST_F(SshHostTest, UnknownHostKeyUnderEachPolicy) {
  fx->write_known_hosts("");
  exec::HostError::Kind kind{};
  std::string msg = error_of([&] { run(make(*fx, "h2", HostKeyPolicy::strict), "true"); }, &kind);
  EXPECT_EQ(kind, exec::HostError::Kind::refused);
  EXPECT_NE(msg.find("not in known_hosts"), std::string::npos) << msg;
  EXPECT_NE(msg.find("SHA256:"), std::string::npos) << msg;

  auto off = make(*fx, "h2", HostKeyPolicy::off);
  EXPECT_EQ(run(off, "echo off").out, "off\n");
  std::ifstream kh(fx->known_hosts());
  std::string content((std::istreambuf_iterator<char>(kh)), {});
  EXPECT_EQ(content, "") << "policy off must not record keys";

  auto accept = make(*fx, "h2", HostKeyPolicy::accept_new);
  EXPECT_EQ(run(accept, "echo accepted").out, "accepted\n");
  std::ifstream kh2(fx->known_hosts());
  std::string recorded((std::istreambuf_iterator<char>(kh2)), {});
  EXPECT_NE(recorded.find("[127.0.0.1]:" + std::to_string(fx->port(2)) + " " + fx->host_key_pub(2)), std::string::npos)
      << recorded;
  // Now known: a strict host accepts it, and OpenSSH agrees with the line we wrote.
  EXPECT_EQ(run(make(*fx, "h2", HostKeyPolicy::strict), "echo strict-ok").out, "strict-ok\n");
  std::string out;
  EXPECT_EQ(fx->ssh_cli("h2", "true", &out), 0) << out;
}

TEST_F(SshHostTest, StrictHostKeyCheckingInSshConfigWins) {
  fx->write_known_hosts("");
  exec::HostError::Kind kind{};
  std::string msg = error_of([&] { run(make(*fx, "strict", HostKeyPolicy::accept_new), "true"); }, &kind);
  EXPECT_EQ(kind, exec::HostError::Kind::refused) << msg;
}

TEST_F(SshHostTest, WrongClientKeyIsRefusedWithWhatWasTried) {
  auto host = make(*fx, "wrongkey");
  exec::HostError::Kind kind{};
  std::string msg = error_of([&] { run(host, "true"); }, &kind);
  EXPECT_EQ(kind, exec::HostError::Kind::refused) << msg;
  EXPECT_NE(msg.find(fx->wrong_key() + " (rejected by the server)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("ssh-agent skipped (IdentitiesOnly yes)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("ssh-copy-id wrongkey"), std::string::npos) << msg;
  auto st = status_of(host);
  EXPECT_EQ(st.state, "error");
  EXPECT_NE(st.last_error.find("rejected"), std::string::npos);
}

TEST_F(SshHostTest, EncryptedKeyNeedsAPassphraseSource) {
  auto without = make(*fx, "enckey");
  exec::HostError::Kind kind{};
  std::string msg = error_of([&] { run(without, "true"); }, &kind);
  EXPECT_EQ(kind, exec::HostError::Kind::refused) << msg;
  EXPECT_NE(msg.find(fx->encrypted_key() + " (encrypted; no passphrase source"), std::string::npos) << msg;

  ::setenv("SMCP_TEST_KEY_PASSPHRASE", SshdFixture::encrypted_key_passphrase().c_str(), 1);
  SshHostOptions o;
  o.name = "enckey";
  o.resolve.config_file = fx->config_file();
  o.passphrase.env = "SMCP_TEST_KEY_PASSPHRASE";
  auto with = make_ssh_host(o);
  EXPECT_EQ(run(with, "echo unlocked").out, "unlocked\n");
  ::unsetenv("SMCP_TEST_KEY_PASSPHRASE");
}

TEST_F(SshHostTest, AgentAuthentication) {
  fx->agent_socket();
  auto host = make(*fx, "agent");
  EXPECT_EQ(run(host, "echo agent-ok").out, "agent-ok\n");
}

TEST_F(SshHostTest, UnknownAliasFailsWithSshsOwnMessage) {
  SshHostOptions o;
  o.name = "no-such-host.invalid";
  o.resolve.config_file = fx->config_file();
  auto host = make_ssh_host(o);
  exec::HostError::Kind kind{};
  std::string msg = error_of([&] { run(host, "true"); }, &kind);
  EXPECT_EQ(kind, exec::HostError::Kind::unreachable) << msg;
  EXPECT_NE(msg.find("no-such-host.invalid"), std::string::npos) << msg;
}

TEST_F(SshHostTest, SshdKilledMidCommandThenRestarted) {
  auto host = make(*fx, "h2");
  EXPECT_EQ(run(host, "echo before").out, "before\n");
  std::string msg;
  exec::HostError::Kind kind{};
  std::thread t([&] { msg = error_of([&] { run(host, "echo started; sleep 20", 60s); }, &kind); });
  std::this_thread::sleep_for(700ms);
  fx->kill(2);
  t.join();
  EXPECT_EQ(kind, exec::HostError::Kind::unreachable) << msg;
  EXPECT_NE(msg.find("lost while running `echo started; sleep 20`"), std::string::npos) << msg;
  EXPECT_NE(msg.find("may or may not have completed"), std::string::npos) << msg;
  // While it is down, calls fail fast and clearly.
  msg = error_of([&] { run(host, "true"); }, &kind);
  EXPECT_EQ(kind, exec::HostError::Kind::unreachable) << msg;
  EXPECT_NE(msg.find("Connection refused"), std::string::npos) << msg;
  fx->restart(2);
  EXPECT_EQ(run(host, "echo after").out, "after\n");
  EXPECT_EQ(status_of(host).state, "connected");
}

TEST_F(SshHostTest, ServerRestartWhileIdleIsInvisible) {
  auto host = make(*fx, "h1");
  EXPECT_EQ(run(host, "echo one").out, "one\n");
  fx->restart(1);
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(run(host, "echo two").out, "two\n");
  EXPECT_EQ(status_of(host).connects, 2u);
}

TEST_F(SshHostTest, UnansweredKeepalivesEndTheSession) {
  auto host = make(*fx, "fastalive");
  EXPECT_EQ(run(host, "echo alive").out, "alive\n");
  std::string msg;
  exec::HostError::Kind kind{};
  auto start = std::chrono::steady_clock::now();
  std::thread t([&] { msg = error_of([&] { run(host, "sleep 30", 60s); }, &kind); });
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
  auto host = make(*fx, "h1", HostKeyPolicy::accept_new, limits);
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] { run(host, "sleep 0.5"); });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_GE(status_of(host).sessions, 2);
  std::this_thread::sleep_for(1800ms);
  EXPECT_EQ(status_of(host).sessions, 1) << "extra sessions close first";
  std::this_thread::sleep_for(2s);
  EXPECT_EQ(status_of(host).sessions, 0);
  EXPECT_EQ(run(host, "echo back").out, "back\n");
}

TEST_F(SshHostTest, DurableJobOverSsh) {
  auto host = make(*fx, "h0");
  exec::CommandSpec spec;
  spec.command = "for i in 1 2 3; do echo line $i; sleep 0.1; done; exit 4";
  auto ref = host->start_job(spec, "bash_ssh1", host->jobs_root() + "/bash_ssh1");
  EXPECT_EQ(ref.dir, fx->dir() + "/jobs-h0/bash_ssh1");
  exec::JobChunk chunk;
  for (int i = 0; i < 100; ++i) {
    chunk = host->read_job(ref, 0, 1 << 20);
    if (chunk.state.phase != exec::JobState::Phase::running) {
      break;
    }
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(chunk.state.phase, exec::JobState::Phase::exited);
  EXPECT_EQ(chunk.state.exit_code, 4);
  EXPECT_EQ(chunk.data, "line 1\nline 2\nline 3\n");
  // Long-running job killed as a whole group, verified.
  const std::string sleeper = "sleep 32" + std::to_string(::getpid());
  spec.command = sleeper + " & setsid " + sleeper + " & " + sleeper;
  auto ref2 = host->start_job(spec, "bash_ssh2", host->jobs_root() + "/bash_ssh2");
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(run(host, "pgrep -c -f '^" + sleeper + "'").out, "3\n");
  EXPECT_TRUE(host->kill_job(ref2, SIGTERM, 1s));
  EXPECT_EQ(run(host, "pgrep -c -f '^" + sleeper + "' || true").out, "0\n")
      << "kill_job verified with a setsid child alive";
  host->remove_job(ref);
  EXPECT_FALSE(std::filesystem::exists(ref.dir));
}

TEST_F(SshHostTest, FileWindowsAreCutOnTheHost) {
  auto host = make(*fx, "h1");
  std::string path = fx->dir() + "/big.log";
  {
    std::ofstream f(path);
    for (int i = 1; i <= 200000; ++i) {
      f << "log line " << i << "\n";
    }
  }
  exec::FileReadRequest req;
  req.path = path;
  req.offset = -3;
  auto w = host->read_file(req);
  ASSERT_EQ(w.lines.size(), 3u);
  EXPECT_EQ(w.lines[2], "log line 200000");
  EXPECT_EQ(w.start_line, 199998);
  EXPECT_EQ(w.total_lines, 200000);
  req.offset = 100;
  req.limit = 2;
  w = host->read_file(req);
  EXPECT_EQ(w.lines, (std::vector<std::string>{"log line 100", "log line 101"}));
  EXPECT_TRUE(w.more_after);
  exec::HostError::Kind kind{};
  req.path = fx->dir() + "/nope";
  error_of([&] { host->read_file(req); }, &kind);
  EXPECT_EQ(kind, exec::HostError::Kind::not_found);
  req.path = fx->dir();
  error_of([&] { host->read_file(req); }, &kind);
  EXPECT_EQ(kind, exec::HostError::Kind::invalid);
}

// ---- servers with unusual limits ----

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
  SshHostOptions ho;
  ho.name = "h0";
  ho.resolve.config_file = fx.config_file();
  ho.limits = limits;
  auto host = make_ssh_host(ho);
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  std::vector<std::string> errors(12);
  for (int i = 0; i < 12; ++i) {
    threads.emplace_back([&, i] {
      try {
        exec::CommandSpec spec;
        spec.command = "sleep 0.3; echo " + std::to_string(i);
        spec.timeout = 60s;
        Capture c;
        host->run(spec, c, {});
        if (c.out == std::to_string(i) + "\n") {
          ++ok;
        }
      } catch (const std::exception& e) {
        errors[static_cast<std::size_t>(i)] = e.what();
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
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
  SshHostOptions ho;
  ho.name = "h0";
  ho.resolve.config_file = fx.config_file();
  ho.limits = limits;
  auto host = make_ssh_host(ho);
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 16; ++i) {
    threads.emplace_back([&, i] {
      exec::CommandSpec spec;
      spec.command = "sleep 0.5; echo " + std::to_string(i);
      spec.timeout = 60s;
      Capture c;
      try {
        host->run(spec, c, {});
      } catch (const std::exception& e) {
        ADD_FAILURE() << e.what();
      }
      if (c.out == std::to_string(i) + "\n") {
        ++ok;
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(ok, 16);
  EXPECT_EQ(status_of(host).connects, 4u);
  EXPECT_NE(fx.log(0).find("past MaxStartups"), std::string::npos) << "sshd dropped no handshake: nothing was retried";
}

} // namespace
} // namespace smcp::ssh
