// The SSH host's host key policies against known_hosts (mismatch, patterns, unknown keys under
// each policy) and how it logs in (wrong key, encrypted key, agent), against real sshd processes on
// loopback (tests/support/sshd_fixture).
#include "sandbox/exec/run_process.h"
#include "tests/support/ssh_host_fixture.h"

#include <cstdlib>
#include <fstream>

namespace smcp::ssh {
namespace {

using namespace std::chrono_literals;
using exec::ProcessResult;
using exec::run_process;
using testing::host_error_of;
using testing::SshdFixture;
using testing::SshdOptions;

TEST_F(SshHostTest, HostKeyMismatchIsRefusedWithBothFingerprints) {
  fx->write_known_hosts(fx->wrong_known_hosts_line(1));
  auto host = make(*fx, "h1");
  exec::HostError::Kind kind{};
  std::string msg = host_error_of([&] { run(host, "true"); }, &kind);
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
  msg = host_error_of([&] { run(off, "true"); }, &kind);
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
  std::string msg = host_error_of([&] { run(host, "true"); }, &kind);
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
  msg = host_error_of([&] { run(excluded, "true"); }, &kind);
  EXPECT_EQ(kind, exec::HostError::Kind::refused) << msg;
  EXPECT_NE(msg.find("not in known_hosts"), std::string::npos) << msg;
}

TEST_F(SshHostTest, UnknownHostKeyUnderEachPolicy) {
  fx->write_known_hosts("");
  exec::HostError::Kind kind{};
  std::string msg = host_error_of([&] { run(make(*fx, "h2", HostKeyPolicy::strict), "true"); }, &kind);
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
  std::string msg = host_error_of([&] { run(make(*fx, "strict", HostKeyPolicy::accept_new), "true"); }, &kind);
  EXPECT_EQ(kind, exec::HostError::Kind::refused) << msg;
}

TEST_F(SshHostTest, WrongClientKeyIsRefusedWithWhatWasTried) {
  auto host = make(*fx, "wrongkey");
  exec::HostError::Kind kind{};
  std::string msg = host_error_of([&] { run(host, "true"); }, &kind);
  EXPECT_EQ(kind, exec::HostError::Kind::refused) << msg;
  EXPECT_NE(msg.find(fx->wrong_key() + " (rejected by the server)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("ssh-agent skipped (IdentitiesOnly yes)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("ssh-copy-id wrongkey"), std::string::npos) << msg;
  auto st = host->status();
  EXPECT_EQ(st.state, "error");
  EXPECT_NE(st.last_error.find("rejected"), std::string::npos);
}

TEST_F(SshHostTest, EncryptedKeyNeedsAPassphraseSource) {
  auto without = make(*fx, "enckey");
  exec::HostError::Kind kind{};
  std::string msg = host_error_of([&] { run(without, "true"); }, &kind);
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
  std::string msg = host_error_of([&] { run(host, "true"); }, &kind);
  EXPECT_EQ(kind, exec::HostError::Kind::unreachable) << msg;
  EXPECT_NE(msg.find("no-such-host.invalid"), std::string::npos) << msg;
}

} // namespace
} // namespace smcp::ssh
