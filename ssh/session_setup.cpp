// One session from connected socket to logged in: the handshake (offering the host key types
// known_hosts holds first), the host key check (known_hosts.cpp), authentication
// (authentication.cpp), then the switch to non-blocking mode for the pool's event loop.
#include "ssh/session_internal.h"

#include <libssh2.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <mutex>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

namespace smcp::ssh {

namespace {

LIBSSH2_RECV_FUNC(recv_with_timestamp) {
  ssize_t n = ::recv(socket, buffer, length, flags);
  if (n < 0) {
    return errno == EWOULDBLOCK ? -EAGAIN : -errno;
  }
  if (n > 0) {
    // sshd leaves Nagle on for sessions without a pty: each small packet it sends after another
    // waits for our ACK, which Linux delays up to 40 ms. Acknowledge at once.
    int one = 1;
    ::setsockopt(socket, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
    if (abstract && *abstract) {
      static_cast<std::atomic<std::int64_t>*>(*abstract)->store(steady_ms(), std::memory_order_relaxed);
    }
  }
  return n;
}

} // namespace

std::string session_last_error(LIBSSH2_SESSION* s, int* code) {
  char* msg = nullptr;
  int len = 0;
  int rc = libssh2_session_last_error(s, &msg, &len, 0);
  if (code) {
    *code = rc;
  }
  return msg && len > 0 ? std::string(msg, static_cast<std::size_t>(len)) : std::string("unknown error");
}

std::int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch()).count();
}

std::string policy_name(HostKeyPolicy policy) {
  switch (policy) {
  case HostKeyPolicy::strict:
    return "strict";
  case HostKeyPolicy::accept_new:
    return "accept-new";
  case HostKeyPolicy::off:
    return "off";
  }
  return "accept-new";
}

std::optional<HostKeyPolicy> parse_policy(std::string_view name) {
  if (name == "strict" || name == "yes") {
    return HostKeyPolicy::strict;
  }
  if (name == "accept-new" || name == "accept_new") {
    return HostKeyPolicy::accept_new;
  }
  if (name == "off" || name == "no") {
    return HostKeyPolicy::off;
  }
  return std::nullopt;
}

void libssh2_global_init() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (libssh2_init(0) != 0) {
      spdlog::error("libssh2_init failed");
    }
  });
}

SetupResult setup_session(int fd, const SshTarget& t, const SetupOptions& o) {
  libssh2_global_init();
  SetupResult r;
  LIBSSH2_SESSION* s = libssh2_session_init_ex(nullptr, nullptr, nullptr, o.last_rx_ms);
  if (!s) {
    r.failure = SetupFailure{Kind::io, "cannot allocate an SSH session", false};
    return r;
  }
  libssh2_session_callback_set(s, LIBSSH2_CALLBACK_RECV, reinterpret_cast<void*>(&recv_with_timestamp));
  libssh2_session_set_blocking(s, 1);
  libssh2_session_set_timeout(s, static_cast<long>(o.timeout.count()));
  libssh2_session_flag(s, LIBSSH2_FLAG_COMPRESS, 0);

  std::vector<KnownHostsFile> files = load_known_hosts_files(s, t);
  if (std::string prefs = host_key_preferences(s, files, t); !prefs.empty()) {
    libssh2_session_method_pref(s, LIBSSH2_METHOD_HOSTKEY, prefs.c_str());
  }

  int rc = libssh2_session_handshake(s, fd);
  if (rc != 0) {
    files.clear();
    r.failure = SetupFailure{Kind::unreachable,
                             "SSH handshake with " + o.host_name + " (" + t.hostname + ":" + std::to_string(t.port) +
                                 ") failed: " + session_last_error(s),
                             true};
    free_session(s, -1, false);
    return r;
  }
  std::size_t key_len = 0;
  int key_type = 0;
  const char* key = libssh2_session_hostkey(s, &key_len, &key_type);
  auto key_failure = verify_host_key(s, t, files, o, key, key_len, key_type);
  files.clear(); // the collections belong to the session: free them first
  if (key_failure) {
    r.failure = std::move(key_failure);
    free_session(s, -1, true);
    return r;
  }
  if (auto f = authenticate(s, t, o)) {
    r.failure = std::move(f);
    free_session(s, -1, true);
    return r;
  }
  libssh2_keepalive_config(s, 1, static_cast<unsigned>(std::max(1, o.keepalive_interval_s)));
  libssh2_session_set_timeout(s, 0);
  libssh2_session_set_blocking(s, 0);
  r.session = s;
  return r;
}

bool send_keepalive(LIBSSH2_SESSION* s, int& next_s) {
  int rc = libssh2_keepalive_send(s, &next_s);
  return rc == 0 || rc == LIBSSH2_ERROR_EAGAIN;
}

BlockedOn blocked_on(LIBSSH2_SESSION* s) {
  const int dirs = libssh2_session_block_directions(s);
  return {(dirs & LIBSSH2_SESSION_BLOCK_INBOUND) != 0, (dirs & LIBSSH2_SESSION_BLOCK_OUTBOUND) != 0};
}

void free_session(LIBSSH2_SESSION* s, int fd, bool polite) {
  if (!s) {
    return;
  }
  libssh2_session_set_blocking(s, 0);
  if (polite) {
    libssh2_session_disconnect(s, "bye");
  }
  if (fd >= 0) {
    // Open channels would otherwise wait for the server to confirm their close.
    ::shutdown(fd, SHUT_RDWR);
  }
  for (int i = 0; i < 100 && libssh2_session_free(s) == LIBSSH2_ERROR_EAGAIN; ++i) {
    ::usleep(1000);
  }
}

} // namespace smcp::ssh
