// Real OpenSSH servers on loopback for the SSH integration tests and benchmarks: generates host
// keys (one per server) and client keys in a temp directory, starts `/usr/sbin/sshd -D` on free
// ports (several ports = several hosts), writes an ssh config with an alias per server
// (IdentityFile, UserKnownHostsFile) plus a ProxyJump alias, and can kill, restart, freeze and
// thaw a server. Everything is removed when the fixture ends.
#pragma once

#include <string>
#include <sys/types.h>
#include <vector>

namespace smcp::testing {

struct SshdOptions {
  int servers = 3;
  int max_sessions = 10;                   // sshd MaxSessions
  std::string max_startups = "100:30:200"; // sshd MaxStartups (the default 10:30:100 drops bursts)
  std::string log_level = "VERBOSE";
  bool trust_host_keys = true; // write every server's host key to the known_hosts file
  // bash sources ~/.bashrc for every command sshd starts (Debian builds it with SSH_SOURCE_BASHRC);
  // a heavy one (root's runs `pyenv init` on this machine: ~100 ms) then dominates every call, for
  // any SSH client. false: sshd passes SHLVL=1 (SetEnv), which makes bash skip it, as a
  // non-interactive-safe bashrc (the Debian default returns at once) would.
  bool source_bashrc = false;
  std::string set_env;                   // more NAME=VALUE words for the sessions' environment (sshd SetEnv)
  std::vector<std::string> sshd_options; // more `-o` options for sshd, e.g. "AllowStreamLocalForwarding=no"
};

class SshdFixture {
public:
  // Empty when sshd can run here; otherwise why not (for GTEST_SKIP).
  static std::string unavailable_reason();

  explicit SshdFixture(SshdOptions options = {});
  ~SshdFixture();
  SshdFixture(const SshdFixture&) = delete;
  SshdFixture& operator=(const SshdFixture&) = delete;

  const std::string& dir() const { return m_dir; }
  int port(int i) const { return m_servers[static_cast<std::size_t>(i)].port; }
  std::string alias(int i) const { return "h" + std::to_string(i); }
  // ssh config: aliases h0..hN-1 (direct), "jumped" (server N-1 through h0 with ProxyJump),
  // "wrongkey" (server 0 with a key it does not accept), "agent" (server 0, key from ssh-agent
  // at agent_socket()), "fastalive" (server 0 with ServerAliveInterval 1, CountMax 2), "strict"
  // (server 0 with StrictHostKeyChecking yes), "enckey" (server 0 with encrypted_key()).
  std::string config_file() const { return m_dir + "/ssh_config"; }
  std::string known_hosts() const { return m_dir + "/known_hosts"; }
  std::string client_key() const { return m_dir + "/client_key"; }
  std::string wrong_key() const { return m_dir + "/wrong_key"; }
  std::string encrypted_key() const { return m_dir + "/encrypted_key"; } // authorized, with a passphrase
  static std::string encrypted_key_passphrase() { return "correct horse"; }
  std::string host_key_pub(int i) const; // "ssh-ed25519 AAAA..." of server i
  std::string log(int i) const;          // sshd's log so far
  std::string user() const { return m_user; }

  // known_hosts helpers
  void write_known_hosts(const std::string& content) const;
  std::string known_hosts_line(int i) const;       // the correct line for server i
  std::string wrong_known_hosts_line(int i) const; // a different ed25519 key for server i

  // ssh-agent holding the client key (started on first use).
  std::string agent_socket();

  void kill(int i);    // the listener and every connection of server i (SIGKILL)
  void restart(int i); // same port, same host key
  void freeze(int i);  // SIGSTOP the listener and its connections: a black hole
  void thaw(int i);

  // Runs `ssh -F config ALIAS COMMAND` (BatchMode) and returns its exit status.
  int ssh_cli(const std::string& alias, const std::string& command, std::string* output = nullptr) const;

private:
  struct Server {
    int port = 0;
    pid_t pid = -1;
    std::string host_key;
  };
  void start(int i);
  void write_config() const;
  std::vector<pid_t> server_processes(int i) const; // the listener and its sshd descendants

  SshdOptions m_options;
  std::string m_dir;
  std::string m_user;
  std::vector<Server> m_servers;
  pid_t m_agent = -1;
};

// A free TCP port on 127.0.0.1 (bound then released).
int free_port();

} // namespace smcp::testing
