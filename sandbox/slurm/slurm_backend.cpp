// The Slurm backend's steps: the checks the original made (its error messages word for word),
// submitting the container as a batch job, waiting (bounded) until it runs, and removing it: scancel
// (of the recorded job, or of the one a dead `new` submitted, found by its marker), then making sure
// no container is left on the node (scancel alone leaves podman's running), and the job's output.
#include "sandbox/slurm/slurm_backend.h"

#include "sandbox/container/container_executor.h"
#include "sandbox/container/run_spec.h"
#include "sandbox/host_commands.h"

#include <sstream>
#include <thread>

namespace smcp::sandbox {

namespace {

using Kind = SandboxError::Kind;
constexpr auto k_quick = k_quick_step;

// The container's main process: tmux, then (with podman-srun's liveness pipe on fd 3) read it until
// EOF, which comes when the job's processes are gone however they died, even by SIGKILL: the
// container then ends with its job. Without the pipe (an older wrapper), sleep.
std::vector<std::string> job_command() {
  return {"sh", "-c",
          std::string("tmux new-session -d -s ") + k_tmux_session + " -c " + k_workspace +
              " -x 200 -y 50; if [ -p /dev/fd/3 ]; then exec cat <&3 >/dev/null 2>&1; fi; exec sleep infinity"};
}

// sbatch's --output: beside the sandbox's directory, in the directory only the manager writes
// (never inside what the sandbox writes). Empty when the row names no directory.
std::string output_of(const SandboxRow& row) {
  const auto slash = row.work_dir.rfind('/');
  if (row.work_dir.empty() || row.work_dir[0] != '/' || slash == std::string::npos || slash == 0) {
    return {};
  }
  return row.work_dir.substr(0, slash) + "/." + row.name + ".slurm.out";
}

// The job's output goes with the sandbox; only a regular file (never a link's target).
void remove_output(exec::RemoteExecutor& x, const std::string& output, std::vector<std::string>* notes) {
  if (output.empty()) {
    return;
  }
  CommandOutcome o = run_argv(x, remove_regular_file_argv(output), k_quick);
  if (!o.ok() && notes) {
    notes->push_back("left " + output + (o.status == 3 ? ": not a regular file" : ": " + o.message()));
  }
}

std::string check_slurm(exec::RemoteExecutor& x, const std::string& host, const std::string& repo,
                        const std::string& shipped_wrapper) {
  const std::vector<std::string> names = lines_of(run_argv(x, missing_tools_argv(required_slurm_tools()), k_quick).out);
  if (!names.empty()) {
    throw SandboxError(Kind::missing, "Required Slurm tool(s) not found in PATH: " + join(names, ", ") + " (on " +
                                          host + "; Debian: apt-get install slurm-client)");
  }
  std::string wrapper = trim(run_argv(x, find_wrapper_argv(repo, shipped_wrapper), k_quick).out);
  if (wrapper.empty()) {
    throw SandboxError(Kind::missing, wrapper_not_found(repo, host, shipped_wrapper));
  }
  return wrapper;
}

// `podman ARGS` for this sandbox on its host: through srun into its job and the wrapper.
std::vector<std::string> podman_for(const SandboxRow& row, std::vector<std::string> runtime_argv,
                                    const std::string& shipped_wrapper) {
  if (row.slurm_job_id.empty() || runtime_argv.empty()) {
    return runtime_argv;
  }
  // The wrapper is found again on the node each time: never row.wrapper, a path a registry says.
  return srun_podman_argv(row.slurm_job_id, row.repo_base, {runtime_argv.begin() + 1, runtime_argv.end()}, false,
                          shipped_wrapper);
}

// Long because it is the submission's steps in order: sbatch, the bounded wait, the container.
SlurmJobState submit(Creation& c, const ManagerOptions& options, RunSpec& spec, SandboxRegistry& registry) {
  auto say = [&](const std::string& what) { c.say(what); };
  SandboxRow& row = c.row;
  const NewRequest& request = c.request;
  exec::RemoteExecutor& x = *c.x;
  auto& undo = c.undo;
  // The original's secrets rule: only GITHUB_TOKEN reaches the container, whatever the allowlist.
  spec.env_names = {"GITHUB_TOKEN"};
  spec.detach = false; // the job lives as long as its container
  spec.command = job_command();
  SlurmOptions so = options.slurm;
  if (!request.partition.empty()) {
    so.partition = request.partition;
  }
  if (!request.time_limit.empty()) {
    so.time_limit = request.time_limit;
  }
  if (!request.gres.empty()) {
    so.gres = request.gres;
  }
  if (!request.cpus.empty()) {
    so.cpus = std::atoi(request.cpus.c_str());
  }
  if (!request.memory.empty()) {
    so.mem = request.memory;
  }
  auto opts = container_options(options.container, row, request);
  opts.cpus.clear(); // Slurm allocates the resources; the container uses what the job has
  opts.memory.clear();
  opts.run_args.erase(opts.run_args.begin(), opts.run_args.end());
  const std::string output = output_of(row);
  if (output.empty()) {
    throw SandboxError(Kind::failed, "sandbox " + row.name + " has no directory to submit its job from");
  }
  say("sandbox " + row.name + ": submitting to Slurm");
  // The job's directory is the repository's, never the sandbox's own files. Its marker lets rm
  // find it should this process die before the row records the job.
  CommandOutcome sb =
      run_argv(x,
               sbatch_argv(so, "sandbox-" + row.name, row.repo_base, output, row.repo_base,
                           slurm_marker(row.repo_base, row.uid), container_run_argv(Runtime::podman, opts, spec), true),
               k_quick);
  undo.push_back([&x, output] { remove_output(x, output, nullptr); });
  const std::string job = trim(sb.out).substr(0, trim(sb.out).find(';'));
  if (!sb.ok() || job.empty() || job.find_first_not_of("0123456789") != std::string::npos) {
    throw SandboxError(Kind::failed, "sbatch failed on " + row.host + ": " + sb.message());
  }
  undo.push_back([&x, job] { run_argv(x, {"scancel", job}, k_quick); });
  row.slurm_job_id = job;
  row.container_id = spec.container;
  registry.update(row);

  // Until it runs, within the bound; then until its container and tmux are up.
  const auto deadline = std::chrono::steady_clock::now() + so.start_timeout;
  SlurmJobState st;
  std::string last;
  for (;;) {
    st = slurm_job_state(x, job);
    const std::string seen = st.state + (st.reason.empty() ? "" : " (" + st.reason + ")");
    if (seen != last) {
      say("Slurm job " + job + ": " + seen);
      last = seen;
    }
    if (st.running() || !st.active() || std::chrono::steady_clock::now() >= deadline) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  if (st.starting()) {
    c.note = "Slurm job " + job + " is still " + st.state + (st.reason.empty() ? "" : " (" + st.reason + ")") +
             " after " + std::to_string(so.start_timeout.count() / 1000) +
             " s; it starts when the cluster has room (sandbox_ls shows its state; sandbox_rm cancels it)";
    return st;
  }
  if (!st.running()) {
    CommandOutcome out = run_argv(x, {"tail", "-n", "20", "--", output}, k_quick);
    throw SandboxError(Kind::failed,
                       "Slurm job " + job + " ended before its container ran (" + st.state + "): " + trim(out.out));
  }
  say("sandbox " + row.name + ": job " + job + " runs on " + st.node + "; waiting for its container");
  const auto ready_by = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  for (;;) {
    CommandOutcome has =
        run_argv(x,
                 podman_for(row, {"podman", "exec", spec.container, "tmux", "has-session", "-t", k_tmux_session},
                            options.slurm.shipped_wrapper),
                 k_quick);
    if (has.ok()) {
      break;
    }
    SlurmJobState now = slurm_job_state(x, job);
    if (!now.active() || std::chrono::steady_clock::now() >= ready_by) {
      CommandOutcome out = run_argv(x, {"tail", "-n", "20", "--", output}, k_quick);
      throw SandboxError(Kind::failed, "the container of Slurm job " + job + " did not come up (" + now.state +
                                           "): " + has.message() + "; job output: " + trim(out.out));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  return st;
}

// scancel, the bounded wait until the job left the queue, then a look on its node for the container.
void end_job(exec::RemoteExecutor& x, const SandboxRow& row, const std::string& job, const std::string& container,
             const std::string& shipped_wrapper, RemoveResult& result) {
  SlurmJobState before = slurm_job_state(x, job);
  if (!before.terminal()) { // running, pending, requeued, held, suspended...: all must end
    CommandOutcome c = run_argv(x, {"scancel", job}, k_quick);
    if (!c.ok() && c.message().find("Invalid job id") == std::string::npos &&
        c.message().find("already completed") == std::string::npos) {
      throw SandboxError(Kind::failed, "scancel " + job + " failed on " + row.host + ": " + c.message() +
                                           " (the sandbox is kept; try again)");
    }
  } else {
    result.notes.push_back("Slurm job " + job + " had already ended (" + before.state + ")");
  }
  // Confirm it left the queue (bounded).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  SlurmJobState st = before;
  while (std::chrono::steady_clock::now() < deadline) {
    st = slurm_job_state(x, job);
    if (st.terminal()) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  if (!st.terminal()) {
    result.notes.push_back("Slurm job " + job + " is still " + st.state + " after scancel");
  }
  // scancel alone leaves podman's container running: the wrapper removes it when the job ends;
  // make sure, on the node, with a one-task job of its own.
  const std::string node = before.node.empty() ? st.node : before.node;
  if (!node.empty() && !container.empty()) {
    // A small job: without --mem it could ask for the whole node's memory and wait behind others.
    std::vector<std::string> rm = {"srun",
                                   "--quiet",
                                   "--export=PATH",
                                   "-N1",
                                   "-n1",
                                   "--mem=256M",
                                   "--immediate=30",
                                   "-w",
                                   node,
                                   "--job-name=sandbox-rm-" + row.name};
    for (auto& word : wrapper_argv(row.repo_base, shipped_wrapper)) {
      rm.push_back(std::move(word));
    }
    rm.insert(rm.end(), {"podman", "rm", "-f", "-t", "0", container});
    CommandOutcome o = run_argv(x, rm, k_quick);
    result.notes.push_back(o.ok() ? "no container left on " + node
                                  : "could not check " + node + " for container " + container + ": " + o.message());
  }
}

void remove_slurm(const SandboxRow& row, exec::RemoteExecutor& x, const std::string& shipped_wrapper,
                  RemoveResult& result) {
  std::vector<std::string> jobs;
  if (!row.slurm_job_id.empty()) {
    jobs.push_back(row.slurm_job_id);
  } else {
    // `new` died between sbatch and recording the job: this user's queued or running jobs by the
    // sandbox's job name that carry this row's marker. A job without it is never touched.
    CommandOutcome q = run_argv(x, marked_jobs_argv("sandbox-" + row.name), k_quick);
    if (!q.ok()) {
      throw SandboxError(Kind::failed, "cannot read Slurm's queue on " + row.host + " to look for a job of sandbox '" +
                                           row.name + "': " + q.message() + " (the sandbox is kept; try again)");
    }
    jobs = marked_jobs(q.out, slurm_marker(row.repo_base, row.uid));
    for (const auto& job : jobs) {
      result.notes.push_back("Slurm job " + job + " was submitted for this sandbox but never recorded (its `new` " +
                             "stopped half-way): cancelling it");
    }
  }
  const std::string container = !row.container_id.empty() ? row.container_id
                                : row.repo_base.empty()   ? std::string()
                                                          : container_name(row.repo_base, row.name);
  for (const auto& job : jobs) {
    end_job(x, row, job, container, shipped_wrapper, result);
  }
  remove_output(x, output_of(row), &result.notes);
}

SandboxState job_state(const SlurmJobState& job) {
  using K = SandboxState::Kind;
  return {job.running()    ? K::running
          : job.starting() ? K::starting
          : job.active()   ? K::unknown
                           : K::stopped,
          job.state};
}

class SlurmBackend final : public SandboxBackend {
public:
  explicit SlurmBackend(BackendEnv& env) : m_env(env) {}

  void check(Creation& c) override {
    const ManagerOptions& options = m_env.options();
    exec::RemoteExecutor& x = *c.x;
    c.say("checking Slurm on " + c.request.host);
    c.row.wrapper = check_slurm(x, c.request.host, c.request.repo_base, options.slurm.shipped_wrapper);
    c.rt.rootless = trim(run_argv(x, {"id", "-u"}, k_quick).out) != "0";
    // Slurm picks the devices: a count becomes the job's gres.
    const GpuRequest gpus = gpus_asked(c.request, options.default_gpus);
    if (!gpus.any()) {
      return;
    }
    if (gpus.kind != GpuRequest::Kind::count) {
      throw SandboxError(Kind::invalid,
                         "gpus \"" + gpus.text() + "\" on Slurm: Slurm picks the devices; ask for a count (gpus N)",
                         "gpus");
    }
    if (!c.request.gres.empty()) {
      throw SandboxError(Kind::invalid, "give either gpus or gres, not both", "gpus");
    }
    c.request.gres = "gpu:" + std::to_string(gpus.count);
    c.row.gpus = "gpu:" + std::to_string(gpus.count) + " (Slurm)";
  }

  void start(Creation& c) override {
    const ManagerOptions& options = m_env.options();
    RunSpec spec = run_spec(c.row, c.rt, c.objects, existing_mounts(*c.x, options.container, MountSet::batch_job));
    const SlurmJobState job = submit(c, options, spec, m_env.registry());
    c.state = job_state(job);
    c.node = job.node;
  }

  std::vector<std::string> runtime_argv(const SandboxRow& row, std::vector<std::string> argv) const override {
    return podman_for(row, std::move(argv), m_env.options().slurm.shipped_wrapper);
  }

  std::shared_ptr<exec::RemoteExecutor> executor(const SandboxRow& row, std::shared_ptr<exec::RemoteExecutor> host,
                                                 exec::ScriptHostOptions& o) override {
    // Through Slurm itself; job files on the shared filesystem (the worktree), so they outlive the
    // container's own disk and a server restart.
    ContainerExecutor::Target t;
    t.runtime_prefix = srun_podman_argv(row.slurm_job_id, row.repo_base, {}, false,
                                        m_env.options().slurm.shipped_wrapper); // the wrapper found on the node
    t.container = row.container_id;
    t.where = "in Slurm job " + row.slurm_job_id + " (via " + row.host + ")";
    t.suspect_statuses = {1, 125, 126, 137, 255};
    t.kind = "slurm sandbox";
    o.jobs_root = std::string(k_workspace) + "/.sandbox-mcp-jobs";
    return std::make_shared<ContainerExecutor>(std::move(host), std::move(t));
  }

  void read_states(const std::vector<SandboxInfo*>& infos) override {
    for (SandboxInfo* info : infos) {
      try {
        SlurmJobState job = slurm_job_state(*m_env.executor_of(info->row.host), info->row.slurm_job_id);
        info->state = job_state(job);
        info->node = job.node;
        if (!job.reason.empty()) {
          info->note = job.state + ": " + job.reason;
        }
        if (!job.active()) {
          info->note += (info->note.empty() ? "" : "; ") + std::string("the job is over: sandbox_rm cleans up");
        }
      } catch (const std::exception& e) {
        info->state = SandboxState{};
        info->note = e.what();
      }
    }
  }

  std::vector<std::string> attach_argv(const SandboxRow& row) const override {
    std::vector<std::string> argv = sandbox::attach_argv(parse_runtime(row.runtime), row.container_id);
    if (row.slurm_job_id.empty()) { // a `new` that died before its job was recorded
      return argv;
    }
    // A terminal through Slurm itself: srun --pty into the job.
    return srun_podman_argv(row.slurm_job_id, row.repo_base, {argv.begin() + 1, argv.end()}, /*pty=*/true,
                            m_env.options().slurm.shipped_wrapper);
  }

  std::optional<std::vector<std::string>> enter(const SandboxRow& row, exec::RemoteExecutor& x, bool may_start,
                                                std::string& why) override {
    SlurmJobState job = slurm_job_state(x, row.slurm_job_id);
    if (job.running()) {
      return runtime_argv(row, exec_argv(parse_runtime(row.runtime), row.container_id, {}));
    }
    if (!may_start || !job.terminal()) {
      why = "its Slurm job is " + job.state;
      return std::vector<std::string>{};
    }
    // The job is over; its clone is on the shared filesystem: a one-off container on the host, if
    // it has podman and the image.
    return std::nullopt;
  }

  bool never_ran(const SandboxRow& row, exec::RemoteExecutor& x) override {
    return !row.slurm_job_id.empty() && slurm_job_state(x, row.slurm_job_id).starting();
  }

  // Also finds the job of a `new` that died before recording it.
  void remove(const SandboxRow& row, exec::RemoteExecutor& x, RemoveResult& result) override {
    remove_slurm(row, x, m_env.options().slurm.shipped_wrapper, result);
  }

  std::string kept_by_reset(const SandboxRow& row) const override {
    return row.slurm_job_id.empty() ? std::string()
                                    : "Slurm job " + row.slurm_job_id + ": reset never touches Slurm jobs";
  }

private:
  BackendEnv& m_env;
};

} // namespace

std::unique_ptr<SandboxBackend> make_slurm_backend(BackendEnv& env) {
  return std::make_unique<SlurmBackend>(env);
}

} // namespace smcp::sandbox
