// `ssh -G` parsing, ProxyJump specs and the Host pattern scan of an ssh config file.
#include "sandbox/exec/host.h"
#include "sandbox/exec/run_process.h"
#include "ssh/ssh_config.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

namespace smcp::ssh {
namespace {
using namespace smcp::exec;

TEST(SshConfig, ParsesSshG) {
  const char* out = "host gpu1\nhostname 10.0.0.5\nuser alice\nport 2222\n"
                    "identityfile ~/.ssh/id_ed25519\nidentityfile %d/keys/%r@%h\nidentitiesonly yes\n"
                    "userknownhostsfile ~/.ssh/known_hosts /tmp/kh2\nglobalknownhostsfile /etc/ssh/ssh_known_hosts\n"
                    "connecttimeout 7\nserveraliveinterval 15\nserveralivecountmax 4\n"
                    "proxyjump bastion,bob@j2:2200\nstricthostkeychecking accept-new\nhostkeyalias gpu1-key\n";
  SshTarget t = parse_ssh_g(out, "gpu1");
  const std::string home = local_home();
  EXPECT_EQ(t.alias, "gpu1");
  EXPECT_EQ(t.hostname, "10.0.0.5");
  EXPECT_EQ(t.user, "alice");
  EXPECT_EQ(t.port, 2222);
  ASSERT_EQ(t.identity_files.size(), 2u);
  EXPECT_EQ(t.identity_files[0], home + "/.ssh/id_ed25519");
  EXPECT_EQ(t.identity_files[1], home + "/keys/alice@10.0.0.5");
  EXPECT_TRUE(t.identities_only);
  ASSERT_EQ(t.user_known_hosts_files.size(), 2u);
  EXPECT_EQ(t.user_known_hosts_files[0], home + "/.ssh/known_hosts");
  EXPECT_EQ(t.user_known_hosts_files[1], "/tmp/kh2");
  EXPECT_EQ(t.connect_timeout.count(), 7);
  EXPECT_EQ(t.server_alive_interval, 15);
  EXPECT_EQ(t.server_alive_count_max, 4);
  EXPECT_EQ(t.proxy_jump, "bastion,bob@j2:2200");
  EXPECT_EQ(t.strict_host_key_checking, "accept-new");
  EXPECT_EQ(t.known_hosts_name(), "gpu1-key");
  t.host_key_alias.clear();
  EXPECT_EQ(t.known_hosts_name(), "[10.0.0.5]:2222");
  t.port = 22;
  EXPECT_EQ(t.known_hosts_name(), "10.0.0.5");
  EXPECT_EQ(t.endpoint(), "alice@10.0.0.5:22");
}

TEST(SshConfig, ProxyJumpSpecs) {
  auto hops = parse_proxy_jump("bastion, bob@j2:2200,[::1]:22,ssh://carol@j4");
  ASSERT_EQ(hops.size(), 4u);
  EXPECT_EQ(hops[0].host, "bastion");
  EXPECT_EQ(hops[0].port, 0);
  EXPECT_EQ(hops[1].user, "bob");
  EXPECT_EQ(hops[1].host, "j2");
  EXPECT_EQ(hops[1].port, 2200);
  EXPECT_EQ(hops[2].host, "::1");
  EXPECT_EQ(hops[2].port, 22);
  EXPECT_EQ(hops[3].user, "carol");
  EXPECT_EQ(hops[3].host, "j4");
  EXPECT_TRUE(parse_proxy_jump("").empty());
}

TEST(SshConfig, RealSshGResolvesAConfigFile) {
  if (std::system("command -v ssh >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "the OpenSSH client (ssh) is not installed";
  }
  auto dir = std::filesystem::temp_directory_path() / ("smcp-sshg-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "config") << "Host jump\n  HostName 127.0.0.9\n  Port 2201\n  User juser\n"
                                   "Host target\n  HostName 10.1.2.3\n  ProxyJump jump\n  Port 2202\n"
                                   "  IdentityFile "
                                << (dir / "key").string() << "\n";
  ResolveOptions o;
  o.config_file = (dir / "config").string();
  SshTarget t = resolve_target("target", o);
  EXPECT_EQ(t.hostname, "10.1.2.3");
  EXPECT_EQ(t.port, 2202);
  ASSERT_EQ(t.jumps.size(), 1u);
  EXPECT_EQ(t.jumps[0].alias, "jump");
  EXPECT_EQ(t.jumps[0].hostname, "127.0.0.9");
  EXPECT_EQ(t.jumps[0].port, 2201);
  EXPECT_EQ(t.jumps[0].user, "juser");
  ASSERT_FALSE(t.identity_files.empty());
  EXPECT_EQ(t.identity_files[0], (dir / "key").string());
  EXPECT_THROW(resolve_target("-oProxyCommand=x", o), exec::HostError);
  std::filesystem::remove_all(dir);
}

TEST(SshConfig, LiteralHostPatternsFollowIncludes) {
  auto dir = std::filesystem::temp_directory_path() / ("smcp-hosts-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir / "conf.d");
  std::ofstream(dir / "config") << "# comment\nHost gpu1 gpu2 *.corp !bad\n  HostName x\n"
                                   "Include conf.d/*.conf\nhost=\"quoted one\"\nMatch host foo\n";
  std::ofstream(dir / "conf.d" / "a.conf") << "Host inc1\nHost inc? inc2\n";
  auto names = literal_host_patterns((dir / "config").string(), dir.string());
  EXPECT_EQ(names, (std::set<std::string>{"gpu1", "gpu2", "inc1", "inc2", "quoted one"}));
  std::filesystem::remove_all(dir);
}

} // namespace
} // namespace smcp::ssh
