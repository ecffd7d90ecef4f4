// Host key verification against known_hosts (OpenSSH's rules: hashed names, wildcard and negated
// patterns, @revoked), recording new keys under accept-new, and the host key types to offer.
#include "ssh/session_internal.h"

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
#include <mutex>
#include <set>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

namespace smcp::ssh {

namespace {

std::string base64_encode(const unsigned char* data, std::size_t len) {
  std::string out(4 * ((len + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(len));
  out.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
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

// The name and port known_hosts lists the target under (HostKeyAlias replaces both).
struct LookupName {
  std::string host;
  int port;
};

LookupName lookup_name(const SshTarget& t) {
  return t.host_key_alias.empty() ? LookupName{t.hostname, t.port} : LookupName{t.host_key_alias, -1};
}

int check_in(const KnownHostsFile& f, const LookupName& name, const char* key, std::size_t len, int key_bits,
             libssh2_knownhost** found) {
  return libssh2_knownhost_checkp(f.hosts, name.host.c_str(), name.port, key, len,
                                  LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW | key_bits, found);
}

// Key types the known_hosts files hold for this host (probed with a dummy key: a mismatch means
// an entry of that type exists).
std::vector<const KeyType*> known_types(const std::vector<KnownHostsFile>& files, const LookupName& name) {
  std::vector<const KeyType*> out;
  static const char dummy[] = "sandbox-mcp-probe";
  for (const auto& k : k_key_types) {
    for (const auto& f : files) {
      libssh2_knownhost* found = nullptr;
      int rc = check_in(f, name, dummy, sizeof dummy - 1, k.knownhost_key, &found);
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

// The key the server presented, with what the messages say about it.
struct PresentedKey {
  const char* key;
  std::size_t len;
  const KeyType* type; // null: a type libssh2 cannot check
  std::string type_name;
  std::string fingerprint;
  std::string base64;
  std::string kh_name; // the host as known_hosts names it
  LookupName lookup;
};

// What known_hosts says about the presented key.
struct KnownKeyVerdict {
  bool match = false;
  const KnownHostsFile* mismatch_file = nullptr; // a different key of the same type is recorded here
  std::string known_fp;                          // ...with this fingerprint
  std::string pattern_other_types;               // pattern entries with keys of other types
};

KnownKeyVerdict look_up_key(const std::vector<KnownHostsFile>& files, const PresentedKey& k) {
  KnownKeyVerdict v;
  for (const auto& f : files) {
    libssh2_knownhost* found = nullptr;
    int rc = check_in(f, k.lookup, k.key, k.len, k.type->knownhost_key, &found);
    if (rc == LIBSSH2_KNOWNHOST_CHECK_MATCH) {
      v.match = true;
      return v;
    }
    if (rc == LIBSSH2_KNOWNHOST_CHECK_MISMATCH && !v.mismatch_file) {
      v.mismatch_file = &f;
      v.known_fp = fingerprint_of_base64(found ? found->key : nullptr);
    }
  }
  // Pattern entries (libssh2 cannot match them): a matching one with this key accepts it, one
  // with another key of this type is a mismatch, one of another type a changed key type.
  for (const auto& f : files) {
    for (const auto& e : f.pattern_entries) {
      if (!known_hosts_pattern_matches(e.patterns, k.kh_name)) {
        continue;
      }
      if (e.type == k.type->name && e.key == k.base64) {
        v.match = true;
        return v;
      }
      if (e.type == k.type->name && !v.mismatch_file) {
        v.mismatch_file = &f;
        v.known_fp = fingerprint_of_base64(e.key.c_str()) + " (pattern " + e.patterns + ")";
      } else if (e.type != k.type->name) {
        v.pattern_other_types += (v.pattern_other_types.empty() ? "" : ", ") + e.type + " (pattern " + e.patterns + ")";
      }
    }
  }
  return v;
}

// accept-new: appends one line for the key to `path` (never rewrites the file).
std::optional<SetupFailure> record_new_key(LIBSSH2_SESSION* s, const std::string& path, const PresentedKey& k,
                                           const SetupOptions& o) {
  std::lock_guard lock(known_hosts_write_mutex());
  // Another session may have recorded it meanwhile.
  {
    KnownHostsFile fresh = load_known_hosts(s, path);
    libssh2_knownhost* found = nullptr;
    int rc = check_in(fresh, k.lookup, k.key, k.len, k.type->knownhost_key, &found);
    if (rc == LIBSSH2_KNOWNHOST_CHECK_MATCH) {
      return std::nullopt;
    }
    if (rc == LIBSSH2_KNOWNHOST_CHECK_MISMATCH) {
      return SetupFailure{Kind::refused,
                          "HOST KEY MISMATCH for " + o.host_name + " (" + k.kh_name + "): the server presented " +
                              k.fingerprint + " but " + path + " records " +
                              fingerprint_of_base64(found ? found->key : nullptr) + ". Refused; if expected, run " +
                              "`ssh-keygen -R " + q(k.kh_name) + " -f " + q(path) + "`.",
                          false};
    }
  }
  LIBSSH2_KNOWNHOSTS* add = libssh2_knownhost_init(s);
  libssh2_knownhost* entry = nullptr;
  static const char comment[] = "added by sandbox-mcp";
  int rc = libssh2_knownhost_addc(add, k.kh_name.c_str(), nullptr, k.key, k.len, comment, sizeof comment - 1,
                                  LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW | k.type->knownhost_key,
                                  &entry);
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
  spdlog::info("accept-new: recorded the {} host key {} of {} ({}) in {}", k.type_name, k.fingerprint, o.host_name,
               k.kh_name, path);
  return std::nullopt;
}

// A key known_hosts does not know for this host (and no other key of its type): what the policy says.
std::optional<SetupFailure> unknown_key(LIBSSH2_SESSION* s, const SshTarget& t,
                                        const std::vector<KnownHostsFile>& files, const SetupOptions& o,
                                        const PresentedKey& k) {
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
                        "host " + o.host_name + " (" + k.kh_name + ") is not in known_hosts (" + files_list +
                            ") and the host key policy is strict. The server presents " + k.type_name + " key " +
                            k.fingerprint + ". Verify it, then record it with `ssh " + o.host_name +
                            " true` (answer yes) or `ssh-keyscan -p " + std::to_string(t.port) + " " + t.hostname +
                            " >> " +
                            (t.user_known_hosts_files.empty() ? "~/.ssh/known_hosts" : t.user_known_hosts_files[0]) +
                            "`, or set host_key_policy to accept-new.",
                        false};
  }
  if (t.user_known_hosts_files.empty()) {
    spdlog::warn("accepting new host key for {} ({} {} {}) without recording it: no UserKnownHostsFile", o.host_name,
                 k.kh_name, k.type_name, k.fingerprint);
    return std::nullopt;
  }
  return record_new_key(s, t.user_known_hosts_files.front(), k, o);
}

} // namespace

KnownHostsFile::KnownHostsFile(KnownHostsFile&& o) noexcept
    : path(std::move(o.path)), hosts(std::exchange(o.hosts, nullptr)), revoked(std::move(o.revoked)),
      pattern_entries(std::move(o.pattern_entries)) {}

KnownHostsFile::~KnownHostsFile() {
  if (hosts) {
    libssh2_knownhost_free(hosts);
  }
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

std::optional<SetupFailure> verify_host_key(LIBSSH2_SESSION* s, const SshTarget& t,
                                            const std::vector<KnownHostsFile>& files, const SetupOptions& o,
                                            const char* key, std::size_t len, int type) {
  if (!key || len == 0) {
    return SetupFailure{Kind::io, "the server of " + o.host_name + " sent no host key", false};
  }
  const KeyType* kt = key_type_of(type);
  const PresentedKey k{key,
                       len,
                       kt,
                       kt ? kt->name : "unknown",
                       sha256_fingerprint(reinterpret_cast<const unsigned char*>(key), len),
                       base64_encode(reinterpret_cast<const unsigned char*>(key), len),
                       t.known_hosts_name(),
                       lookup_name(t)};
  for (const auto& f : files) {
    if (std::find(f.revoked.begin(), f.revoked.end(), k.base64) != f.revoked.end()) {
      return SetupFailure{Kind::refused,
                          "host key of " + o.host_name + " (" + k.kh_name + ", " + k.type_name + " " + k.fingerprint +
                              ") is marked @revoked in " + f.path + "; refusing to connect",
                          false};
    }
  }
  if (!kt) {
    return SetupFailure{Kind::refused, "the server of " + o.host_name + " uses a host key type libssh2 cannot check",
                        false};
  }
  const KnownKeyVerdict v = look_up_key(files, k);
  if (v.match) {
    return std::nullopt;
  }
  if (v.mismatch_file) {
    return SetupFailure{
        Kind::refused,
        "HOST KEY MISMATCH for " + o.host_name + " (" + k.kh_name + "): the server presented " + k.type_name + " key " +
            k.fingerprint + " but " + v.mismatch_file->path + " records " + v.known_fp +
            " for it. This can be a man-in-the-middle attack, or the host was reinstalled. Connection refused. If "
            "the change is expected, remove the old key with `ssh-keygen -R " +
            q(k.kh_name) + " -f " + q(v.mismatch_file->path) + "` and connect again (the new key will be recorded).",
        false};
  }
  if (o.policy == HostKeyPolicy::off) {
    // Unknown keys are accepted without recording them; a known, different key was refused above.
    std::lock_guard lock(warned_mutex());
    if (warned_off_hosts().insert(o.host_name).second) {
      spdlog::warn("!!! host key checking is OFF for {} ({}): accepting the unknown {} key {} without "
                   "verification. Anyone who can intercept this connection can impersonate the host. Set "
                   "host_key_policy to accept-new or strict in the sandbox-mcp config. !!!",
                   o.host_name, k.kh_name, k.type_name, k.fingerprint);
    }
    return std::nullopt;
  }
  auto other = known_types(files, k.lookup);
  if (!other.empty() || !v.pattern_other_types.empty()) {
    std::string names = v.pattern_other_types;
    for (const auto* ot : other) {
      names += (names.empty() ? "" : ", ") + std::string(ot->name);
    }
    return SetupFailure{Kind::refused,
                        "host key of " + o.host_name + " (" + k.kh_name + ") changed type: known_hosts has a " + names +
                            " key for it, but the server offered only " + k.type_name + " " + k.fingerprint +
                            ". Refusing to connect. If this is expected, remove the old entry with `ssh-keygen -R " +
                            q(k.kh_name) + "` and connect again.",
                        false};
  }
  return unknown_key(s, t, files, o, k);
}

std::vector<KnownHostsFile> load_known_hosts_files(LIBSSH2_SESSION* s, const SshTarget& t) {
  std::vector<KnownHostsFile> files;
  std::vector<std::string> paths = t.user_known_hosts_files;
  paths.insert(paths.end(), t.global_known_hosts_files.begin(), t.global_known_hosts_files.end());
  for (const auto& p : paths) {
    if (file_exists(p)) {
      files.push_back(load_known_hosts(s, p));
    }
  }
  return files;
}

std::string host_key_preferences(LIBSSH2_SESSION* s, const std::vector<KnownHostsFile>& files, const SshTarget& t) {
  auto known = known_types(files, lookup_name(t));
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
  return prefs;
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
    (void)known_types(files, lookup_name(t));
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

} // namespace smcp::ssh
