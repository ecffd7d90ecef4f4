// Host resolution exactly as OpenSSH does it: `ssh -G ALIAS` prints the effective configuration
// (Include, Match, ProxyJump, IdentityFile... all applied) and we use what it says. Also: which
// aliases the user's ssh config defines (for the rule deciding which names the agent may use).
#pragma once

#include <chrono>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace smcp::ssh {

struct SshTarget {
  std::string alias;    // the name given to `ssh -G`
  std::string hostname; // HostName
  std::string user;
  int port = 22;
  std::vector<std::string> identity_files; // expanded paths, in ssh's order (existing or not)
  bool identities_only = false;
  std::string identity_agent; // socket path; "none" disables the agent; empty: $SSH_AUTH_SOCK
  std::vector<std::string> user_known_hosts_files;
  std::vector<std::string> global_known_hosts_files;
  std::string host_key_alias;
  std::string strict_host_key_checking;    // yes | no | ask | accept-new | off
  std::chrono::seconds connect_timeout{0}; // 0: not set
  int server_alive_interval = 0;           // seconds; 0: not set
  int server_alive_count_max = 3;
  std::string proxy_jump;       // as configured ("none" or empty: direct)
  std::string proxy_command;    // not supported; reported when set
  std::vector<SshTarget> jumps; // the resolved ProxyJump chain, outermost first

  std::string endpoint() const; // user@hostname:port
  // The name known_hosts entries use: HostKeyAlias, else "hostname" or "[hostname]:port".
  std::string known_hosts_name() const;
};

struct ResolveOptions {
  std::string ssh_program = "ssh";
  std::string config_file; // passed as `-F FILE` when set
  std::chrono::milliseconds timeout{10000};
};

// Parses the output of `ssh -G` (keys are lower case, one "key value" per line).
SshTarget parse_ssh_g(std::string_view output, const std::string& alias);

// Runs `ssh -G` for `alias` and for every ProxyJump hop. Throws exec::HostError (invalid) with
// ssh's own message when the configuration is wrong or ssh is missing.
SshTarget resolve_target(const std::string& alias, const ResolveOptions& options);

// Splits a ProxyJump value ("j1,user@j2:2222") into hops: {user, host, port (0 = not given)}.
struct JumpSpec {
  std::string user;
  std::string host;
  int port = 0;
};
std::vector<JumpSpec> parse_proxy_jump(std::string_view value);

// Literal host names (no wildcards, not negated) of `Host` lines in an ssh config file and the
// files it Includes. `base_dir` resolves relative Include paths (~/.ssh for user files).
std::set<std::string> literal_host_patterns(const std::string& config_file, const std::string& base_dir);

// ~ and %d/%u/%h/%r/%p/%n/%i/%% expansion, as ssh does for IdentityFile and known hosts files.
std::string expand_ssh_tokens(std::string_view text, const SshTarget& target);

} // namespace smcp::ssh
