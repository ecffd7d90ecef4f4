// Logging in over a handshaken session: ssh-agent first, then the identity files in ssh's order,
// encrypted ones with a passphrase from the configured source (command, environment, file).
#include "ssh/session_internal.h"

#include "sandbox/exec/run_process.h"

#include <libssh2.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <string_view>
#include <sys/stat.h>

namespace smcp::ssh {

namespace {

std::string read_text(const std::string& path, std::size_t max = 1 << 20) {
  std::ifstream in(path, std::ios::binary);
  std::string data(max, '\0');
  in.read(data.data(), static_cast<std::streamsize>(max));
  data.resize(static_cast<std::size_t>(in.gcount()));
  return data;
}

bool key_is_encrypted(const std::string& path) {
  std::string text = read_text(path, 64 * 1024);
  // No static std::string: handshake workers are detached threads, and a static's destructor at
  // exit would race with one still running (TSan reports it).
  constexpr std::string_view begin = "-----BEGIN OPENSSH PRIVATE KEY-----";
  constexpr std::string_view end = "-----END OPENSSH PRIVATE KEY-----";
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
    exec::ProcessResult r = exec::run_process({"/bin/sh", "-c", src.command, "sh", key_file}, std::chrono::seconds(30));
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

// What was tried, for the message when no key is accepted.
struct Attempts {
  std::vector<std::string> tried;
  std::vector<std::string> missing; // identity files not present
};

// Tries the keys of ssh-agent; true when one was accepted.
bool try_agent(LIBSSH2_SESSION* s, const SshTarget& t, Attempts& a) {
  std::string agent_path = t.identity_agent;
  if (agent_path.empty()) {
    const char* env = std::getenv("SSH_AUTH_SOCK");
    agent_path = env ? env : "";
  }
  if (t.identities_only) {
    a.tried.push_back("ssh-agent skipped (IdentitiesOnly yes)");
    return false;
  }
  if (agent_path == "none") {
    a.tried.push_back("ssh-agent disabled (IdentityAgent none)");
    return false;
  }
  if (agent_path.empty()) {
    a.tried.push_back("no ssh-agent (SSH_AUTH_SOCK is not set)");
    return false;
  }
  LIBSSH2_AGENT* agent = libssh2_agent_init(s);
  if (!agent) {
    return false;
  }
  bool accepted = false;
  libssh2_agent_set_identity_path(agent, agent_path.c_str());
  if (libssh2_agent_connect(agent) != 0) {
    a.tried.push_back("ssh-agent at " + agent_path + ": cannot connect");
  } else if (libssh2_agent_list_identities(agent) != 0) {
    a.tried.push_back("ssh-agent at " + agent_path + ": cannot list keys");
  } else {
    libssh2_agent_publickey* id = nullptr;
    libssh2_agent_publickey* prev = nullptr;
    int count = 0;
    while (libssh2_agent_get_identity(agent, &id, prev) == 0) {
      ++count;
      int rc = libssh2_agent_userauth(agent, t.user.c_str(), id);
      if (rc == 0) {
        accepted = true;
        break;
      }
      if (connection_broken(rc)) {
        break;
      }
      prev = id;
    }
    if (!accepted) {
      a.tried.push_back("ssh-agent at " + agent_path + ": " +
                        (count == 0 ? std::string("holds no keys")
                                    : std::to_string(count) + " key" + (count > 1 ? "s" : "") + " rejected"));
    }
  }
  libssh2_agent_disconnect(agent);
  libssh2_agent_free(agent);
  return accepted;
}

// Tries the identity files, in ssh's order, those that exist; true when one was accepted.
bool try_identity_files(LIBSSH2_SESSION* s, const SshTarget& t, const SetupOptions& o, Attempts& a) {
  const auto ulen = static_cast<unsigned int>(t.user.size());
  for (const auto& file : t.identity_files) {
    if (!file_exists(file)) {
      a.missing.push_back(file);
      continue;
    }
    std::string pass;
    if (key_is_encrypted(file)) {
      auto p = o.passphrase.empty() ? std::nullopt : passphrase_for(file, o.passphrase);
      if (!p) {
        a.tried.push_back(file + " (encrypted; no passphrase source is configured: set passphrase in the sandbox-mcp "
                                 "config, or load the key into ssh-agent)");
        continue;
      }
      pass = *p;
    }
    std::string pub = file + ".pub";
    const char* pub_path = file_exists(pub) ? pub.c_str() : nullptr;
    int rc = libssh2_userauth_publickey_fromfile_ex(s, t.user.c_str(), ulen, pub_path, file.c_str(), pass.c_str());
    if (rc == 0) {
      return true;
    }
    if (rc == LIBSSH2_ERROR_AUTHENTICATION_FAILED || rc == LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED) {
      a.tried.push_back(file + " (rejected by the server)");
    } else if (rc == LIBSSH2_ERROR_FILE || rc == LIBSSH2_ERROR_KEYFILE_AUTH_FAILED) {
      a.tried.push_back(file + " (cannot use the key file: " + session_last_error(s) +
                        (pass.empty() ? ")" : "; wrong passphrase?)"));
    } else if (connection_broken(rc)) {
      a.tried.push_back(file + " (the server closed the connection: too many failed attempts? see MaxAuthTries)");
      break;
    } else {
      a.tried.push_back(file + " (" + session_last_error(s) + ")");
    }
  }
  return false;
}

} // namespace

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::optional<SetupFailure> authenticate(LIBSSH2_SESSION* s, const SshTarget& t, const SetupOptions& o) {
  char* methods = libssh2_userauth_list(s, t.user.c_str(), static_cast<unsigned int>(t.user.size()));
  if (!methods) {
    if (libssh2_userauth_authenticated(s)) {
      return std::nullopt;
    }
    return SetupFailure{Kind::unreachable, "cannot ask " + o.host_name + " how to log in: " + session_last_error(s),
                        true};
  }
  const std::string accepted = methods;
  const std::string who = t.user + "@" + t.hostname + ":" + std::to_string(t.port);
  if (accepted.find("publickey") == std::string::npos) {
    return SetupFailure{Kind::refused,
                        "cannot log in to " + o.host_name + " as " + who + ": the server accepts only " + accepted +
                            ", and sandbox-mcp logs in with keys only (ssh-agent or IdentityFile). Add your public "
                            "key to ~/.ssh/authorized_keys on the host.",
                        false};
  }
  Attempts a;
  if (try_agent(s, t, a) || try_identity_files(s, t, o, a)) {
    return std::nullopt;
  }
  std::string msg = "cannot log in to " + o.host_name + " as " + who + ": no key was accepted. Tried: ";
  for (std::size_t i = 0; i < a.tried.size(); ++i) {
    msg += (i ? "; " : "") + a.tried[i];
  }
  if (!a.missing.empty()) {
    msg += ". Identity files not present: ";
    for (std::size_t i = 0; i < a.missing.size(); ++i) {
      msg += (i ? ", " : "") + a.missing[i];
    }
  }
  msg += ". Fix: install your public key on the host (`ssh-copy-id " + o.host_name +
         "`), load the right key into ssh-agent, or set IdentityFile for this host in ~/.ssh/config.";
  return SetupFailure{Kind::refused, msg, false};
}

} // namespace smcp::ssh
