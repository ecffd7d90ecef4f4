#include "sandbox/bwrap/profiles.h"

#include "sandbox/bwrap/launcher_program.h"
#include "sandbox/gpu/gpus.h"

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <sstream>
#include <stdexcept>

namespace smcp::sandbox {

Profile restrictive_profile() {
  Profile p;
  p.name = "restrictive";
  p.network = false;
  p.memory_mb = 512;
  p.cpu_seconds = 60;
  p.file_size_mb = 64;
  p.open_files = 128;
  p.clear_env = true;
  return p;
}

Profile standard_profile() {
  Profile p;
  p.name = "standard";
  return p;
}

Profile permissive_profile() {
  Profile p;
  p.name = "permissive";
  p.memory_mb = 4096;
  p.cpu_seconds = 600;
  p.file_size_mb = 1024;
  p.open_files = 1024;
  p.full_etc_var = true;
  p.gpu = true;
  return p;
}

namespace {

long env_long(const char* name, long fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) {
    return fallback;
  }
  char* end = nullptr;
  long n = std::strtol(v, &end, 10);
  return end && *end == '\0' && n >= 0 ? n : fallback;
}

} // namespace

ProfileSettings default_profile_settings() {
  ProfileSettings s;
  for (Profile p : {restrictive_profile(), standard_profile(), permissive_profile()}) {
    s.profiles[p.name] = p;
  }
  if (const char* b = std::getenv("SANDBOX_BWRAP_BIN"); b && *b) {
    s.bwrap = b;
  }
  if (const char* d = std::getenv("SANDBOX_DEFAULT_PROFILE"); d && *d) {
    s.default_profile = d;
  }
  if (const char* w = std::getenv("SANDBOX_WORK_DIR"); w && *w) {
    s.work_root = w;
  }
  s.max_concurrent = static_cast<int>(env_long("SANDBOX_MAX_CONCURRENT", 0));
  s.default_timeout_seconds = env_long("DEFAULT_TIMEOUT_SECONDS", 0);
  return s;
}

namespace {

long unlimited_if_zero(long v) {
  return v > 0 ? v : std::numeric_limits<long>::max();
}

bool subset(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  return std::all_of(a.begin(), a.end(), [&](const auto& x) { return std::find(b.begin(), b.end(), x) != b.end(); });
}

bool gpus_within(const Profile& a, const Profile& c) {
  if (!a.gpu) {
    return true;
  }
  if (!c.gpu || a.gpu_dev_dir != c.gpu_dev_dir) {
    return false;
  }
  if (c.gpus == "all") {
    return true;
  }
  if (a.gpus == "all") {
    return false;
  }
  const std::vector<int> mine = split_indices(a.gpus);
  const std::vector<int> theirs = split_indices(c.gpus);
  return std::all_of(mine.begin(), mine.end(),
                     [&](int i) { return std::find(theirs.begin(), theirs.end(), i) != theirs.end(); });
}

// The NVIDIA nodes of a gpu profile (after --dev /dev, which they go into), present or not.
void add_gpu_binds(const Profile& p, std::vector<std::string>& a) {
  const std::string& d = p.gpu_dev_dir;
  for (const char* node : {"nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset", "nvidia-caps"}) {
    a.insert(a.end(), {"--dev-bind-try", d + "/" + node, std::string("/dev/") + node});
  }
  std::vector<int> indices;
  if (p.gpus == "all") {
    for (int i = 0; i <= k_max_gpu_index; ++i) {
      indices.push_back(i);
    }
  } else {
    indices = split_indices(p.gpus);
  }
  for (int i : indices) {
    const std::string n = "nvidia" + std::to_string(i);
    a.insert(a.end(), {"--dev-bind-try", d + "/" + n, "/dev/" + n});
  }
  a.insert(a.end(), {"--ro-bind-try", "/sys", "/sys"});
  if (p.gpus != "all") {
    a.insert(a.end(), {"--setenv", "CUDA_VISIBLE_DEVICES", join_indices(indices)});
  }
}

void add_limits(const Profile& p, std::vector<std::string>& a) {
  a.push_back("prlimit");
  if (p.memory_mb > 0 && !p.gpu) {
    a.push_back("--as=" + std::to_string(p.memory_mb * 1024 * 1024));
  }
  if (p.cpu_seconds > 0) {
    a.push_back("--cpu=" + std::to_string(p.cpu_seconds) + ":" + std::to_string(p.cpu_seconds + 5));
  }
  if (p.file_size_mb > 0) {
    a.push_back("--fsize=" + std::to_string(p.file_size_mb * 1024 * 1024));
  }
  if (p.open_files > 0) {
    a.push_back("--nofile=" + std::to_string(p.open_files) + ":" + std::to_string(p.open_files));
  }
  a.push_back("--");
}

// The system, read-only (merged-/usr and classic layouts alike), and what of /etc the profile shows.
void add_system(const Profile& p, std::vector<std::string>& a) {
  for (const char* dir : {"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/opt"}) {
    a.insert(a.end(), {"--ro-bind-try", dir, dir});
  }
  if (p.full_etc_var) {
    a.insert(a.end(), {"--ro-bind", "/etc", "/etc", "--ro-bind-try", "/var", "/var"});
  } else {
    // What programs need from /etc, and no more (no shadow, no ssh keys, no host configs).
    for (const char* f :
         {"/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d",
          "/etc/alternatives", "/etc/localtime", "/etc/bash.bashrc", "/etc/profile", "/etc/mime.types"}) {
      a.insert(a.end(), {"--ro-bind-try", f, f});
    }
    if (p.network) {
      for (const char* f : {"/etc/resolv.conf", "/etc/hosts", "/etc/host.conf", "/etc/ssl", "/etc/ca-certificates",
                            "/etc/ca-certificates.conf", "/etc/gai.conf", "/etc/protocols", "/etc/services"}) {
        a.insert(a.end(), {"--ro-bind-try", f, f});
      }
    }
  }
  for (const auto& m : p.ro_mounts) {
    a.insert(a.end(), {"--ro-bind-try", m, m});
  }
}

bool is_alnum(unsigned char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
}

bool is_name(const std::string& k) {
  if (k.empty() || (k[0] >= '0' && k[0] <= '9')) {
    return false;
  }
  return std::all_of(k.begin(), k.end(), [](char ch) { return is_alnum(static_cast<unsigned char>(ch)) || ch == '_'; });
}

} // namespace

