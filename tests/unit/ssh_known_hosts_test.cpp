// OpenSSH's known_hosts host-pattern rules, which libssh2 does not implement, and the host key
// check against known_hosts text (check_host_key: no connection needed).
#include "ssh/session_setup.h"

#include <gtest/gtest.h>

#include <malloc.h>

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

// An ed25519 public key blob (string "ssh-ed25519", string of 32 key bytes 1..32) and its base64.
std::string ed25519_blob(unsigned char first) {
  std::string blob("\0\0\0\x0bssh-ed25519\0\0\0\x20", 19);
  for (unsigned char i = 0; i < 32; ++i) {
    blob.push_back(static_cast<char>(first + i));
  }
  return blob;
}
const char* k_key_b64 = "AAAAC3NzaC1lZDI1NTE5AAAAIAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g";       // first = 1
const char* k_other_key_b64 = "AAAAC3NzaC1lZDI1NTE5AAAAIGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoOE"; // first = 101

SshTarget gpu1() {
  SshTarget t;
  t.alias = "gpu1";
  t.hostname = "gpu1";
  t.user = "u";
  return t;
}

SetupOptions strict() {
  SetupOptions o;
  o.host_name = "gpu1";
  o.policy = HostKeyPolicy::strict;
  return o;
}

TEST(KnownHostsCheck, AcceptsTheRecordedKeyAndRefusesAnother) {
  const std::string known = std::string("gpu1 ssh-ed25519 ") + k_key_b64 + "\n";
  EXPECT_FALSE(check_host_key(gpu1(), known, "ssh-ed25519", ed25519_blob(1), strict()));
  auto mismatch = check_host_key(gpu1(), std::string("gpu1 ssh-ed25519 ") + k_other_key_b64 + "\n", "ssh-ed25519",
                                 ed25519_blob(1), strict());
  ASSERT_TRUE(mismatch);
  EXPECT_NE(mismatch->message.find("HOST KEY MISMATCH"), std::string::npos) << mismatch->message;
  auto unknown = check_host_key(gpu1(), "", "ssh-ed25519", ed25519_blob(1), strict());
  ASSERT_TRUE(unknown);
  EXPECT_NE(unknown->message.find("not in known_hosts"), std::string::npos) << unknown->message;
}

// Found by fuzz_known_hosts: libssh2 1.10 leaks an HMAC context on every check against a hashed
// entry whose hash is not 20 bytes (and a buffer when it reads one that is not base64). Such an
// entry can match no host: it is skipped, and the entries after it still count.
TEST(KnownHostsCheck, MalformedHashedEntriesAreSkippedWithoutLeaking) {
  const std::string known = std::string("|1|Lc4Dreo1fkGquCdYAKq0kXS8yEk=|jq411WiLjMzpm2r+yBfdM2@x ssh-ed25519 ") +
                            k_other_key_b64 + "\n|1|c2FsdA==|c2hvcnQ= ssh-ed25519 " + k_other_key_b64 +
                            "\n|1|NB0=|mL=Cv6uRS75PFuUxPhGNvbloFEs= ssh-ed25519 " + k_other_key_b64 +
                            "\n|1|!!|!! ssh-ed25519 " + k_other_key_b64 + "\ngpu1 ssh-ed25519 " + k_key_b64 + "\n";
  ASSERT_FALSE(check_host_key(gpu1(), known, "ssh-ed25519", ed25519_blob(1), strict()));
  // Heap in use before and after many checks (0 under ASan, whose leak checker covers this then).
  const auto before = mallinfo2().uordblks;
  for (int i = 0; i < 200; ++i) {
    (void)check_host_key(gpu1(), known, "ssh-ed25519", ed25519_blob(1), strict());
  }
  EXPECT_LT(mallinfo2().uordblks, before + 4096) << "heap grew by " << mallinfo2().uordblks - before << " bytes";
}

} // namespace
} // namespace smcp::ssh
