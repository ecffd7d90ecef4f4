#include "ssh/session_setup.h"

#include "sandbox/exec/run_process.h"

#include <libssh2.h>
#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <set>
#include <sstream>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

namespace smcp::ssh {

using exec::HostError;
using exec::ProcessResult;
using exec::run_process;
using Kind = HostError::Kind;

namespace {

using Clock = std::chrono::steady_clock;

std::string last_error(LIBSSH2_SESSION* s) {
  char* msg = nullptr;
  int len = 0;
  libssh2_session_last_error(s, &msg, &len, 0);
  return msg && len > 0 ? std::string(msg, static_cast<std::size_t>(len)) : std::string("unknown error");
}

std::string base64_encode(const unsigned char* data, std::size_t len) {
  std::string out(4 * ((len + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(len));
  out.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  return out;
}

std::string base64_decode(std::string_view text) {
  std::string clean;
  for (char c : text) {
    if (c != '\n' && c != '\r' && c != ' ' && c != '\t') {
      clean.push_back(c);
    }
  }
  if (clean.empty() || clean.size() % 4 != 0) {
    return {};
  }
  std::string out(clean.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(clean.data()), static_cast<int>(clean.size()));
  if (n < 0) {
    return {};
  }
  std::size_t pad = 0;
  while (pad < 2 && clean[clean.size() - 1 - pad] == '=') {
    ++pad;
  }
  out.resize(static_cast<std::size_t>(n) - pad);
  return out;
}

struct KeyType {
  int hostkey_type;    // LIBSSH2_HOSTKEY_TYPE_*
  int knownhost_key;   // LIBSSH2_KNOWNHOST_KEY_*
  const char* name;    // as in known_hosts
  const char* methods; // LIBSSH2_METHOD_HOSTKEY names
};

constexpr KeyType k_key_types[] = {
    {LIBSSH2_HOSTKEY_TYPE_ED25519, LIBSSH2_KNOWNHOST_KEY_ED25519, "ssh-ed25519", "ssh-ed25519"},
    {LIBSSH2_HOSTKEY_TYPE_ECDSA_256, LIBSSH2_KNOWNHOST_KEY_ECDSA_256, "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256"},
    {LIBSSH2_HOSTKEY_TYPE_ECDSA_384, LIBSSH2_KNOWNHOST_KEY_ECDSA_384, "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp384"},
    {LIBSSH2_HOSTKEY_TYPE_ECDSA_521, LIBSSH2_KNOWNHOST_KEY_ECDSA_521, "ecdsa-sha2-nistp521", "ecdsa-sha2-nistp521"},
    {LIBSSH2_HOSTKEY_TYPE_RSA, LIBSSH2_KNOWNHOST_KEY_SSHRSA, "ssh-rsa", "rsa-sha2-512,rsa-sha2-256,ssh-rsa"},
    {LIBSSH2_HOSTKEY_TYPE_DSS, LIBSSH2_KNOWNHOST_KEY_SSHDSS, "ssh-dss", "ssh-dss"},
};

const KeyType* key_type_of(int hostkey_type) {
  for (const auto& k : k_key_types) {
    if (k.hostkey_type == hostkey_type) {
      return &k;
    }
  }
  return nullptr;
}

// One known_hosts file parsed into a libssh2 collection. Lines libssh2 cannot parse (markers,
// certificate authorities, key types it does not know) are skipped one by one: libssh2's own
// readfile stops at the first such line and would silently ignore every entry after it.
struct KnownHostsFile {
  std::string path;
  LIBSSH2_KNOWNHOSTS* hosts = nullptr;
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
  KnownHostsFile(KnownHostsFile&& o) noexcept
      : path(std::move(o.path)), hosts(std::exchange(o.hosts, nullptr)), revoked(std::move(o.revoked)),
        pattern_entries(std::move(o.pattern_entries)) {}
  ~KnownHostsFile() {
    if (hosts) {
      libssh2_knownhost_free(hosts);
    }
  }
};

// Canonical base64: only the alphabet, then at most two '=' at the end, in groups of four.
bool strict_base64(std::string_view text) {
  std::size_t data = text.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");
  if (data == std::string_view::npos) {
    data = text.size();
  }
  const std::size_t pad = text.size() - data;
  return data > 0 && pad <= 2 && text.find_first_not_of('=', data) == std::string_view::npos && text.size() % 4 == 0;
}

// `|1|SALT|HASH` as ssh-keygen -H writes it: base64 of a salt and of an HMAC-SHA1 (20 bytes).
bool valid_hashed_host(std::string_view field) {
  field.remove_prefix(3);
  auto bar = field.find('|');
  if (bar == std::string_view::npos) {
    return false;
  }
  std::string_view salt = field.substr(0, bar), hash = field.substr(bar + 1);
  return strict_base64(salt) && strict_base64(hash) && base64_decode(hash).size() == 20;
}

KnownHostsFile parse_known_hosts(LIBSSH2_SESSION* s, const std::string& path, std::istream& in) {
  KnownHostsFile f;
  f.path = path;
  f.hosts = libssh2_knownhost_init(s);
  std::string line;
  while (std::getline(in, line)) {
    std::size_t i = line.find_first_not_of(" \t");
    if (i == std::string::npos || line[i] == '#') {
      continue;
    }
    if (line[i] == '@') {
      std::istringstream words(line.substr(i));
      std::string marker, hosts, type, key;
      words >> marker >> hosts >> type >> key;
      if (marker == "@revoked" && !key.empty()) {
        f.revoked.push_back(key);
      }
      continue; // @cert-authority: host certificates are not supported
    }
    {
      std::istringstream words(line.substr(i));
      std::string hosts, type, key;
      words >> hosts >> type >> key;
      if (hosts.find_first_of("*?!") != std::string::npos && hosts[0] != '|') {
        if (!key.empty()) {
          f.pattern_entries.push_back({hosts, type, key});
        }
        continue;
      }
      if (hosts.rfind("|1|", 0) == 0 && !valid_hashed_host(hosts)) {
        // It could match no host; libssh2 1.10 leaks memory on each such line it reads or checks.
        spdlog::debug("known_hosts {}: skipped a hashed host name that is not |1|SALT|SHA1 in base64", path);
        continue;
      }
    }
    line += "\n";
    if (libssh2_knownhost_readline(f.hosts, line.c_str() + i, line.size() - i, LIBSSH2_KNOWNHOST_FILE_OPENSSH) != 0) {
      spdlog::debug("known_hosts {}: skipped a line libssh2 cannot parse", path);
    }
  }
  return f;
}

KnownHostsFile load_known_hosts(LIBSSH2_SESSION* s, const std::string& path) {
  std::ifstream in(path);
  return parse_known_hosts(s, path, in);
}

// OpenSSH's match_pattern(): '*' and '?' wildcards; host names compare case-insensitively.
bool glob_match(const char* p, const char* s) {
  for (;;) {
    if (*p == '\0') {
      return *s == '\0';
    }
    if (*p == '*') {
      while (*p == '*') {
        ++p;
      }
      if (*p == '\0') {
        return true;
      }
      for (; *s; ++s) {
        if (glob_match(p, s)) {
          return true;
        }
      }
      return false;
    }
    if (*s == '\0') {
      return false;
    }
    if (*p != '?' && std::tolower(static_cast<unsigned char>(*p)) != std::tolower(static_cast<unsigned char>(*s))) {
      return false;
    }
    ++p;
    ++s;
  }
}

} // namespace

// OpenSSH's match_hostname(): a comma-separated list matches when some pattern matches and no
// negated (`!`) pattern does.
bool known_hosts_pattern_matches(const std::string& list, const std::string& host) {
  bool positive = false;
  std::size_t start = 0;
  while (start <= list.size()) {
    std::size_t comma = list.find(',', start);
    std::string pattern = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    start = comma == std::string::npos ? list.size() + 1 : comma + 1;
    bool negated = !pattern.empty() && pattern[0] == '!';
    if (negated) {
      pattern.erase(0, 1);
    }
    if (!pattern.empty() && glob_match(pattern.c_str(), host.c_str())) {
      if (negated) {
        return false;
      }
      positive = true;
    }
  }
  return positive;
}

namespace {

int check_in(const KnownHostsFile& f, const std::string& host, int port, const char* key, std::size_t len, int key_bits,
             libssh2_knownhost** found) {
  return libssh2_knownhost_checkp(f.hosts, host.c_str(), port, key, len,
                                  LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW | key_bits, found);
}

// Key types the known_hosts files hold for this host (probed with a dummy key: a mismatch means
// an entry of that type exists).
std::vector<const KeyType*> known_types(const std::vector<KnownHostsFile>& files, const std::string& host, int port) {
  std::vector<const KeyType*> out;
  static const char dummy[] = "sandbox-mcp-probe";
  for (const auto& k : k_key_types) {
    for (const auto& f : files) {
      libssh2_knownhost* found = nullptr;
      int rc = check_in(f, host, port, dummy, sizeof dummy - 1, k.knownhost_key, &found);
      if (rc == LIBSSH2_KNOWNHOST_CHECK_MISMATCH || rc == LIBSSH2_KNOWNHOST_CHECK_MATCH) {
        out.push_back(&k);
        break;
      }
    }
  }
  return out;
}

std::string fingerprint_of_base64(const char* b64) {
  if (!b64) {
    return "(unknown)";
  }
  std::string blob = base64_decode(b64);
  if (blob.empty()) {
    return "(unreadable key)";
  }
  return sha256_fingerprint(reinterpret_cast<const unsigned char*>(blob.data()), blob.size());
}

std::mutex& known_hosts_write_mutex() {
  static std::mutex m;
  return m;
}

std::mutex& warned_mutex() {
  static std::mutex m;
  return m;
}

std::set<std::string>& warned_off_hosts() {
  static std::set<std::string> s;
  return s;
}

std::string q(const std::string& s) {
  return "'" + s + "'";
}

// Checks the host key `key` (raw blob, LIBSSH2_HOSTKEY_TYPE_* `type`) the server presented.
std::optional<SetupFailure> verify_host_key(LIBSSH2_SESSION* s, const SshTarget& t,
                                            const std::vector<KnownHostsFile>& files, const SetupOptions& o,
                                            const char* key, std::size_t len, int type) {
  if (!key || len == 0) {
    return SetupFailure{Kind::io, "the server of " + o.host_name + " sent no host key", false};
  }
  const KeyType* kt = key_type_of(type);
  const std::string fp = sha256_fingerprint(reinterpret_cast<const unsigned char*>(key), len);
  const std::string type_name = kt ? kt->name : "unknown";
  const std::string kh_name = t.known_hosts_name();
  const std::string lookup_host = t.host_key_alias.empty() ? t.hostname : t.host_key_alias;
  const int lookup_port = t.host_key_alias.empty() ? t.port : -1;
  const std::string presented_b64 = base64_encode(reinterpret_cast<const unsigned char*>(key), len);

  for (const auto& f : files) {
    if (std::find(f.revoked.begin(), f.revoked.end(), presented_b64) != f.revoked.end()) {
      return SetupFailure{Kind::refused,
                          "host key of " + o.host_name + " (" + kh_name + ", " + type_name + " " + fp +
                              ") is marked @revoked in " + f.path + "; refusing to connect",
                          false};
    }
  }
  if (!kt) {
    return SetupFailure{Kind::refused, "the server of " + o.host_name + " uses a host key type libssh2 cannot check",
                        false};
  }
  const KnownHostsFile* mismatch_file = nullptr;
  std::string known_fp;
  for (const auto& f : files) {
    libssh2_knownhost* found = nullptr;
    int rc = check_in(f, lookup_host, lookup_port, key, len, kt->knownhost_key, &found);
    if (rc == LIBSSH2_KNOWNHOST_CHECK_MATCH) {
      return std::nullopt;
    }
    if (rc == LIBSSH2_KNOWNHOST_CHECK_MISMATCH && !mismatch_file) {
      mismatch_file = &f;
      known_fp = fingerprint_of_base64(found ? found->key : nullptr);
    }
  }
  // Pattern entries (libssh2 cannot match them): a matching one with this key accepts it, one
  // with another key of this type is a mismatch, one of another type a changed key type.
  std::string pattern_other_types;
  for (const auto& f : files) {
    for (const auto& e : f.pattern_entries) {
      if (!known_hosts_pattern_matches(e.patterns, kh_name)) {
        continue;
      }
      if (e.type == kt->name && e.key == presented_b64) {
        return std::nullopt;
      }
      if (e.type == kt->name && !mismatch_file) {
        mismatch_file = &f;
        known_fp = fingerprint_of_base64(e.key.c_str()) + " (pattern " + e.patterns + ")";
      } else if (e.type != kt->name) {
        pattern_other_types += (pattern_other_types.empty() ? "" : ", ") + e.type + " (pattern " + e.patterns + ")";
      }
    }
  }
  if (mismatch_file) {
    return SetupFailure{
        Kind::refused,
        "HOST KEY MISMATCH for " + o.host_name + " (" + kh_name + "): the server presented " + type_name + " key " +
            fp + " but " + mismatch_file->path + " records " + known_fp +
            " for it. This can be a man-in-the-middle attack, or the host was reinstalled. Connection refused. If "
            "the change is expected, remove the old key with `ssh-keygen -R " +
            q(kh_name) + " -f " + q(mismatch_file->path) + "` and connect again (the new key will be recorded).",
        false};
  }
  if (o.policy == HostKeyPolicy::off) {
    // Unknown keys are accepted without recording them; a known, different key was refused above.
    std::lock_guard lock(warned_mutex());
    if (warned_off_hosts().insert(o.host_name).second) {
      spdlog::warn("!!! host key checking is OFF for {} ({}): accepting the unknown {} key {} without "
                   "verification. Anyone who can intercept this connection can impersonate the host. Set "
                   "host_key_policy to accept-new or strict in the sandbox-mcp config. !!!",
                   o.host_name, kh_name, type_name, fp);
    }
    return std::nullopt;
  }
  auto other = known_types(files, lookup_host, lookup_port);
  if (!other.empty() || !pattern_other_types.empty()) {
    std::string names = pattern_other_types;
    for (const auto* k : other) {
      names += (names.empty() ? "" : ", ") + std::string(k->name);
    }
    return SetupFailure{Kind::refused,
                        "host key of " + o.host_name + " (" + kh_name + ") changed type: known_hosts has a " + names +
                            " key for it, but the server offered only " + type_name + " " + fp +
                            ". Refusing to connect. If this is expected, remove the old entry with `ssh-keygen -R " +
                            q(kh_name) + "` and connect again.",
                        false};
  }
  std::string files_list;
  for (const auto& f : files) {
    files_list += (files_list.empty() ? "" : ", ") + f.path;
  }
  HostKeyPolicy policy = o.policy;
  if (t.strict_host_key_checking == "yes" || t.strict_host_key_checking == "true") {
    policy = HostKeyPolicy::strict; // the user's ssh config is stricter than ours: it wins
  }
  if (policy == HostKeyPolicy::strict) {
    return SetupFailure{Kind::refused,
                        "host " + o.host_name + " (" + kh_name + ") is not in known_hosts (" + files_list +
                            ") and the host key policy is strict. The server presents " + type_name + " key " + fp +
                            ". Verify it, then record it with `ssh " + o.host_name +
                            " true` (answer yes) or `ssh-keyscan -p " + std::to_string(t.port) + " " + t.hostname +
                            " >> " +
                            (t.user_known_hosts_files.empty() ? "~/.ssh/known_hosts" : t.user_known_hosts_files[0]) +
                            "`, or set host_key_policy to accept-new.",
                        false};
  }
  // accept-new: append one line to the first user known_hosts file (never rewrite the file).
  if (t.user_known_hosts_files.empty()) {
    spdlog::warn("accepting new host key for {} ({} {} {}) without recording it: no UserKnownHostsFile", o.host_name,
                 kh_name, type_name, fp);
    return std::nullopt;
  }
  const std::string& path = t.user_known_hosts_files.front();
  std::lock_guard lock(known_hosts_write_mutex());
  // Another session may have recorded it meanwhile.
  {
    KnownHostsFile fresh = load_known_hosts(s, path);
    libssh2_knownhost* found = nullptr;
    int rc = check_in(fresh, lookup_host, lookup_port, key, len, kt->knownhost_key, &found);
    if (rc == LIBSSH2_KNOWNHOST_CHECK_MATCH) {
      return std::nullopt;
    }
    if (rc == LIBSSH2_KNOWNHOST_CHECK_MISMATCH) {
      return SetupFailure{Kind::refused,
                          "HOST KEY MISMATCH for " + o.host_name + " (" + kh_name + "): the server presented " + fp +
                              " but " + path + " records " + fingerprint_of_base64(found ? found->key : nullptr) +
                              ". Refused; if expected, run `ssh-keygen -R " + q(kh_name) + " -f " + q(path) + "`.",
                          false};
    }
  }
  LIBSSH2_KNOWNHOSTS* add = libssh2_knownhost_init(s);
  libssh2_knownhost* entry = nullptr;
  static const char comment[] = "added by sandbox-mcp";
  int rc =
      libssh2_knownhost_addc(add, kh_name.c_str(), nullptr, key, len, comment, sizeof comment - 1,
                             LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW | kt->knownhost_key, &entry);
  std::string line(4096, '\0');
  std::size_t out_len = 0;
  if (rc == 0) {
    rc = libssh2_knownhost_writeline(add, entry, line.data(), line.size(), &out_len, LIBSSH2_KNOWNHOST_FILE_OPENSSH);
  }
  libssh2_knownhost_free(add);
  if (rc != 0) {
    return SetupFailure{Kind::io, "cannot format a known_hosts line for " + o.host_name, false};
  }
  line.resize(out_len);
  std::error_code ec;
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (!dir.empty() && !std::filesystem::exists(dir, ec)) {
    std::filesystem::create_directories(dir, ec);
    ::chmod(dir.c_str(), 0700);
  }
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return SetupFailure{
        Kind::io, "cannot record the new host key of " + o.host_name + " in " + path + ": " + std::strerror(errno),
        false};
  }
  // Make sure the new entry starts on its own line.
  struct stat st {};
  if (::fstat(fd, &st) == 0 && st.st_size > 0) {
    char last = '\n';
    int rfd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (rfd >= 0) {
      if (::pread(rfd, &last, 1, st.st_size - 1) != 1) {
        last = '\n';
      }
      ::close(rfd);
    }
    if (last != '\n') {
      line.insert(line.begin(), '\n');
    }
  }
  bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  ::close(fd);
  if (!ok) {
    return SetupFailure{Kind::io, "cannot write " + path, false};
  }
  spdlog::info("accept-new: recorded the {} host key {} of {} ({}) in {}", type_name, fp, o.host_name, kh_name, path);
  return std::nullopt;
}

// ---- authentication ----

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string read_text(const std::string& path, std::size_t max = 1 << 20) {
  std::ifstream in(path, std::ios::binary);
  std::string data(max, '\0');
  in.read(data.data(), static_cast<std::streamsize>(max));
  data.resize(static_cast<std::size_t>(in.gcount()));
  return data;
}

bool key_is_encrypted(const std::string& path) {
  std::string text = read_text(path, 64 * 1024);
  static const std::string begin = "-----BEGIN OPENSSH PRIVATE KEY-----";
  static const std::string end = "-----END OPENSSH PRIVATE KEY-----";
  auto b = text.find(begin);
  if (b != std::string::npos) {
    auto e = text.find(end, b);
    std::string blob =
        base64_decode(text.substr(b + begin.size(), e == std::string::npos ? std::string::npos : e - b - begin.size()));
    static const char magic[] = "openssh-key-v1";
    if (blob.size() < sizeof magic + 4 || blob.compare(0, sizeof magic, std::string(magic, sizeof magic)) != 0) {
      return false;
    }
    const auto* p = reinterpret_cast<const unsigned char*>(blob.data()) + sizeof magic;
    std::size_t n = (std::size_t(p[0]) << 24) | (std::size_t(p[1]) << 16) | (std::size_t(p[2]) << 8) | p[3];
    if (sizeof magic + 4 + n > blob.size()) {
      return false;
    }
    return std::string(reinterpret_cast<const char*>(p + 4), n) != "none";
  }
  return text.find("ENCRYPTED") != std::string::npos;
}

std::optional<std::string> passphrase_for(const std::string& key_file, const PassphraseSource& src) {
  static std::mutex m;
  static std::map<std::string, std::string> cache;
  std::lock_guard lock(m);
  if (auto it = cache.find(key_file); it != cache.end()) {
    return it->second;
  }
  std::string value;
  if (!src.command.empty()) {
    ProcessResult r = run_process({"/bin/sh", "-c", src.command, "sh", key_file}, std::chrono::seconds(30));
    if (r.status != 0) {
      spdlog::warn("passphrase command for {} failed (status {}): {}", key_file, r.status, r.err);
      return std::nullopt;
    }
    value = r.out;
  } else if (src.env_value) {
    value = *src.env_value;
  } else if (!src.env.empty()) {
    const char* v = std::getenv(src.env.c_str());
    if (!v) {
      return std::nullopt;
    }
    value = v;
  } else if (!src.file.empty()) {
    if (!file_exists(src.file)) {
      return std::nullopt;
    }
    value = read_text(src.file, 4096);
  } else {
    return std::nullopt;
  }
  if (auto nl = value.find('\n'); nl != std::string::npos) {
    value.resize(nl);
  }
  if (!value.empty() && value.back() == '\r') {
    value.pop_back();
  }
  cache[key_file] = value;
  return value;
}

bool connection_broken(int rc) {
  return rc == LIBSSH2_ERROR_SOCKET_SEND || rc == LIBSSH2_ERROR_SOCKET_RECV || rc == LIBSSH2_ERROR_SOCKET_DISCONNECT ||
         rc == LIBSSH2_ERROR_TIMEOUT || rc == LIBSSH2_ERROR_SOCKET_TIMEOUT;
}

std::optional<SetupFailure> authenticate(LIBSSH2_SESSION* s, const SshTarget& t, const SetupOptions& o) {
  const std::string& user = t.user;
  const auto ulen = static_cast<unsigned int>(user.size());
  char* methods = libssh2_userauth_list(s, user.c_str(), ulen);
  if (!methods) {
    if (libssh2_userauth_authenticated(s)) {
      return std::nullopt;
    }
    return SetupFailure{Kind::unreachable, "cannot ask " + o.host_name + " how to log in: " + last_error(s), true};
  }
  const std::string accepted = methods;
  const std::string who = user + "@" + t.hostname + ":" + std::to_string(t.port);
  if (accepted.find("publickey") == std::string::npos) {
    return SetupFailure{Kind::refused,
                        "cannot log in to " + o.host_name + " as " + who + ": the server accepts only " + accepted +
                            ", and sandbox-mcp logs in with keys only (ssh-agent or IdentityFile). Add your public "
                            "key to ~/.ssh/authorized_keys on the host.",
                        false};
  }
  std::vector<std::string> tried;
  std::vector<std::string> missing;

  // 1. ssh-agent
  std::string agent_path = t.identity_agent;
  if (agent_path.empty()) {
    const char* env = std::getenv("SSH_AUTH_SOCK");
    agent_path = env ? env : "";
  }
  if (t.identities_only) {
    tried.push_back("ssh-agent skipped (IdentitiesOnly yes)");
  } else if (agent_path == "none") {
    tried.push_back("ssh-agent disabled (IdentityAgent none)");
  } else if (agent_path.empty()) {
    tried.push_back("no ssh-agent (SSH_AUTH_SOCK is not set)");
  } else {
    LIBSSH2_AGENT* agent = libssh2_agent_init(s);
    if (agent) {
      libssh2_agent_set_identity_path(agent, agent_path.c_str());
      if (libssh2_agent_connect(agent) != 0) {
        tried.push_back("ssh-agent at " + agent_path + ": cannot connect");
      } else if (libssh2_agent_list_identities(agent) != 0) {
        tried.push_back("ssh-agent at " + agent_path + ": cannot list keys");
      } else {
        libssh2_agent_publickey* id = nullptr;
        libssh2_agent_publickey* prev = nullptr;
        int count = 0;
        while (libssh2_agent_get_identity(agent, &id, prev) == 0) {
          ++count;
          int rc = libssh2_agent_userauth(agent, user.c_str(), id);
          if (rc == 0) {
            libssh2_agent_disconnect(agent);
            libssh2_agent_free(agent);
            return std::nullopt;
          }
          if (connection_broken(rc)) {
            break;
          }
          prev = id;
        }
        tried.push_back("ssh-agent at " + agent_path + ": " +
                        (count == 0 ? std::string("holds no keys")
                                    : std::to_string(count) + " key" + (count > 1 ? "s" : "") + " rejected"));
      }
      libssh2_agent_disconnect(agent);
      libssh2_agent_free(agent);
    }
  }

  // 2. identity files, in ssh's order; only those that exist
  for (const auto& file : t.identity_files) {
    if (!file_exists(file)) {
      missing.push_back(file);
      continue;
    }
    std::string pass;
    if (key_is_encrypted(file)) {
      auto p = o.passphrase.empty() ? std::nullopt : passphrase_for(file, o.passphrase);
      if (!p) {
        tried.push_back(file + " (encrypted; no passphrase source is configured: set passphrase in the sandbox-mcp "
                               "config, or load the key into ssh-agent)");
        continue;
      }
      pass = *p;
    }
    std::string pub = file + ".pub";
    const char* pub_path = file_exists(pub) ? pub.c_str() : nullptr;
    int rc = libssh2_userauth_publickey_fromfile_ex(s, user.c_str(), ulen, pub_path, file.c_str(), pass.c_str());
    if (rc == 0) {
      return std::nullopt;
    }
    if (rc == LIBSSH2_ERROR_AUTHENTICATION_FAILED || rc == LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED) {
      tried.push_back(file + " (rejected by the server)");
    } else if (rc == LIBSSH2_ERROR_FILE || rc == LIBSSH2_ERROR_KEYFILE_AUTH_FAILED) {
      tried.push_back(file + " (cannot use the key file: " + last_error(s) +
                      (pass.empty() ? ")" : "; wrong passphrase?)"));
    } else if (connection_broken(rc)) {
      tried.push_back(file + " (the server closed the connection: too many failed attempts? see MaxAuthTries)");
      break;
    } else {
      tried.push_back(file + " (" + last_error(s) + ")");
    }
  }
  std::string msg = "cannot log in to " + o.host_name + " as " + who + ": no key was accepted. Tried: ";
  for (std::size_t i = 0; i < tried.size(); ++i) {
    msg += (i ? "; " : "") + tried[i];
  }
  if (!missing.empty()) {
    msg += ". Identity files not present: ";
    for (std::size_t i = 0; i < missing.size(); ++i) {
      msg += (i ? ", " : "") + missing[i];
    }
  }
  msg += ". Fix: install your public key on the host (`ssh-copy-id " + o.host_name +
         "`), load the right key into ssh-agent, or set IdentityFile for this host in ~/.ssh/config.";
  return SetupFailure{Kind::refused, msg, false};
}

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

std::string sha256_fingerprint(const unsigned char* blob, std::size_t len) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  if (EVP_Digest(blob, len, md, &md_len, EVP_sha256(), nullptr) != 1) {
    return "SHA256:?";
  }
  std::string b64 = base64_encode(md, md_len);
  while (!b64.empty() && b64.back() == '=') {
    b64.pop_back();
  }
  return "SHA256:" + b64;
}

void libssh2_global_init() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (libssh2_init(0) != 0) {
      spdlog::error("libssh2_init failed");
    }
  });
}

