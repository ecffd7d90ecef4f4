// A pool of authenticated SSH sessions to one host, driven by one event-loop thread per host (so
// no call ever waits on another host). Calls become exec channels, several per session up to the
// server's MaxSessions; more sessions open when every session is busy; idle sessions are closed;
// dead sessions are noticed (socket errors, unanswered keepalives) and replaced on the next call.
// Sessions are set up (handshake, host key, authentication) on short-lived worker threads, a few
// at a time (sshd's MaxStartups drops bursts of unauthenticated connections), with retries of
// dropped handshakes. ProxyJump hops are reached through direct-tcpip channels.
#pragma once

#include "sandbox/exec/host_status.h"
#include "sandbox/exec/remote_executor.h"
#include "ssh/session_setup.h"
#include "ssh/ssh_config.h"

#include <chrono>
#include <memory>
#include <string>

namespace smcp::ssh {

struct PoolLimits {
  int max_sessions = 4;                   // sessions to the host at once
  int max_channels_per_session = 10;      // sshd's MaxSessions default; lowered on the fly if the server refuses
  int busy_channels = 4;                  // open another session once every session runs this many calls
  int max_concurrency = 32;               // calls running at once; more wait in a queue
  int max_handshakes = 3;                 // sessions being set up at once (sshd MaxStartups)
  int handshake_attempts = 4;             // a dropped handshake is retried this many times in all
  std::chrono::seconds idle_timeout{300}; // extra idle sessions are closed after this
  std::chrono::seconds last_session_idle_timeout{3600}; // ...and the last one after this
  std::chrono::seconds default_keepalive{30};           // when ServerAliveInterval is not set
  std::chrono::seconds default_connect_timeout{15};     // when ConnectTimeout is not set
};

struct PoolOptions {
  std::string name; // the alias the agent uses
  SshTarget target; // resolved, with its ProxyJump chain
  HostKeyPolicy host_key_policy = HostKeyPolicy::accept_new;
  PassphraseSource passphrase;
  PoolLimits limits;
};

class SshPool final : public exec::RemoteExecutor {
public:
  explicit SshPool(PoolOptions options);
  ~SshPool() override;
  SshPool(const SshPool&) = delete;
  SshPool& operator=(const SshPool&) = delete;

  std::shared_ptr<exec::RemoteCall> start(exec::RemoteCommand command) override;
  exec::HostStatus status() const override;

  struct Core;

private:
  std::shared_ptr<Core> m_core;
};

} // namespace smcp::ssh
