// Fuzzes the host key check against known_hosts lines (ssh/session_setup.h check_host_key): plain,
// hashed (|1|salt|hash), [host]:port, wildcard and negated patterns, @revoked and @cert-authority
// markers, comments and garbage, checked against a presented key. The answer must be "accepted" or
// a SetupFailure with a message; never a crash. Never writes a file (no UserKnownHostsFile).
//
// Input: byte 0 picks the policy and the target's shape; then a line "HOST", a line
// "KEYTYPE BASE64" (the key the server presents), and the rest is the known_hosts text.
#include "ssh/session_setup.h"

#include <spdlog/spdlog.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace {

std::string_view take_line(std::string_view& in) {
  auto nl = in.find('\n');
  std::string_view line = in.substr(0, nl);
  in.remove_prefix(nl == std::string_view::npos ? in.size() : nl + 1);
  return line;
}

std::string base64_decode(std::string_view text) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') {
      return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
      return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
      return c - '0' + 52;
    }
    return c == '+' ? 62 : c == '/' ? 63 : -1;
  };
  std::string out;
  unsigned acc = 0;
  int bits = 0;
  for (char c : text) {
    int v = value(c);
    if (v < 0) {
      break;
    }
    acc = (acc << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) {
    return 0;
  }
  const std::uint8_t shape = data[0];
  std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  smcp::ssh::SshTarget target;
  target.alias = "fuzz";
  target.hostname = std::string(take_line(in));
  target.user = "u";
  target.port = (shape & 4) ? 2222 : 22;
  if (shape & 8) {
    target.host_key_alias = target.hostname;
  }
  if (shape & 16) {
    target.strict_host_key_checking = "yes";
  }
  std::string_view key_line = take_line(in);
  auto sp = key_line.find(' ');
  std::string_view key_type = key_line.substr(0, sp);
  std::string blob = base64_decode(sp == std::string_view::npos ? std::string_view() : key_line.substr(sp + 1));

  smcp::ssh::SetupOptions options;
  options.host_name = "fuzz";
  switch (shape & 3) {
  case 0:
    options.policy = smcp::ssh::HostKeyPolicy::strict;
    break;
  case 1:
    options.policy = smcp::ssh::HostKeyPolicy::off;
    break;
  default:
    options.policy = smcp::ssh::HostKeyPolicy::accept_new; // no user known_hosts file: nothing written
  }
  auto failure = smcp::ssh::check_host_key(target, in, key_type, blob, options);
  if (failure && failure->message.empty()) {
    __builtin_trap(); // every refusal says why
  }
  (void)smcp::ssh::known_hosts_pattern_matches(std::string(in.substr(0, in.find('\n'))), target.hostname);
  return 0;
}
