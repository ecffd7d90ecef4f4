// bubblewrap execution profiles (restrictive / standard / permissive and named ones from the
// config): what a confined command may see and use, turned into a launcher argv put before
// `bash -c COMMAND` on any host (exec::CommandSpec::launcher):
//   [setpriv --pdeathsig KILL --]                                  (the launcher dies with its supervisor)
//   /bin/sh -c LAUNCHER sh ROOT WORKDIR CWD_MODE FILTER PROTECTED... --  (a fixed program; values are arguments)
//   prlimit --as=... --cpu=S:S+5 --fsize=... --nofile=N:N --        (setrlimit in the child, then exec)
//   bwrap --ro-bind /usr /usr ... --bind WORKDIR /work --args 8 --proc /proc ... --seccomp 5 --die-with-parent --
// The fixed program (launcher_program.h) checks the working directory on the host, makes and
// later deletes the work directory, and hands bwrap the cwd mount and the call's environment
// through `--args 8` (a 0600 file, unlinked once open), so that no value is on a command line,
// and the seccomp filter (FILTER, unix_socket_filter octal-escaped; `-` for none) as fd 5.
// Nothing is a shell string built from untrusted pieces. See docs/profiles.md.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace smcp::sandbox {

struct Profile {
  std::string name;
  bool network = true;
  long memory_mb = 1024;              // address space (RLIMIT_AS); 0: no limit
  long cpu_seconds = 300;             // RLIMIT_CPU (soft; the hard limit is 5 s later); 0: no limit
  long file_size_mb = 256;            // RLIMIT_FSIZE; 0: no limit
  long open_files = 512;              // RLIMIT_NOFILE; 0: no limit
  bool clear_env = false;             // only PATH, HOME (the work directory) and LANG
  bool full_etc_var = false;          // /etc and /var read-only, not only the few files programs need
  std::vector<std::string> ro_mounts; // more read-only binds (host path = sandbox path), when present
  // The call's cwd is bound read-only unless this is set: a writable cwd chosen by the caller (its
  // home, /) would let a confined command plant files that later run unconfined.
  bool cwd_writable = false;
  // GPUs: --dev-bind the NVIDIA device nodes (/dev/nvidiactl, nvidia-uvm*, nvidia-modeset,
  // nvidia-caps and /dev/nvidiaN for each of `gpus`: "all" or indices "0,2", which also become
  // CUDA_VISIBLE_DEVICES), and /sys read-only. No RLIMIT_AS then: CUDA reserves tens of GB of
  // address space. Off in restrictive and standard, on in permissive.
  bool gpu = false;
  std::string gpus = "all";
  std::string gpu_dev_dir = "/dev"; // where the nodes are on the host (tests: fake ones elsewhere)
  // Unix sockets: off (the default, every built-in), a seccomp filter makes socket(AF_UNIX) fail
  // with EACCES (unix_socket_filter), so a socket the command can see (under its cwd, abstract
  // ones of the host's network namespace) cannot reach a tmux server, an ssh-agent or a daemon
  // that runs code outside. On: no filter.
  bool unix_sockets = false;
};

constexpr int k_max_gpu_index = 31; // "all" binds /dev/nvidia0 .. /dev/nvidia31 when present

// The original worker's defaults.
Profile restrictive_profile();
Profile standard_profile();
Profile permissive_profile();

// True when `a` gives a command nothing that `ceiling` does not: no network where it has none,
// limits at most its limits, a cleared environment where it clears it, no more of /etc, mounts,
// GPUs or cwd writes. restrictive is at least as strict as standard, standard as permissive.
// (A field added to Profile must be added here.)
bool at_least_as_strict(const Profile& a, const Profile& ceiling);

struct ProfileSettings {
  std::map<std::string, Profile> profiles; // by name: the three built-ins, then the config's
  std::string default_profile;             // applied when a call names none (SANDBOX_DEFAULT_PROFILE); empty: none
  std::map<std::string, std::string> host_default; // per host (config hosts[].profile)
  // The configured profile (the host's, else the default) is a ceiling: a call may name another
  // profile only when it is at least as strict, or listed here (config allowed_profiles, and
  // hosts[].allowed_profiles, which replaces it for that host).
  std::vector<std::string> allowed;
  std::map<std::string, std::vector<std::string>> host_allowed;
  // Paths on this machine a cwd must not contain (the config file); with each host's own list
  // (its home's secrets, our state, jobs and work directories), see launcher_program.h.
  std::vector<std::string> local_protected;
  std::string bwrap = "bwrap";                     // SANDBOX_BWRAP_BIN
  std::string work_root = "/tmp/sandbox-mcp-work"; // SANDBOX_WORK_DIR: per-execution work directories under it
  int max_concurrent = 0;           // SANDBOX_MAX_CONCURRENT: profiled foreground runs at once; 0: no limit
  long default_timeout_seconds = 0; // DEFAULT_TIMEOUT_SECONDS for profiled runs; 0: the tool's default
};

