// Setting up one SSH session: TCP connect (TCP_NODELAY), handshake, host key verification against
// known_hosts and authentication (agent, then identity files). These steps run in blocking mode on
// a short-lived worker thread, so a slow handshake never stalls the channels of the host's event
// loop; the ready session is then switched to non-blocking mode and handed to the loop.
// tcp_connect.cpp, session_setup.cpp, known_hosts.cpp and authentication.cpp define these; libssh2.h
// stays inside ssh/'s .cpp files (ssh/session_internal.h holds what they share).
#pragma once

#include "sandbox/exec/host.h"
#include "ssh/ssh_config.h"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

struct _LIBSSH2_SESSION; // NOLINT(bugprone-reserved-identifier): libssh2's own name

namespace smcp::ssh {

enum class HostKeyPolicy { strict, accept_new, off };
std::string policy_name(HostKeyPolicy policy);
std::optional<HostKeyPolicy> parse_policy(std::string_view name);

// Where the passphrase of an encrypted identity file comes from (first one set wins).
struct PassphraseSource {
  std::string command; // run with /bin/sh -c; the key file is $1; its stdout (first line) is used
  std::string env;     // name of an environment variable
  // The value `env` had when the server started: the server takes it out of its environment so
  // that no command or helper it starts sees it (see app::take_secret_env). Unset: read `env` now.
  std::optional<std::string> env_value;
  std::string file; // a file holding the passphrase
  bool empty() const { return command.empty() && env.empty() && file.empty(); }
};

struct SetupOptions {
  std::string host_name; // the alias the agent uses, for messages
  HostKeyPolicy policy = HostKeyPolicy::accept_new;
  PassphraseSource passphrase;
  std::chrono::milliseconds timeout{15000}; // handshake + authentication
  int keepalive_interval_s = 30;
  std::atomic<std::int64_t>* last_rx_ms = nullptr; // set by the receive callback (steady clock)
};

struct SetupFailure {
  exec::HostError::Kind kind = exec::HostError::Kind::unreachable;
  std::string message;
  bool retryable = false; // e.g. dropped by sshd's MaxStartups during the handshake
};

struct SetupResult {
  _LIBSSH2_SESSION* session = nullptr; // non-blocking, authenticated; null on failure
  std::optional<SetupFailure> failure;
};

void libssh2_global_init();

// Connects a non-blocking TCP socket with TCP_NODELAY and SO_KEEPALIVE. Returns -1 and fills
// `failure` on error.
int tcp_connect(const std::string& host, int port, std::chrono::milliseconds timeout, SetupFailure& failure);

// Handshake, host key check and authentication over the connected socket `fd` (not owned).
SetupResult setup_session(int fd, const SshTarget& target, const SetupOptions& options);

// The host key check of setup_session, without a connection: known_hosts given as text, and the
// key the server would present (`key_type` as known_hosts spells it, e.g. "ssh-ed25519"; the raw
// key blob). With accept-new it appends to the first of target.user_known_hosts_files: leave that
// list empty to write nothing. For tests and the fuzzer.
std::optional<SetupFailure> check_host_key(const SshTarget& target, std::string_view known_hosts,
                                           std::string_view key_type, std::string_view key_blob,
                                           const SetupOptions& options);

// Frees a session (channels included) without waiting on the network: `polite` sends a
// disconnect message first; a socket `fd` given is shut down so open channels need no answer.
void free_session(_LIBSSH2_SESSION* session, int fd, bool polite);

// "SHA256:base64" of a key blob, as ssh-keygen -l prints it.
std::string sha256_fingerprint(const unsigned char* blob, std::size_t len);

// Monotonic milliseconds (the clock of SetupOptions::last_rx_ms).
std::int64_t steady_ms();

// OpenSSH's known_hosts host matching for a comma-separated pattern list (`*`, `?`, `!negation`),
// e.g. ("*.corp,!bad.corp", "gpu1.corp") is true. Exposed for tests.
bool known_hosts_pattern_matches(const std::string& list, const std::string& host);

} // namespace smcp::ssh
