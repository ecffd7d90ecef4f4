#include "sandbox/bwrap/profiles.h"

#include "sandbox/gpu/gpus.h"

#include <csignal>
#include <cstdlib>

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

// Long because it is the list of mounts and switches, in the order bwrap applies them.
std::vector<std::string> profile_launcher(const Profile& p, const std::string& bwrap, const std::string& work_dir,
                                          const std::string& cwd,
                                          const std::vector<std::pair<std::string, std::string>>& env) {
  // The work root must be ours (not another user's, not a link): made 0700 when missing.
  const std::string root = work_dir.substr(0, work_dir.rfind('/'));
  std::vector<std::string> a = {
      "/bin/sh",
      "-c",
      "umask 077; mkdir -p -- \"$1\" && [ -O \"$1\" ] && [ ! -L \"$1\" ] || { echo \"sandbox-mcp: work directory "
      "root $1 is not ours\" >&2; exit 125; }; mkdir -- \"$2\" || exit 125; shift 2; exec \"$@\"",
      "sh",
      root,
      work_dir,
      "prlimit"};
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
  a.push_back(bwrap);
  // The system, read-only; merged-/usr and classic layouts alike.
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
  a.insert(a.end(), {"--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--bind", work_dir, "/work"});
  if (p.gpu) {
    add_gpu_binds(p, a);
  }
  if (!cwd.empty()) {
    a.insert(a.end(), {p.cwd_writable ? "--bind" : "--ro-bind", cwd, cwd, "--chdir", cwd});
  } else {
    a.insert(a.end(), {"--chdir", "/work"});
  }
  a.insert(a.end(), {"--unshare-user-try", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"});
  if (!p.network) {
    a.push_back("--unshare-net");
  }
  if (p.clear_env) {
    a.insert(a.end(), {"--clearenv", "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin", "--setenv", "HOME", "/work",
                       "--setenv", "LANG", "C.UTF-8"});
  }
  for (const auto& [k, v] : env) {
    a.insert(a.end(), {"--setenv", k, v});
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

std::vector<std::string> bwrap_probe_argv(const std::string& bwrap) {
  // Under a shell that stays its parent: run as `podman exec`'s own process, bwrap's parent is a
  // runtime helper that exits, and --die-with-parent then SIGKILLs it (measured: 4 runs in 12).
  // Commands never meet this: their parent is the supervisor.
  std::vector<std::string> a = {"sh", "-c", "\"$@\"", "sh", bwrap};
  for (const char* w : {"--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--unshare-user-try",
                        "--unshare-pid", "--unshare-net", "--die-with-parent", "--", "true"}) {
    a.push_back(w);
  }
  return a;
}

std::string bwrap_problem(int status, const std::string& err, const std::string& host) {
  if (status == 127) {
    return "bubblewrap (bwrap) is not installed on " + host +
           ": apt-get install bubblewrap (or set SANDBOX_BWRAP_BIN); commands are never run unconfined instead";
  }
  std::string why = err.substr(0, 300);
  if (err.find("proc") != std::string::npos && err.find("Operation not permitted") != std::string::npos) {
    return "bubblewrap cannot mount /proc on " + host + " (" + why +
           "): inside a container it needs `--security-opt unmask=/proc/*` on the container";
  }
  if (err.find("namespace") != std::string::npos || err.find("Operation not permitted") != std::string::npos) {
    return "bubblewrap cannot create namespaces on " + host + " (" + why +
           "): user namespaces are not allowed there (sysctl kernel.unprivileged_userns_clone=1 / "
           "user.max_user_namespaces > 0, or run as root); commands are never run unconfined instead";
  }
  return "bubblewrap does not work on " + host + ": " + (why.empty() ? "exit status " + std::to_string(status) : why);
}

} // namespace smcp::sandbox