// The built-ins, with SANDBOX_BWRAP_BIN, SANDBOX_DEFAULT_PROFILE, SANDBOX_MAX_CONCURRENT,
// DEFAULT_TIMEOUT_SECONDS and SANDBOX_WORK_DIR read from the environment.
ProfileSettings default_profile_settings();

// What a host's bubblewrap can do (bwrap_probe_script's answer).
struct HostSupport {
  bool bind_proc = false;    // a container that masks /proc: bind its /proc read-only, no new PID namespace
  bool fd_binds = false;     // --ro-bind-fd / --bind-fd (bubblewrap 0.5+): needed for a cwd
  std::string setpriv;       // setpriv's path there (the launcher then dies with its supervisor), or empty
  bool seccomp = false;      // bwrap loaded unix_socket_filter (--seccomp) and ran a command under it
  std::string arch;          // `uname -m` there
  std::string seccomp_error; // why the filter could not be loaded (the probe's stderr)
};

// The seccomp filter of a profile without unix_sockets: classic BPF (struct sock_filter[], little
// endian) as bwrap's --seccomp reads it. On x86_64 and aarch64: socket(AF_UNIX, ...) fails with
// EACCES; socketpair stays allowed for SOCK_STREAM and SOCK_SEQPACKET (a datagram pair could be
// aimed at a path with sendto) and fails with EACCES otherwise; io_uring_setup fails with ENOSYS
// (an io_uring can make sockets without socket()); everything else is allowed. Any other
// architecture (i386 or arm32 compat calls, x32 calls on x86_64) kills the process.
std::string unix_socket_filter();
// Every byte as \0NNN (printf %b), as the launcher and the probe take the filter.
std::string octal_escape(const std::string& bytes);

// The call's environment as the launcher takes it: one variable (k_env_variable) holding
// `NAME=ESCAPED NAME=ESCAPED ...`, every byte of a value but [A-Za-z0-9_./:,+@-] written as \0NNN
// (printf %b). Throws std::invalid_argument for a name that is not [A-Za-z_][A-Za-z0-9_]* or a
// value holding a NUL byte.
constexpr const char* k_env_variable = "SMCP_PROFILE_ENV";
std::string encode_env(const std::vector<std::pair<std::string, std::string>>& env);

// The launcher for `profile`. `work_dir` is this execution's directory on the host (made by the
// launcher, deleted when the command ends); `cwd_given`: the launcher starts in the call's cwd
// (the supervisor changed to it), checks it and binds it (writable only when the profile says);
// `protect`: more host paths the cwd must not contain (see launcher_program.h).
// The call's environment goes in k_env_variable (encode_env), set for the launcher by the host,
// and reaches the command only, through bwrap's --args: never the launcher's own environment
// (PATH or LD_PRELOAD from a call must not choose which prlimit or bwrap runs), never argv.
std::vector<std::string> profile_launcher(const Profile& profile, const std::string& bwrap, const std::string& work_dir,
                                          bool cwd_given, const HostSupport& host,
                                          const std::vector<std::string>& protect = {});

// Which limit ended a command, when one did: "cpu", "file_size", "memory" or "open_files"; empty
// otherwise. From how it ended (SIGXCPU, SIGXFSZ, SIGKILL at the hard CPU limit) and what it said.
std::string limit_hit(const Profile& profile, std::optional<int> signal, std::optional<int> exit_code,
                      const std::string& stderr_text, long cpu_ms_used_hint = -1);

// What the launcher prints (then exit status 125) when it refuses a cwd.
constexpr const char* k_refused_prefix = "sandbox-mcp: refused cwd";

// Checks that bwrap and prlimit work on a host: the argv of a program that runs a tiny confined
// `true` (a new /proc; else, in a container or when `container` is set, the container's /proc),
// then one under unix_socket_filter, and prints "proc=new|bind fd=0|1 setpriv=PATH seccomp=0|1
// arch=ARCH" (with why the filter failed on stderr). Exit 127: no bwrap; 126: no prlimit.
std::vector<std::string> bwrap_probe_argv(const std::string& bwrap, bool container);
HostSupport parse_probe(const std::string& out);
// What to tell the user when the probe failed (status 127: not installed; else unusable).
std::string bwrap_problem(int status, const std::string& stderr_text, const std::string& host);
// What to tell the user when a profile without unix_sockets cannot run because the filter could
// not be loaded there.
std::string seccomp_problem(const HostSupport& support, const std::string& host);

// Deletes the work directories under `work_root` on a host that no launcher holds (a launcher
// killed with SIGKILL leaves its own): only directories named exec-* owned by us, not links,
// older than a minute, each under its lock (flock) so a running one is never touched.
std::vector<std::string> sweep_argv(const std::string& work_root);

} // namespace smcp::sandbox
