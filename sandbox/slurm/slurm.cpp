#include "sandbox/slurm/slurm.h"

#include "sandbox/container/runtime.h"
#include "sandbox/exec/quote.h"
#include "sandbox/host_commands.h"
#include "sandbox/registry.h"

#include <sstream>

namespace smcp::sandbox {

std::vector<std::string> required_slurm_tools() {
  return {"srun", "sattach", "scancel", "sbatch", "squeue"};
}

std::vector<std::string> missing_tools_argv(const std::vector<std::string>& tools) {
  std::vector<std::string> a = {"sh", "-c",
                                "for t in \"$@\"; do command -v \"$t\" >/dev/null 2>&1 || echo \"$t\"; done", "sh"};
  a.insert(a.end(), tools.begin(), tools.end());
  return a;
}

namespace {

// The original's search order, doing `act` with the first found ($w), then the shipped copy ($2).
// Only absolute PATH entries: an empty or relative one is the current directory, and a batch job's
// could be anyone's.
std::string search_script(const std::string& act, const std::string& otherwise) {
  return "r=$1; s=$2; shift 2; for w in \"$r/podman-srun\" \"$r/sandbox/podman-srun\"; do "
         "[ -n \"$r\" ] && [ -f \"$w\" ] && [ -x \"$w\" ] && " +
         act +
         "; done; set -f; IFS=:; for d in $PATH; do w=$d/podman-srun; "
         "case $d in /*) [ -f \"$w\" ] && [ -x \"$w\" ] && " +
         act + ";; esac; done; w=$s; case $w in /*) [ -f \"$w\" ] && [ -x \"$w\" ] && " + act + ";; esac; " + otherwise;
}

} // namespace

std::vector<std::string> find_wrapper_argv(const std::string& repo, const std::string& shipped) {
  return {"sh", "-c", search_script("{ echo \"$w\"; exit 0; }", "exit 0"), "sh", repo, shipped};
}

std::vector<std::string> wrapper_argv(const std::string& repo, const std::string& shipped) {
  return {"/bin/sh",
          "-c",
          search_script("exec \"$w\" \"$@\"", "echo \"podman-srun not found in $r, $r/sandbox, PATH${s:+ or $s} "
                                              "on $(hostname): the node must see one of them\" >&2; exit 127"),
          "podman-srun",
          repo,
          shipped};
}

std::string wrapper_not_found(const std::string& repo, const std::string& host, const std::string& shipped) {
  return "podman-srun wrapper script not found (searched " + repo + "/podman-srun, " + repo +
         "/sandbox/podman-srun, PATH" +
         (shipped.empty() ? "" : " and " + shipped + " (the copy shipped with sandbox-mcp)") + " on " + host +
         "); the compute nodes run it too, so put it where they see the same path: copy sandbox/podman-srun from "
         "sandbox-mcp into the repository (on the shared filesystem the nodes mount) or into a PATH directory on "
         "every node, or install sandbox-mcp on a shared filesystem (see docs/slurm.md)";
}

std::string slurm_marker(const std::string& repo, const std::string& row_uid) {
  const std::string name = container_name(repo, "x"); // smcp-HASH-x
  return "sandbox-mcp repo=" + name.substr(5, name.size() - 7) + " row=" + row_uid;
}

std::vector<std::string> sbatch_argv(const SlurmOptions& o, const std::string& job_name, const std::string& work_dir,
                                     const std::string& output, const std::string& repo, const std::string& marker,
                                     const std::vector<std::string>& podman_run, bool export_github_token) {
  std::vector<std::string> a = {"sbatch", "--parsable", "--job-name=" + job_name, "--chdir=" + work_dir,
                                "--output=" + output, "--comment=" + marker,
                                // Never requeued: a job that ran and shows PENDING again would look like
                                // one no agent ever used (rm skips the work check for those).
                                "--no-requeue",
                                export_github_token ? "--export=PATH,GITHUB_TOKEN,PODMAN_SRUN_GPU_DEV_DIR"
                                                    : "--export=PATH,PODMAN_SRUN_GPU_DEV_DIR"};
  if (!o.partition.empty()) {
    a.push_back("--partition=" + o.partition);
  }
  if (!o.time_limit.empty()) {
    a.push_back("--time=" + o.time_limit);
  }
  if (o.cpus > 0) {
    a.push_back("--cpus-per-task=" + std::to_string(o.cpus));
  }
  if (!o.mem.empty()) {
    a.push_back("--mem=" + o.mem);
  }
  if (!o.gres.empty()) {
    a.push_back("--gres=" + o.gres);
  }
  a.insert(a.end(), o.sbatch_args.begin(), o.sbatch_args.end());
  std::string wrap = "exec";
  for (const auto& word : wrapper_argv(repo, o.shipped_wrapper)) {
    wrap += " " + exec::sh_quote(word);
  }
  for (const auto& word : podman_run) {
    wrap += " " + exec::sh_quote(word);
  }
  a.push_back("--wrap=" + wrap);
  return a;
}

std::vector<std::string> srun_podman_argv(const std::string& job, const std::string& repo,
                                          const std::vector<std::string>& podman_args, bool pty,
                                          const std::string& shipped) {
  std::vector<std::string> a = {"srun", "--jobid=" + job, "--overlap", "--quiet"};
  // --pty for a human; else --unbuffered: slurmstepd otherwise holds output back until a newline,
  // and binary protocols over the step (git's upload-pack) would wait for each other forever.
  a.push_back(pty ? "--pty" : "--unbuffered");
  // Never srun's default (ALL): the caller's whole environment would reach the step.
  a.push_back(pty ? "--export=PATH,TERM" : "--export=PATH");
  for (auto& word : wrapper_argv(repo, shipped)) {
    a.push_back(std::move(word));
  }
  a.push_back("podman");
  a.insert(a.end(), podman_args.begin(), podman_args.end());
  return a;
}

std::vector<std::string> marked_jobs_argv(const std::string& job_name) {
  return {"squeue", "-h", "--me", "-n", job_name, "-o", "%i|%k"};
}

std::vector<std::string> marked_jobs(const std::string& squeue_out, const std::string& marker) {
  std::vector<std::string> ids;
  for (const std::string& line : lines_of(squeue_out)) {
    const auto bar = line.find('|');
    if (bar == std::string::npos) {
      continue;
    }
    const std::string id = line.substr(0, bar);
    if (line.substr(bar + 1) == marker && !id.empty() && id.find_first_not_of("0123456789_") == std::string::npos) {
      ids.push_back(id);
    }
  }
  return ids;
}

// Removes $1 when it is a regular file; 3 when it or its directory is a link, or it is something else.
constexpr const char* k_remove_regular_file =
    "d=$(dirname -- \"$1\"); [ -L \"$d\" ] && exit 3; "
    "if [ -L \"$1\" ]; then exit 3; elif [ -f \"$1\" ]; then rm -f -- \"$1\"; elif [ -e \"$1\" ]; then exit 3; fi";

std::vector<std::string> remove_regular_file_argv(const std::string& path) {
  return {"sh", "-c", k_remove_regular_file, "sh", path};
}

SlurmJobState parse_squeue(const std::string& out) {
  SlurmJobState s;
  std::string line = trim(out.substr(0, out.find('\n')));
  std::istringstream in(line);
  std::getline(in, s.state, '|');
  std::getline(in, s.node, '|');
  std::getline(in, s.reason, '|');
  if (s.reason == "None") {
    s.reason.clear();
  }
  if (s.node == "(null)") {
    s.node.clear();
  }
  return s;
}

SlurmJobState parse_sacct(const std::string& out) {
  SlurmJobState s;
  std::string line = trim(out.substr(0, out.find('\n')));
  std::istringstream in(line);
  std::getline(in, s.state, '|');
  std::getline(in, s.node, '|');
  s.state = s.state.substr(0, s.state.find(' ')); // "CANCELLED by 0"
  if (s.node == "None assigned") {
    s.node.clear();
  }
  return s;
}

SlurmJobState parse_scontrol(const std::string& out) {
  SlurmJobState s;
  auto field = [&](const std::string& key) {
    auto at = out.find(" " + key + "=");
    if (at == std::string::npos) {
      at = out.rfind(key + "=", 0) == 0 ? 0 : std::string::npos;
      if (at == std::string::npos) {
        return std::string();
      }
    } else {
      ++at;
    }
    auto start = at + key.size() + 1;
    return out.substr(start, out.find_first_of(" \n", start) - start);
  };
  s.state = field("JobState");
  s.node = field("NodeList");
  s.reason = field("Reason");
  if (s.node == "(null)") {
    s.node.clear();
  }
  if (s.reason == "None") {
    s.reason.clear();
  }
  return s;
}

SlurmJobState slurm_job_state(exec::RemoteExecutor& x, const std::string& job) {
  const std::chrono::milliseconds quick{30000};
  CommandOutcome q = run_argv(x, {"squeue", "-h", "-j", job, "-o", "%T|%N|%r"}, quick);
  if (q.ok() && !trim(q.out).empty()) {
    return parse_squeue(q.out);
  }
  if (!q.ok() && q.message().find("Invalid job id") == std::string::npos) {
    // Not "no such job in the queue": Slurm itself cannot be asked (controller down, bad config).
    // Nobody may conclude that the job is gone from that.
    throw SandboxError(SandboxError::Kind::failed, "cannot read Slurm's queue: " + q.message());
  }
  CommandOutcome a = run_argv(x, {"sacct", "-n", "-X", "-P", "-j", job, "-o", "State,NodeList"}, quick);
  if (a.ok() && !trim(a.out).empty()) {
    return parse_sacct(a.out);
  }
  CommandOutcome c = run_argv(x, {"scontrol", "show", "job", "-o", job}, quick);
  if (c.ok() && !trim(c.out).empty()) {
    return parse_scontrol(c.out);
  }
  SlurmJobState gone;
  gone.state = "UNKNOWN";
  gone.reason = "Slurm no longer knows job " + job + " (it ended a while ago, or was never there)";
  return gone;
}

} // namespace smcp::sandbox