int tcp_connect(const std::string& host, int port, std::chrono::milliseconds timeout, SetupFailure& failure) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const std::string port_text = std::to_string(port);
  int gai = ::getaddrinfo(host.c_str(), port_text.c_str(), &hints, &res);
  if (gai != 0) {
    failure = {Kind::unreachable, "cannot resolve " + host + ": " + ::gai_strerror(gai), false};
    return -1;
  }
  const auto deadline = Clock::now() + timeout;
  std::string last = "no address";
  bool timed_out = false;
  int result = -1;
  for (addrinfo* ai = res; ai && result < 0; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      last = std::strerror(errno);
      continue;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    int rc = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      int pr = left > 0 ? ::poll(&p, 1, static_cast<int>(left)) : 0;
      if (pr == 1) {
        int err = 0;
        socklen_t elen = sizeof err;
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen);
        rc = err == 0 ? 0 : -1;
        errno = err;
      } else {
        rc = -1;
        errno = ETIMEDOUT;
        timed_out = true;
      }
    }
    if (rc == 0) {
      result = fd;
    } else {
      last = std::strerror(errno);
      ::close(fd);
    }
  }
  ::freeaddrinfo(res);
  if (result < 0) {
    failure = {Kind::unreachable,
               "cannot connect to " + host + " port " + port_text + ": " +
                   (timed_out ? "timed out after " + std::to_string(timeout.count() / 1000) + " s" : last),
               false};
  }
  return result;
}

