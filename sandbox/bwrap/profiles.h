// bubblewrap execution profiles (restrictive / standard / permissive and named ones from the
// config): what a confined command may see and use, turned into a launcher argv put before
// `bash -c COMMAND` on any host (exec::CommandSpec::launcher):
//   sh -c 'mkdir -p -- "$1" && shift && exec "$@"' sh WORKDIR      (a fixed program; values are arguments)
//   prlimit --as=... --cpu=S:S+5 --fsize=... --nofile=N:N --        (setrlimit in the child, then exec)
//   bwrap --ro-bind /usr /usr ... --bind WORKDIR /work --chdir /work --unshare-pid ... --die-with-parent --
// Nothing is a shell string built from untrusted pieces. See docs/profiles.md.
#pragma once

#include <map>
#include <optional>
#include <string>
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
};

constexpr int k_max_gpu_index = 31; // "all" binds /dev/nvidia0 .. /dev/nvidia31 when present

// The original worker's defaults.
Profile restrictive_profile();
Profile standard_profile();
Profile permissive_profile();

struct ProfileSettings {
  std::map<std::string, Profile> profiles; // by name: the three built-ins, then the config's
  std::string default_profile;             // applied when a call names none (SANDBOX_DEFAULT_PROFILE); empty: none
  std::map<std::string, std::string> host_default; // per host (config hosts[].profile)
  std::string bwrap = "bwrap";                     // SANDBOX_BWRAP_BIN
  std::string work_root = "/tmp/sandbox-mcp-work"; // SANDBOX_WORK_DIR: per-execution work directories under it
  int max_concurrent = 0;           // SANDBOX_MAX_CONCURRENT: profiled foreground runs at once; 0: no limit
  long default_timeout_seconds = 0; // DEFAULT_TIMEOUT_SECONDS for profiled runs; 0: the tool's default
};

// The built-ins, with SANDBOX_BWRAP_BIN, SANDBOX_DEFAULT_PROFILE, SANDBOX_MAX_CONCURRENT,
// DEFAULT_TIMEOUT_SECONDS and SANDBOX_WORK_DIR read from the environment.
ProfileSettings default_profile_settings();

// The launcher for `profile`; `work_dir` is this execution's directory on the host (made by the
// launcher), `cwd` (when not empty) is bound writable and becomes the working directory.
// `env` (the call's variables) is set inside bwrap only (--setenv), never for the launcher itself:
// PATH or LD_PRELOAD from a call must not choose which prlimit or bwrap runs.
std::vector<std::string> profile_launcher(const Profile& profile, const std::string& bwrap, const std::string& work_dir,
                                          const std::string& cwd,
                                          const std::vector<std::pair<std::string, std::string>>& env = {});

// Which limit ended a command, when one did: "cpu", "file_size", "memory" or "open_files"; empty
// otherwise. From how it ended (SIGXCPU, SIGXFSZ, SIGKILL at the hard CPU limit) and what it said.
std::string limit_hit(const Profile& profile, std::optional<int> signal, std::optional<int> exit_code,
                      const std::string& stderr_text, long cpu_ms_used_hint = -1);

// Checks that bwrap works on a host: the argv of a tiny confined `true`.
std::vector<std::string> bwrap_probe_argv(const std::string& bwrap);
// What to tell the user when the probe failed (status 127: not installed; else unusable).
std::string bwrap_problem(int status, const std::string& stderr_text, const std::string& host);

} // namespace smcp::sandbox
