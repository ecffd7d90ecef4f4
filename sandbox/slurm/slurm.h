// The Slurm backend's command lines and readings: a sandbox's container runs as a batch job
// (`sbatch --wrap "exec podman-srun podman run ..."`), commands go inside with
// `srun --jobid=J --overlap podman-srun podman exec -i C ...`, all run through a host's executor, so
// a login node reached over SSH works like this machine. Nothing of ours runs on compute nodes but
// the podman-srun wrapper (sandbox/podman-srun).
#pragma once

#include "sandbox/exec/remote_executor.h"

#include <chrono>
#include <string>
#include <vector>

namespace smcp::sandbox {

struct SlurmOptions {
  std::string partition;                           // --partition; empty: the cluster's default
  std::string time_limit;                          // --time (e.g. "8:00:00"); empty: the partition's default
  int cpus = 0;                                    // --cpus-per-task; 0: Slurm's default
  std::string mem;                                 // --mem (e.g. "16G"); empty: Slurm's default
  std::string gres;                                // --gres (e.g. "gpu:1"); empty: none
  std::vector<std::string> sbatch_args;            // added as they are
  std::chrono::milliseconds start_timeout{120000}; // how long `new` waits for the job to run
  // The podman-srun that ships with sandbox-mcp (next to the binary): the last place searched.
  std::string shipped_wrapper;
};

struct SlurmJobState {
  std::string state;  // PENDING, RUNNING, COMPLETING, COMPLETED, CANCELLED, FAILED, TIMEOUT, ...; UNKNOWN
  std::string node;   // where it runs (or ran)
  std::string reason; // why it is pending, when it is
  bool running() const { return state == "RUNNING"; }
  bool starting() const { return state == "PENDING" || state == "CONFIGURING"; } // queued, or its nodes boot
  bool active() const { return starting() || running(); }
  // Over for good: nothing can start it again (a requeued, held or suspended job is not).
  bool terminal() const {
    for (const char* s : {"COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL",
                          "DEADLINE", "UNKNOWN"}) {
      if (state == s) {
        return true;
      }
    }
    return false;
  }
};

// The tools `new -s` needs; the missing ones are named in the original's words:
// "Required Slurm tool(s) not found in PATH: srun, sattach, scancel".
std::vector<std::string> required_slurm_tools();
// A fixed program that prints the missing ones of `tools` (given as arguments), one per line.
std::vector<std::string> missing_tools_argv(const std::vector<std::string>& tools);

// Where the original looked for its wrapper, in order: REPO/podman-srun, REPO/sandbox/podman-srun,
// then PATH; then `shipped`, the copy that ships with sandbox-mcp (absolute; empty: none). A fixed
// program printing the first found (absolute), or nothing: `new`'s check on the submitting host.
std::vector<std::string> find_wrapper_argv(const std::string& repo, const std::string& shipped = "");
std::string wrapper_not_found(const std::string& repo, const std::string& host, const std::string& shipped = "");

// The wrapper as an argv prefix: a fixed `/bin/sh -c` that searches it in that order where it runs
// (on the node, each time) and execs it with the words that follow. A path read from a registry
// row is never run: a replaced registry could name any program. `repo`: the sandbox's repository
// (never its worktree, which the sandbox writes); empty: PATH only.
std::vector<std::string> wrapper_argv(const std::string& repo, const std::string& shipped = "");

// What ties a job to the sandbox row that submitted it: sbatch --comment, checked before rm cancels
// a job `new` submitted but did not record (it died between sbatch and the row's update).
// "sandbox-mcp repo=HASH row=UID": the repository's hash (as in container names) and the row's id.
std::string slurm_marker(const std::string& repo, const std::string& row_uid);

// `sbatch --parsable ... --comment=MARKER --wrap "exec WRAPPER podman run ..."`: each word of the
// podman command line is quoted for the job's shell, the wrapper found by wrapper_argv(repo). Only
// PATH, PODMAN_SRUN_GPU_DEV_DIR and (when asked) GITHUB_TOKEN are exported to the job.
std::vector<std::string> sbatch_argv(const SlurmOptions& o, const std::string& job_name, const std::string& work_dir,
                                     const std::string& output, const std::string& repo, const std::string& marker,
                                     const std::vector<std::string>& podman_run, bool export_github_token);

// `srun --jobid=J --overlap --quiet --unbuffered --export=PATH WRAPPER podman ARGS...` (--pty and
// --export=PATH,TERM for a human), the wrapper found by wrapper_argv(repo) on the node. The step
// never gets the caller's environment (API keys and the like) beyond those names.
std::vector<std::string> srun_podman_argv(const std::string& job, const std::string& repo,
                                          const std::vector<std::string>& podman_args, bool pty = false,
                                          const std::string& shipped = "");

// This user's queued or running jobs named `job_name`, as "ID|COMMENT" lines; marked_jobs() keeps
// the ids of those whose comment is exactly `marker`.
std::vector<std::string> marked_jobs_argv(const std::string& job_name);
std::vector<std::string> marked_jobs(const std::string& squeue_out, const std::string& marker);

// Removes `path` when it is a regular file (never what a link points to, never through a linked
// directory): status 0 removed or absent, 3 left alone (not a regular file, or its directory is a
// link).
std::vector<std::string> remove_regular_file_argv(const std::string& path);

// squeue, then sacct, then scontrol for a job that left the queue. Throws exec::HostError when
// the host cannot be reached.
SlurmJobState slurm_job_state(exec::RemoteExecutor& x, const std::string& job);

// Parses `squeue -h -o "%T|%N|%r"` / `sacct -n -X -P -o State,NodeList` / `scontrol show job -o`.
SlurmJobState parse_squeue(const std::string& out);
SlurmJobState parse_sacct(const std::string& out);
SlurmJobState parse_scontrol(const std::string& out);

} // namespace smcp::sandbox