bool at_least_as_strict(const Profile& a, const Profile& c) {
  const auto memory = [](const Profile& p) { return p.gpu ? unlimited_if_zero(0) : unlimited_if_zero(p.memory_mb); };
  return (!a.network || c.network) && memory(a) <= memory(c) &&
         unlimited_if_zero(a.cpu_seconds) <= unlimited_if_zero(c.cpu_seconds) &&
         unlimited_if_zero(a.file_size_mb) <= unlimited_if_zero(c.file_size_mb) &&
         unlimited_if_zero(a.open_files) <= unlimited_if_zero(c.open_files) && (a.clear_env || !c.clear_env) &&
         (!a.full_etc_var || c.full_etc_var) && (!a.cwd_writable || c.cwd_writable) &&
         subset(a.ro_mounts, c.ro_mounts) && gpus_within(a, c);
}

std::string encode_env(const std::vector<std::pair<std::string, std::string>>& env) {
  static const char* digits = "01234567";
  std::string out;
  for (const auto& [k, v] : env) {
    if (!is_name(k)) {
      throw std::invalid_argument("environment variable name '" + k +
                                  "' cannot be given to a profiled command: use letters, digits and _ (not "
                                  "starting with a digit)");
    }
    if (v.find('\0') != std::string::npos) {
      throw std::invalid_argument("the value of environment variable " + k + " contains a NUL byte");
    }
    out += (out.empty() ? "" : " ") + k + "=";
    for (unsigned char ch : v) {
      if (is_alnum(ch) || (ch != 0 && std::strchr("_./:,+@-", ch))) {
        out += static_cast<char>(ch);
      } else {
        out += {'\\', '0', digits[ch >> 6], digits[(ch >> 3) & 7], digits[ch & 7]};
      }
    }
  }
  return out;
}

