// Shared by ssh/'s own files (session setup: session_setup.cpp, known_hosts.cpp,
// authentication.cpp; and the pool's files); no other folder includes it. libssh2's types appear as
// their forward-declared structs, so this header does not include libssh2.h.
#pragma once

#include "ssh/session_setup.h"

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct _LIBSSH2_SESSION;    // NOLINT(bugprone-reserved-identifier): libssh2's own names
struct _LIBSSH2_KNOWNHOSTS; // NOLINT(bugprone-reserved-identifier)

namespace smcp::ssh {

using exec::HostError;
using Kind = HostError::Kind;
using Clock = std::chrono::steady_clock;

// libssh2's last error on `session` as text ("unknown error" when it has none); its code in `code`.
std::string session_last_error(_LIBSSH2_SESSION* session, int* code = nullptr);

// The last error with its code, "text (-N)", as the pool logs it.
inline std::string session_error(_LIBSSH2_SESSION* session) {
  int code = 0;
  std::string text = session_last_error(session, &code);
  return text + " (" + std::to_string(code) + ")";
}

// ---- an established session (session_setup.cpp) ----

// Sends a keepalive when one is due; false when the session failed. `next_s`: seconds until the
// next one is due.
bool send_keepalive(_LIBSSH2_SESSION* session, int& next_s);

// What libssh2 waits for on the session's socket before it can go on.
struct BlockedOn {
  bool read = false;
  bool write = false;
};
BlockedOn blocked_on(_LIBSSH2_SESSION* session);

// ---- known_hosts (known_hosts.cpp) ----

// One known_hosts file parsed into a libssh2 collection. Lines libssh2 cannot parse (markers,
// certificate authorities, key types it does not know) are skipped one by one: libssh2's own
// readfile stops at the first such line and would silently ignore every entry after it.
struct KnownHostsFile {
  std::string path;
  _LIBSSH2_KNOWNHOSTS* hosts = nullptr;
  std::vector<std::string> revoked; // base64 key blobs of @revoked lines
  // Lines whose host field has wildcards or negations (`*.corp`, `!x`): libssh2 compares names
  // literally, so these are matched here with OpenSSH's pattern rules.
  struct PatternEntry {
    std::string patterns; // the comma-separated host field
    std::string type;     // "ssh-ed25519", ...
    std::string key;      // base64 blob
  };
  std::vector<PatternEntry> pattern_entries;
  KnownHostsFile() = default;
  KnownHostsFile(const KnownHostsFile&) = delete;
  KnownHostsFile& operator=(const KnownHostsFile&) = delete;
  KnownHostsFile(KnownHostsFile&& o) noexcept;
  ~KnownHostsFile();
};

// The target's known_hosts files that exist (UserKnownHostsFile, then GlobalKnownHostsFile). The
// collections belong to `session`: free them before it.
std::vector<KnownHostsFile> load_known_hosts_files(_LIBSSH2_SESSION* session, const SshTarget& target);

// The host key algorithms to offer, those known_hosts holds for this host first (as OpenSSH does);
// only names this libssh2 supports. Empty: keep libssh2's default.
std::string host_key_preferences(_LIBSSH2_SESSION* session, const std::vector<KnownHostsFile>& files,
                                 const SshTarget& target);

// Checks the host key `key` (raw blob, LIBSSH2_HOSTKEY_TYPE_* `type`) the server presented.
std::optional<SetupFailure> verify_host_key(_LIBSSH2_SESSION* session, const SshTarget& target,
                                            const std::vector<KnownHostsFile>& files, const SetupOptions& options,
                                            const char* key, std::size_t len, int type);

std::string base64_decode(std::string_view text);

// ---- authentication (authentication.cpp) ----

// Logs in with ssh-agent, then the identity files (asking the passphrase source for encrypted ones).
std::optional<SetupFailure> authenticate(_LIBSSH2_SESSION* session, const SshTarget& target,
                                         const SetupOptions& options);

bool file_exists(const std::string& path);

} // namespace smcp::ssh
