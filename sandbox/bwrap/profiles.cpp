#include "sandbox/bwrap/profiles.h"

#include "sandbox/bwrap/launcher_program.h"
#include "sandbox/gpu/gpus.h"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <map>
#include <sstream>
#include <stdexcept>
#include <sys/socket.h>

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
  for (const Profile& p : {restrictive_profile(), standard_profile(), permissive_profile()}) {
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
    a.insert(a.end(), {"--dev-bind-try", std::string(d).append("/").append(n), "/dev/" + n});
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
         (!a.unix_sockets || c.unix_sockets) && subset(a.ro_mounts, c.ro_mounts) && gpus_within(a, c);
}

namespace {

// A classic BPF program with named jump targets, as little-endian struct sock_filter bytes.
class Bpf {
public:
  void label(const std::string& name) { m_labels[name] = m_code.size(); }
  void stmt(std::uint16_t code, std::uint32_t k) { m_code.push_back({code, {}, {}, k}); }
  // Jumps to `yes` when the test holds, else to `no`; an empty name is the next instruction.
  void jump(std::uint16_t code, std::uint32_t k, const std::string& yes, const std::string& no = {}) {
    m_code.push_back({code, yes, no, k});
  }
  std::string bytes() const {
    std::string out;
    for (std::size_t i = 0; i < m_code.size(); ++i) {
      const Insn& in = m_code[i];
      const auto offset = [&](const std::string& name) -> unsigned char {
        const std::size_t to = name.empty() ? i + 1 : m_labels.at(name);
        if (to <= i || to - i - 1 > 255) {
          throw std::logic_error("bpf: bad jump to " + name);
        }
        return static_cast<unsigned char>(to - i - 1);
      };
      out += {static_cast<char>(in.code & 0xff), static_cast<char>(in.code >> 8)};
      out += static_cast<char>(in.yes.empty() && in.no.empty() ? 0 : offset(in.yes));
      out += static_cast<char>(in.yes.empty() && in.no.empty() ? 0 : offset(in.no));
      for (int shift = 0; shift < 32; shift += 8) {
        out += static_cast<char>((in.k >> shift) & 0xff);
      }
    }
    return out;
  }

private:
  struct Insn {
    std::uint16_t code;
    std::string yes, no;
    std::uint32_t k;
  };
  std::vector<Insn> m_code;
  std::map<std::string, std::size_t> m_labels;
};

// Syscall numbers of the target architectures (not this build's <sys/syscall.h>: the filter runs
// on SSH hosts too).
constexpr std::uint32_t k_x86_64_socket = 41, k_x86_64_socketpair = 53;
constexpr std::uint32_t k_aarch64_socket = 198, k_aarch64_socketpair = 199;
constexpr std::uint32_t k_io_uring_setup = 425; // the same on both
constexpr std::uint32_t k_x32_bit = 0x40000000; // __X32_SYSCALL_BIT
// struct seccomp_data: nr at 0, arch at 4, args[i] at 16 + 8 i (their low 32 bits first, little endian).
constexpr std::uint32_t k_nr = 0, k_arch = 4, k_arg0 = 16, k_arg1 = 24;

} // namespace

std::string unix_socket_filter() {
  constexpr std::uint16_t ld = BPF_LD | BPF_W | BPF_ABS, jeq = BPF_JMP | BPF_JEQ | BPF_K,
                          jge = BPF_JMP | BPF_JGE | BPF_K, ret = BPF_RET | BPF_K, andk = BPF_ALU | BPF_AND | BPF_K;
  Bpf b;
  b.stmt(ld, k_arch);
  b.jump(jeq, AUDIT_ARCH_X86_64, "x86_64");
  b.jump(jeq, AUDIT_ARCH_AARCH64, "aarch64", "kill");
  b.label("x86_64");
  b.stmt(ld, k_nr);
  b.jump(jge, k_x32_bit, "kill");
  b.jump(jeq, k_x86_64_socket, "socket");
  b.jump(jeq, k_x86_64_socketpair, "socketpair");
  b.jump(jeq, k_io_uring_setup, "enosys", "allow");
  b.label("aarch64");
  b.stmt(ld, k_nr);
  b.jump(jeq, k_aarch64_socket, "socket");
  b.jump(jeq, k_aarch64_socketpair, "socketpair");
  b.jump(jeq, k_io_uring_setup, "enosys", "allow");
  b.label("socket"); // socket(domain, type, protocol): the kernel reads domain as an int
  b.stmt(ld, k_arg0);
  b.jump(jeq, AF_UNIX, "eacces", "allow");
  b.label("socketpair"); // socketpair(domain, type, ...): the type without SOCK_NONBLOCK / SOCK_CLOEXEC
  b.stmt(ld, k_arg1);
  b.stmt(andk, 0xf);
  b.jump(jeq, SOCK_STREAM, "allow");
  b.jump(jeq, SOCK_SEQPACKET, "allow", "eacces");
  b.label("allow");
  b.stmt(ret, SECCOMP_RET_ALLOW);
  b.label("eacces");
  b.stmt(ret, SECCOMP_RET_ERRNO | EACCES);
  b.label("enosys");
  b.stmt(ret, SECCOMP_RET_ERRNO | ENOSYS);
  b.label("kill");
  b.stmt(ret, SECCOMP_RET_KILL_PROCESS);
  return b.bytes();
}

std::string octal_escape(const std::string& bytes) {
  static const char* digits = "01234567";
  std::string out;
  for (unsigned char ch : bytes) {
    out += {'\\', '0', digits[ch >> 6], digits[(ch >> 3) & 7], digits[ch & 7]};
  }
  return out;
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
  const std::string filter = p.unix_sockets ? "-" : octal_escape(unix_socket_filter());
  a.insert(a.end(), {"/bin/sh", "-c", k_launcher_program, "sh", root, work_dir, mode, filter});
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
  if (!p.unix_sockets) {
    a.insert(a.end(), {"--seccomp", "5"}); // the launcher opens the filter there
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
  return {"/bin/sh", "-c", k_probe_program, "sh", bwrap, container ? "1" : "0", octal_escape(unix_socket_filter())};
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
    } else if (word == "seccomp=1") {
      h.seccomp = true;
    } else if (word.rfind("arch=", 0) == 0) {
      h.arch = word.substr(5);
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

std::string seccomp_problem(const HostSupport& support, const std::string& host) {
  std::string m = "bubblewrap on " + host +
                  " could not load the seccomp filter that keeps confined commands off Unix sockets (bwrap --seccomp";
  if (!support.arch.empty()) {
    m += "; architecture " + support.arch;
  }
  m += ")";
  std::string w = support.seccomp_error.substr(0, 300);
  while (!w.empty() && (w.back() == '\n' || w.back() == ' ')) {
    w.pop_back();
  }
  if (!w.empty()) {
    m += ": " + w;
  }
  return m + ". Without it a confined command could connect to a tmux server, an ssh-agent or a daemon's socket and "
             "run code unconfined, so it is not run. The filter needs a kernel with seccomp filters, x86_64 or "
             "aarch64, and a bwrap with --seccomp (every release since 0.1); a profile with \"unix_sockets\": true "
             "runs without it";
}

std::vector<std::string> sweep_argv(const std::string& work_root) {
  return {"/bin/sh", "-c", k_sweep_program, "sh", work_root};
}

} // namespace smcp::sandbox