// The mounts and switches in the order bwrap applies them.
std::vector<std::string> profile_launcher(const Profile& p, const std::string& bwrap, const std::string& work_dir,
                                          bool cwd_given, const HostSupport& host,
                                          const std::vector<std::string>& protect) {
  std::vector<std::string> a;
  if (!host.setpriv.empty()) {
    a = {host.setpriv, "--pdeathsig", "KILL", "--"};
  }
  const std::string root = work_dir.substr(0, work_dir.rfind('/'));
  const char* mode = !cwd_given ? "none" : p.cwd_writable ? "rw" : "ro";
  a.insert(a.end(), {"/bin/sh", "-c", k_launcher_program, "sh", root, work_dir, mode});
  a.insert(a.end(), protect.begin(), protect.end());
  a.push_back("--");
  add_limits(p, a);
  a.push_back(bwrap);
  add_system(p, a);
  a.insert(a.end(), {"--tmpfs", "/tmp", "--bind", work_dir, "/work"});
  if (p.clear_env) {
    a.insert(a.end(), {"--clearenv", "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin", "--setenv", "HOME", "/work",
                       "--setenv", "LANG", "C.UTF-8"});
  }
  // The launcher's file: the cwd's mount (--ro-bind-fd 7 CWD) and --chdir, then the call's
  // --setenv. The cwd comes after /tmp (a cwd under /tmp stays visible) and before /proc and
  // /dev, which win over it (the launcher refuses a cwd that holds them anyway).
  a.insert(a.end(), {"--args", "8"});
  if (host.bind_proc) {
    // Inside a container that masks /proc, no new one can be mounted: the container's, read-only,
    // in the container's PID namespace; the own user namespace keeps the other processes' /proc
    // entries (environ, root, fd) out of reach.
    a.insert(a.end(), {"--ro-bind", "/proc", "/proc"});
  } else {
    a.insert(a.end(), {"--proc", "/proc"});
  }
  a.insert(a.end(), {"--dev", "/dev"});
  if (p.gpu) {
    add_gpu_binds(p, a);
  }
  if (host.bind_proc) {
    a.insert(a.end(), {"--unshare-user"});
  } else {
    a.insert(a.end(), {"--unshare-user-try", "--unshare-pid"});
  }
  a.insert(a.end(), {"--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"});
  if (!p.network) {
    a.push_back("--unshare-net");
  }
  a.insert(a.end(), {"--die-with-parent", "--"});
  return a;
}

std::string limit_hit(const Profile& p, std::optional<int> signal, std::optional<int> exit_code, const std::string& err,
                      long) {
  // The soft CPU limit (SIGXCPU's default action ends the process); bwrap's init reports a signal
  // its child died of as the exit status 128 + N.
  if (signal == SIGXCPU || exit_code == 128 + SIGXCPU) {
    return p.cpu_seconds > 0 ? "cpu" : "";
  }
  if (signal == SIGXFSZ || exit_code == 128 + SIGXFSZ || err.find("File size limit exceeded") != std::string::npos ||
      err.find("File too large") != std::string::npos) {
    return p.file_size_mb > 0 ? "file_size" : "";
  }
  if (p.memory_mb > 0 &&
      (err.find("Cannot allocate memory") != std::string::npos || err.find("MemoryError") != std::string::npos ||
       err.find("bad_alloc") != std::string::npos || err.find("out of memory") != std::string::npos)) {
    return "memory";
  }
  if (p.open_files > 0 && err.find("Too many open files") != std::string::npos) {
    return "open_files";
  }
  return {};
}

std::vector<std::string> bwrap_probe_argv(const std::string& bwrap, bool container) {
  return {"/bin/sh", "-c", k_probe_program, "sh", bwrap, container ? "1" : "0"};
}

HostSupport parse_probe(const std::string& out) {
  HostSupport h;
  std::istringstream in(out);
  for (std::string word; in >> word;) {
    if (word == "proc=bind") {
      h.bind_proc = true;
    } else if (word == "fd=1") {
      h.fd_binds = true;
    } else if (word.rfind("setpriv=/", 0) == 0) {
      h.setpriv = word.substr(8);
    }
  }
  return h;
}

std::string bwrap_problem(int status, const std::string& err, const std::string& host) {
  if (status == 127) {
    return "bubblewrap (bwrap) is not installed on " + host +
           ": apt-get install bubblewrap (or set SANDBOX_BWRAP_BIN); commands are never run unconfined instead";
  }
  if (status == 126) {
    return "prlimit (util-linux) is not installed on " + host + ": apt-get install util-linux";
  }
  std::string why = err.substr(0, 300);
  if (err.find("proc") != std::string::npos && err.find("Operation not permitted") != std::string::npos) {
    return "bubblewrap cannot mount /proc on " + host + " (" + why +
           "): /proc is masked there. Inside a container (podman, docker: /run/.containerenv, /.dockerenv or "
           "$container) profiles bind the container's own /proc instead; this host does not look like one. Do not "
           "unmask /proc (`--security-opt unmask=/proc/*` also unmasks /proc/sys); commands are never run unconfined "
           "instead";
  }
  if (err.find("namespace") != std::string::npos || err.find("Operation not permitted") != std::string::npos) {
    return "bubblewrap cannot create namespaces on " + host + " (" + why +
           "): user namespaces are not allowed there (sysctl kernel.unprivileged_userns_clone=1 / "
           "user.max_user_namespaces > 0, or run as root); commands are never run unconfined instead";
  }
  return "bubblewrap does not work on " + host + ": " + (why.empty() ? "exit status " + std::to_string(status) : why);
}

std::vector<std::string> sweep_argv(const std::string& work_root) {
  return {"/bin/sh", "-c", k_sweep_program, "sh", work_root};
}

} // namespace smcp::sandbox
