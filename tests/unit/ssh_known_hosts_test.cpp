// OpenSSH's known_hosts host-pattern rules, which libssh2 does not implement.
#include "ssh/session_setup.h"

#include <gtest/gtest.h>

namespace smcp::ssh {
namespace {

TEST(KnownHostsPatterns, FollowOpenSsh) {
  EXPECT_TRUE(known_hosts_pattern_matches("*.example.com", "gpu1.example.com"));
  EXPECT_TRUE(known_hosts_pattern_matches("*.Example.COM", "gpu1.example.com")) << "case-insensitive";
  EXPECT_FALSE(known_hosts_pattern_matches("*.example.com", "example.com"));
  EXPECT_TRUE(known_hosts_pattern_matches("gpu?.corp", "gpu7.corp"));
  EXPECT_FALSE(known_hosts_pattern_matches("gpu?.corp", "gpu10.corp"));
  EXPECT_TRUE(known_hosts_pattern_matches("a.corp,*.lab", "x.lab"));
  EXPECT_FALSE(known_hosts_pattern_matches("!bad.lab,*.lab", "bad.lab")) << "a negation wins";
  EXPECT_TRUE(known_hosts_pattern_matches("!bad.lab,*.lab", "good.lab"));
  EXPECT_FALSE(known_hosts_pattern_matches("!bad.lab", "good.lab")) << "a negation alone matches nothing";
  EXPECT_TRUE(known_hosts_pattern_matches("[10.0.0.*]:2222", "[10.0.0.7]:2222"));
  EXPECT_FALSE(known_hosts_pattern_matches("[10.0.0.*]:2222", "[10.0.0.7]:22"));
  EXPECT_TRUE(known_hosts_pattern_matches("*", "anything"));
  EXPECT_FALSE(known_hosts_pattern_matches("", "host"));
}

} // namespace
} // namespace smcp::ssh
