// What a host can tell about itself for the remote_hosts tool (exec::Host::status()). Hosts reached
// through a connection (SSH) fill in the connection fields; the others only name their kind.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace smcp::exec {

struct HostStatus {
  std::string name;
  std::string kind = "other";      // local | ssh | other
  bool has_connection = false;     // the fields below describe a connection (SSH hosts)
  std::string target;              // user@hostname:port as resolved by `ssh -G` (empty until resolved)
  std::vector<std::string> via;    // ProxyJump hops, outermost first
  std::string state = "connected"; // idle (never connected) | connecting | connected | disconnected | error
  int sessions = 0;                // authenticated sessions open now
  int connecting = 0;              // sessions being set up
  int channels_in_use = 0;
  int queued = 0; // calls waiting for a channel
  int max_sessions = 0;
  int max_channels_per_session = 0;
  int max_concurrency = 0;
  std::uint64_t connects = 0; // sessions established since start
  std::uint64_t calls = 0;    // channels run since start
  std::string last_error;
  std::int64_t last_error_at_ms = 0;     // unix ms
  std::optional<double> last_latency_ms; // channel open + exec acknowledged, most recent call
  std::string host_key_policy;
  // How commands get the user's shell environment (SSH hosts): snapshot (a helper, with the shell
  // snapshot) | login-env (a helper, the login shell's environment only) | login-shell (each command
  // through the login shell, its startup files run every time); empty: not applicable.
  std::string shell_env;
  std::string shell_env_note;
};

} // namespace smcp::exec