std::optional<SetupFailure> check_host_key(const SshTarget& t, std::string_view known_hosts, std::string_view key_type,
                                           std::string_view key_blob, const SetupOptions& o) {
  libssh2_global_init();
  LIBSSH2_SESSION* s = libssh2_session_init();
  if (!s) {
    return SetupFailure{Kind::io, "cannot allocate an SSH session", false};
  }
  std::optional<SetupFailure> failure;
  {
    std::vector<KnownHostsFile> files;
    std::istringstream in{std::string(known_hosts)};
    files.push_back(parse_known_hosts(s, "known_hosts", in));
    (void)known_types(files, t.host_key_alias.empty() ? t.hostname : t.host_key_alias,
                      t.host_key_alias.empty() ? t.port : -1);
    int type = LIBSSH2_HOSTKEY_TYPE_UNKNOWN;
    for (const auto& k : k_key_types) {
      if (key_type == k.name) {
        type = k.hostkey_type;
      }
    }
    failure = verify_host_key(s, t, files, o, key_blob.data(), key_blob.size(), type);
  } // the collections belong to the session: free them first
  libssh2_session_free(s);
  return failure;
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

  std::vector<KnownHostsFile> files;
  {
    std::vector<std::string> paths = t.user_known_hosts_files;
    paths.insert(paths.end(), t.global_known_hosts_files.begin(), t.global_known_hosts_files.end());
    for (const auto& p : paths) {
      if (file_exists(p)) {
        files.push_back(load_known_hosts(s, p));
      }
    }
    // Prefer the key types known_hosts holds for this host, as OpenSSH does.
    const std::string lookup_host = t.host_key_alias.empty() ? t.hostname : t.host_key_alias;
    auto known = known_types(files, lookup_host, t.host_key_alias.empty() ? t.port : -1);
    // Only names this libssh2 supports: 1.10 strips unknown ones with an overlapping memcpy.
    std::set<std::string> supported;
    const char** algs = nullptr;
    int n_algs = libssh2_session_supported_algs(s, LIBSSH2_METHOD_HOSTKEY, &algs);
    for (int i = 0; i < n_algs; ++i) {
      supported.insert(algs[i]);
    }
    if (algs) {
      libssh2_free(s, static_cast<void*>(algs));
    }
    std::string prefs;
    auto add = [&](const KeyType& k) {
      std::string_view methods = k.methods;
      while (!methods.empty()) {
        auto comma = methods.find(',');
        std::string name(methods.substr(0, comma));
        methods.remove_prefix(comma == std::string_view::npos ? methods.size() : comma + 1);
        if (supported.count(name) && prefs.find(name) == std::string::npos) {
          prefs += (prefs.empty() ? "" : ",") + name;
        }
      }
    };
    for (const auto* k : known) {
      add(*k);
    }
    for (const auto& k : k_key_types) {
      add(k);
    }
    if (!prefs.empty()) {
      libssh2_session_method_pref(s, LIBSSH2_METHOD_HOSTKEY, prefs.c_str());
    }
  }

  int rc = libssh2_session_handshake(s, fd);
  if (rc != 0) {
    files.clear();
    r.failure = SetupFailure{Kind::unreachable,
                             "SSH handshake with " + o.host_name + " (" + t.hostname + ":" + std::to_string(t.port) +
                                 ") failed: " + last_error(s),
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
