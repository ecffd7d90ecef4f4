// The sandbox-mcp configuration file (JSON): which SSH hosts exist besides the ones the user's
// ssh config defines, the host key policy, pool limits and where key passphrases come from.
// Read from $SANDBOX_MCP_CONFIG, else $XDG_CONFIG_HOME/sandbox-mcp/config.json, else
// ~/.config/sandbox-mcp/config.json; a missing file means the defaults. See docs/ssh.md.
#pragma once

#include "sandbox/bwrap/profiles.h"
#include "sandbox/image.h"
#include "sandbox/manager.h"
#include "ssh/pool.h"
#include "ssh/session_setup.h"
#include "ssh/ssh_host.h"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace smcp::app {

struct SshHostEntry {
  std::string name; // an alias `ssh -G` resolves
  std::optional<ssh::HostKeyPolicy> host_key_policy;
  std::optional<int> max_concurrency;
  std::optional<int> max_sessions;
  std::optional<int> max_channels_per_session;
  std::string jobs_root;                  // on the host; empty: ~/.local/state/sandbox-mcp/jobs
  std::optional<ssh::ShellEnv> shell_env; // "bashrc" (see ssh::ShellEnv)
  std::string repo_base;                  // the repository sandboxes on this host come from
  std::string profile;                    // the bubblewrap profile every command there runs under
};

struct FileConfig {
  std::string path; // the file read; empty when none exists
  std::string default_host;
  std::string ssh_config; // passed to `ssh -F` (empty: ssh's defaults, ~/.ssh/config)
  std::string ssh_program = "ssh";
  ssh::HostKeyPolicy host_key_policy = ssh::HostKeyPolicy::accept_new;
  bool allow_unlisted_hosts = false;                 // any name `ssh -G` accepts, not only configured/Host-block ones
  ssh::ShellEnv shell_env = ssh::ShellEnv::snapshot; // "bashrc" for every host
  ssh::PoolLimits pool;
  ssh::PassphraseSource passphrase;
  std::vector<SshHostEntry> hosts;
  // "sandbox": the sandbox manager and `image build` (see docs/sandboxes.md). repo_base and the
  // per-host repositories are filled in by App.
  sandbox::ManagerOptions sandbox;
  sandbox::ImageOptions image;
  // "profiles" and "default_profile" (docs/profiles.md), over the built-ins and the environment.
  sandbox::ProfileSettings profiles = sandbox::default_profile_settings();
};

std::string default_config_path();

// Throws std::runtime_error naming the file and the offending key.
FileConfig parse_config(const nlohmann::json& doc, const std::string& origin);
// A missing file gives the defaults; an unreadable or invalid one throws.
FileConfig load_config(const std::string& path);

} // namespace smcp::app
