// Fuzzes what sandbox-mcp reads from `ssh -G ALIAS` (a user's ssh config, Include and Match
// applied): parse_ssh_g, then everything derived from the target it returns (known_hosts name,
// endpoint, ProxyJump hops), plus parse_proxy_jump and %-token expansion on the raw input.
#include "ssh/ssh_config.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  auto target = smcp::ssh::parse_ssh_g(input, "fuzz-alias");
  (void)target.known_hosts_name();
  (void)target.endpoint();
  (void)smcp::ssh::parse_proxy_jump(target.proxy_jump);
  (void)smcp::ssh::parse_proxy_jump(input);
  (void)smcp::ssh::expand_ssh_tokens(input, target);
  return 0;
}
