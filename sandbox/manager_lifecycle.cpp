// SandboxManager's lifecycles: create (a transaction: worktree -> container -> tmux -> row, each
// step undone when a later one fails), remove (each step tolerates "already gone") and reset.
#include "sandbox/gpu/gpus.h"
#include "sandbox/host_commands.h"
#include "sandbox/manager.h"

#include <cstdlib>
#include <sstream>
#include <tuple>

namespace smcp::sandbox {

namespace {

using Kind = SandboxError::Kind;
constexpr auto k_quick = k_quick_step;

[[noreturn]] void failed(const std::string& message) {
  throw SandboxError(Kind::failed, message);
}

// Appends `line` to a git exclude file unless it is there (a fixed program; the values are
// positional parameters, never part of the program text).
std::vector<std::string> exclude_argv(const std::string& file, const std::string& line) {
  return {
      "sh",
      "-c",
      "mkdir -p \"$(dirname \"$2\")\" && { grep -qxF \"$1\" \"$2\" 2>/dev/null || printf '%s\\n' \"$1\" >> \"$2\"; }",
      "sh",
      line,
      file};
}

// ---- GPUs (sandbox/gpu/gpus.h) ----

struct GpuPlan {
  GpuRequest request;
  HostGpus host;
  std::vector<int> offered;        // what can be given: numbered CDI devices, else /dev/nvidiaN
  std::vector<std::string> labels; // "0,2[/shared]" of every container on the host holding GPUs
};

// What the sandbox asks for and what its host offers (one probe, one `ps`); on Slurm a count
// becomes the job's gres instead.
GpuPlan plan_gpus(NewRequest& request, const std::string& default_gpus, const std::string& cdi_kind,
                  exec::RemoteExecutor& x, Runtime runtime, const std::function<void(const std::string&)>& say) {
  GpuPlan plan;
  try {
    plan.request = parse_gpus(request.gpus.empty() ? default_gpus : request.gpus, request.gpu_shared);
  } catch (const std::invalid_argument& e) {
    throw SandboxError(Kind::invalid, e.what(), "gpus");
  }
  if (!plan.request.any()) {
    return plan;
  }
  if (request.slurm) {
    if (plan.request.kind != GpuRequest::Kind::count) {
      throw SandboxError(
          Kind::invalid,
          "gpus \"" + plan.request.text() + "\" on Slurm: Slurm picks the devices; ask for a count (gpus N)", "gpus");
    }
    if (!request.gres.empty()) {
      throw SandboxError(Kind::invalid, "give either gpus or gres, not both", "gpus");
    }
    request.gres = "gpu:" + std::to_string(plan.request.count);
    return plan;
  }
  say("looking for GPUs on " + request.host);
  plan.host =
      parse_gpu_probe(run_argv(x, {"sh", "-c", gpu_probe_script(cdi_kind, runtime == Runtime::docker)}, k_quick).out);
  for (const auto& name : plan.host.cdi_devices) {
    if (!name.empty() && name.find_first_not_of("0123456789") == std::string::npos && name.size() < 5) {
      plan.offered.push_back(std::stoi(name));
    }
  }
  if (plan.offered.empty()) {
    plan.offered = plan.host.devices;
  }
  // Containers of other repositories (their registries are elsewhere) say what they hold in a label.
  std::istringstream holders(run_argv(x, gpu_holders_argv(runtime), k_quick).out);
  for (std::string line; std::getline(holders, line);) {
    if (auto sp = line.find(' '); sp != std::string::npos) {
      plan.labels.push_back(line.substr(sp + 1));
    }
  }
  return plan;
}

// Runs inside the registry's transaction: the GPUs no other sandbox on the host holds.
SandboxRegistry::Allocate gpu_allocator(const GpuPlan& plan, Runtime runtime, const std::string& cdi_kind) {
  return [plan, runtime, cdi_kind](SandboxRow& mine, const std::vector<SandboxRow>& others) {
    std::vector<int> exclusive, shared;
    for (const auto& label : plan.labels) {
      const bool is_shared = label.size() > 7 && label.substr(label.size() - 7) == "/shared";
      for (int d : split_indices(is_shared ? label.substr(0, label.size() - 7) : label)) {
        (is_shared ? shared : exclusive).push_back(d);
      }
    }
    for (const auto& o : others) {
      if (o.host == mine.host && o.name != mine.name) {
        for (int d : split_indices(o.gpus)) {
          (o.gpu_shared ? shared : exclusive).push_back(d);
        }
      }
    }
    auto got = allocate_gpus(plan.request, plan.offered, exclusive, shared, mine.host);
    gpu_run_args(runtime, got, plan.host, cdi_kind, mine.host); // throws when they cannot be given
    mine.gpus = join_indices(got);
    mine.gpu_shared = plan.request.shared;
  };
}

// The repository's top level and git common dir on the host (absolute), or why not.
std::pair<std::string, std::string> git_dirs(exec::RemoteExecutor& x, const std::string& repo,
                                             const std::string& host) {
  CommandOutcome git = run_argv(
      x, {"git", "-C", repo, "rev-parse", "--path-format=absolute", "--show-toplevel", "--git-common-dir"}, k_quick);
  if (git.status == 127) {
    throw SandboxError(Kind::missing, "git is not installed on " + host + " (apt-get install git)");
  }
  std::istringstream lines(git.out);
  std::string top, common;
  std::getline(lines, top);
  std::getline(lines, common);
  if (!git.ok() || top.empty() || common.empty() || top[0] != '/' || common[0] != '/') {
    throw SandboxError(Kind::invalid, repo + " on " + host +
                                          " is not a git repository, or its git is older than 2.31 (" + git.message() +
                                          "); pass --repo_base / repo_base naming one");
  }
  return {top, common};
}

} // namespace

std::vector<Mount> SandboxManager::existing_mounts(exec::RemoteExecutor& x) {
  const auto& o = m_options.container;
  std::string home = trim(run_argv(x, {"printenv", "HOME"}, k_quick).out);
  std::vector<Mount> wanted;
  if (!home.empty()) {
    wanted = {
        {home + "/.claude-code-router/config.json", o.user_home + "/.claude-code-router/config.json", true},
        {home + "/.config/gh", o.user_home + "/.config/gh", false},
        {home + "/.git-credentials", o.user_home + "/.git-credentials", true},
        {home + "/.gitconfig", o.user_home + "/.gitconfig", true},
    };
  }
  for (auto m : o.mounts) {
    if (m.source.rfind("~/", 0) == 0 && !home.empty()) {
      m.source = home + m.source.substr(1);
    }
    wanted.push_back(m);
  }
  if (wanted.empty()) {
    return {};
  }
  std::vector<std::string> argv = {"ls", "-d", "--"};
  for (const auto& m : wanted) {
    argv.push_back(m.source);
  }
  CommandOutcome listed = run_argv(x, argv, k_quick); // lists the ones that exist (exit 2 when some do not)
  std::istringstream in(listed.out);
  std::vector<std::string> present;
  for (std::string line; std::getline(in, line);) {
    present.push_back(line);
  }
  std::vector<Mount> out;
  for (const auto& m : wanted) {
    if (std::find(present.begin(), present.end(), m.source) != present.end()) {
      out.push_back(m);
    }
  }
  return out;
}

SandboxInfo SandboxManager::create(const NewRequest& request_in) {
  NewRequest request = request_in;
  if (request.host.empty()) {
    request.host = "local";
  }
  if (!request.name.empty()) {
    check_name(request.name);
  }
  if (request.branch.empty()) {
    request.branch = "main";
  }
  check_branch(request.branch);
  if (request.host.rfind(k_host_prefix, 0) == 0) {
    throw SandboxError(Kind::invalid, "a sandbox cannot be made inside another sandbox (host '" + request.host + "')");
  }
  auto say = [&](const std::string& what) {
    if (request.progress) {
      request.progress(what);
    }
  };
  const std::string repo = repo_for(request);
  check_repo_path(repo);
  auto x = executor_of(request.host);
  const std::string image = request.image.empty() ? m_options.container.image : request.image;
  check_image(image);
  std::string wrapper;
  HostRuntime rt;
  if (request.slurm) {
    say("checking Slurm on " + request.host);
    wrapper = check_slurm(*x, request.host, repo);
    rt.rootless = trim(run_argv(*x, {"id", "-u"}, k_quick).out) != "0";
  } else {
    say("checking podman/docker on " + request.host);
    rt = runtime_on(request.host, *x);
  }
  const GpuPlan gpus = plan_gpus(request, m_options.default_gpus, m_options.cdi_kind, *x, rt.runtime, say);
  if (!request.slurm && !run_argv(*x, image_exists_argv(rt.runtime, image), k_quick).ok()) {
    throw SandboxError(Kind::missing, "image " + image + " is not on " + request.host +
                                          ": build it with `sandbox-mcp image build`" +
                                          (request.host == "local" ? "" : " on " + request.host) +
                                          " (or name another image with `image`)");
  }
  std::string top, common; // not a structured binding: clang 14 cannot capture those in lambdas
  std::tie(top, common) = git_dirs(*x, repo, request.host);

  SandboxRow row;
  row.name = request.name;
  row.branch = request.branch;
  row.ccr_mode = request.ccr;
  row.host = request.host;
  row.runtime = runtime_name(rt.runtime);
  row.image = image;
  row.repo_base = top;
  row.wrapper = wrapper;
  SandboxRegistry::Allocate allocate;
  if (gpus.request.any() && !request.slurm) {
    allocate = gpu_allocator(gpus, rt.runtime, m_options.cdi_kind);
  } else if (gpus.request.any()) {
    row.gpus = "gpu:" + std::to_string(gpus.request.count) + " (Slurm)";
  }
  row = registry().reserve(row, allocate); // the name (and the GPUs) are ours from here on
  say("sandbox " + row.name + ": making the worktree");
  std::vector<std::function<void()>> undo;
  std::string note;
  SlurmJobState job;
  try {
    make_worktree(row, *x, common, undo, note);
    RunSpec spec = run_spec(row, request, *x, rt, common);
    if (!request.slurm) {
      spec.device_args = gpu_run_args(rt.runtime, split_indices(row.gpus), gpus.host, m_options.cdi_kind, request.host);
      spec.gpus = row.gpus;
      spec.gpu_shared = row.gpu_shared;
    }
    if (request.slurm) {
      job = submit(row, request, *x, rt, spec, undo, note);
    } else {
      start_container(row, request, *x, rt, spec, undo);
    }
    row.phase = "ready";
    registry().update(row);
  } catch (...) {
    bool undone = true;
    for (auto it = undo.rbegin(); it != undo.rend(); ++it) {
      try {
        (*it)();
      } catch (...) { // the original error is what the caller needs; the row stays for rm
        undone = false;
      }
    }
    if (undone) {
      registry().remove(row.name);
    }
    throw;
  }
  SandboxInfo info;
  auto stored = registry().get(row.name);
  if (!stored) {
    throw SandboxError(Kind::not_found, "sandbox '" + row.name + "' was removed while it was being made");
  }
  info.row = *stored;
  {
    std::lock_guard lock(m_mutex);
    m_sandbox_hosts.erase(row.name); // a host of an earlier sandbox by this name
  }
  info.state = request.slurm ? job.state : "running";
  info.node = job.node;
  info.attach_command = attach_command(info.row);
  info.note = note;
  return info;
}

void SandboxManager::make_worktree(SandboxRow& row, exec::RemoteExecutor& x, const std::string& git_common,
                                   std::vector<std::function<void()>>& undo, std::string& note) {
  const std::string& top = row.repo_base;
  const std::string dir = top + "/" + m_options.worktrees_dir + "/" + row.name;
  row.work_dir = dir;
  registry().update(row);
  run_argv(x, exclude_argv(git_common + "/info/exclude", "/" + m_options.worktrees_dir + "/"), k_quick);
  run_argv(x, exclude_argv(git_common + "/info/exclude", "/.sandbox_db.sqlite*"), k_quick);
  run_argv(x, exclude_argv(git_common + "/info/exclude", "/.sandbox-mcp-jobs/"), k_quick);
  const bool branch_exists =
      run_argv(x, {"git", "-C", top, "rev-parse", "--verify", "--quiet", "refs/heads/" + row.branch}, k_quick).ok();
  CommandOutcome wt;
  if (branch_exists) {
    wt = run_argv(x, {"git", "-C", top, "worktree", "add", dir, row.branch}, m_options.step_timeout);
    if (!wt.ok() && (mentions(wt.message(), "already checked out") || mentions(wt.message(), "already used by"))) {
      // The default branch is usually checked out in the repository itself: share it, and say so.
      wt = run_argv(x, {"git", "-C", top, "worktree", "add", "--force", dir, row.branch}, m_options.step_timeout);
      note = "branch " + row.branch + " is also checked out elsewhere (" + top +
             "); commits made in one move the other's branch too. Use -b / branch for a branch of its own.";
    }
  } else {
    wt = run_argv(x, {"git", "-C", top, "worktree", "add", "-b", row.branch, dir, "HEAD"}, m_options.step_timeout);
  }
  if (!wt.ok()) {
    failed("git worktree add failed in " + top + ": " + wt.message());
  }
  undo.push_back([&x, top, dir, branch = row.branch, branch_exists] {
    run_argv(x, {"git", "-C", top, "worktree", "remove", "--force", dir}, k_quick);
    if (!branch_exists) {
      run_argv(x, {"git", "-C", top, "branch", "-D", branch}, k_quick);
    }
  });
}

RunSpec SandboxManager::run_spec(const SandboxRow& row, const NewRequest& request, exec::RemoteExecutor& x,
                                 const HostRuntime& rt, const std::string& git_common) {
  const std::string& top = row.repo_base;
  const std::string& dir = row.work_dir;
  RunSpec spec;
  spec.container = container_name(top, row.name);
  spec.sandbox = row.name;
  spec.repo_base = top;
  spec.work_dir = dir;
  spec.git_common = git_common;
  spec.ccr = row.ccr_mode;
  spec.mounts = existing_mounts(x);
  // The git directory is writable inside (commits), but not its hooks and config: what runs git
  // on the host, or a human's git later, would execute what the sandbox put there.
  CommandOutcome protect = run_argv(x, {"ls", "-d", "--", git_common + "/hooks", git_common + "/config"}, k_quick);
  std::istringstream protected_paths(protect.out);
  for (std::string path; std::getline(protected_paths, path);) {
    if (!path.empty()) {
      spec.mounts.push_back({path, path, true});
    }
  }
  if (rt.runtime == Runtime::podman) {
    CommandOutcome owner = run_argv(x, {"stat", "-c", "%u %g", "--", dir}, k_quick);
    std::istringstream ids(owner.out);
    int uid = -1, gid = -1;
    ids >> uid >> gid;
    if (rt.rootless) {
      spec.keep_id = true;
    } else if (owner.ok() && uid >= 0 && (uid != m_options.container.user_uid || gid != m_options.container.user_gid)) {
      spec.map_owner = true;
      spec.owner_uid = uid;
      spec.owner_gid = gid;
    }
  }
  (void)request;
  return spec;
}

// The container backend's steps after the worktree, each registering its undo right after it.
void SandboxManager::start_container(SandboxRow& row, const NewRequest& request, exec::RemoteExecutor& x,
                                     const HostRuntime& rt, RunSpec& spec, std::vector<std::function<void()>>& undo) {
  std::string env_file;
  for (const auto& name : m_options.container.env_allow) {
    const char* value = std::getenv(name.c_str());
    if (value && std::string(value).find('\n') == std::string::npos) {
      env_file += name + "=" + value + "\n";
    }
  }
  spec.has_env_file = !env_file.empty();
  auto opts = container_options(row, request);
  if (request.progress) {
    request.progress("sandbox " + row.name + ": starting its container");
  }
  // The name is ours (the row reserves it): a container by that name is a leftover of a `new` that
  // died half-way, and a failed run can leave one behind too.
  run_argv(x, remove_argv(rt.runtime, spec.container), k_quick);
  undo.push_back([&x, rt, container = spec.container] { run_argv(x, remove_argv(rt.runtime, container), k_quick); });
  CommandOutcome run = run_argv(x, container_run_argv(rt.runtime, opts, spec), m_options.step_timeout, env_file);
  if (!run.ok()) {
    failed(std::string(runtime_name(rt.runtime)) + " run failed on " + row.host + ": " + run.message());
  }
  row.container_id = spec.container;
  registry().update(row);

  if (request.progress) {
    request.progress("sandbox " + row.name + ": starting tmux");
  }
  CommandOutcome tmux = run_argv(x, tmux_new_argv(rt.runtime, spec.container), k_quick);
  if (!tmux.ok()) {
    failed("tmux could not start in the container (is tmux in image " + row.image + "?): " + tmux.message());
  }
}

ContainerOptions SandboxManager::container_options(const SandboxRow& row, const NewRequest& request) const {
  auto opts = m_options.container;
  opts.image = row.image;
  if (!request.cpus.empty()) {
    opts.cpus = request.cpus;
  }
  if (!request.memory.empty()) {
    opts.memory = request.memory;
  }
  if (request.pids > 0) {
    opts.pids = request.pids;
  }
  return opts;
}

// Kills the conmon processes of `container` (podman), found by its full id; says what it did.
std::string SandboxManager::unstick_podman(exec::RemoteExecutor& x, const std::string& container) {
  const std::string id =
      trim(run_argv(x, {"podman", "container", "inspect", "--format", "{{.Id}}", container}, k_quick).out);
  if (id.size() != 64 || id.find_first_not_of("0123456789abcdef") != std::string::npos) {
    return "podman could not stop container " + container + " and its id is unknown";
  }
  CommandOutcome killed = run_argv(x, {"pkill", "-KILL", "-f", "--", "conmon .*-c " + id + " "}, k_quick);
  return "podman could not stop container " + container + " (a stuck exec session); its conmon processes were " +
         (killed.ok() ? "killed" : "not found (" + killed.message() + ")");
}

RemoveResult SandboxManager::remove(const std::string& host_name) {
  const std::string name = sandbox_of_host(host_name);
  auto row = find(name);
  if (!row) {
    throw SandboxError(Kind::not_found, "no sandbox named '" + name + "' (see sandbox_ls)");
  }
  RemoveResult result;
  result.name = name;
  auto x = executor_of(row->host);
  {
    std::lock_guard lock(m_mutex);
    m_sandbox_hosts.erase(name);
  }
  // A `new` that died before recording its container may still have made it: its name is known.
  const std::string container = !row->container_id.empty() ? row->container_id
                                : row->repo_base.empty()   ? std::string()
                                                           : container_name(row->repo_base, row->name);
  if (!row->slurm_job_id.empty()) {
    remove_slurm(*row, *x, result);
  } else if (!container.empty() && !row->runtime.empty()) {
    const Runtime rt = parse_runtime(row->runtime);
    // `podman rm -f` of a missing container succeeds: ask first, to say what was already gone.
    const bool existed = run_argv(*x, exists_argv(rt, container), k_quick).ok();
    CommandOutcome o = run_argv(*x, remove_argv(rt, container), k_quick);
    if (!o.ok() && rt == Runtime::podman &&
        (mentions(o.message(), "did not die") || mentions(o.message(), "could not be stopped"))) {
      // An exec session's conmon blocked on its terminal (an attach whose client vanished while
      // keys were flowing) keeps an unreaped process that podman waits for in vain: end the
      // container's conmons, then remove again.
      result.notes.push_back(unstick_podman(*x, container));
      o = run_argv(*x, remove_argv(rt, container), k_quick);
    }
    if (o.status == 127 && !row->wrapper.empty()) {
      result.notes.push_back("no " + row->runtime + " on " + row->host + " to look for container " + container +
                             " (a Slurm sandbox whose job was never recorded: `squeue -n sandbox-" + row->name +
                             "` finds it)");
    } else if (o.status == 127) {
      throw SandboxError(Kind::missing, row->runtime + " is not installed on " + row->host +
                                            " any more; cannot remove "
                                            "container " +
                                            container + " (install it, then rm again)");
    }
    const bool gone =
        !existed || mentions(o.message(), "no such container") || mentions(o.message(), "no container with");
    if (!o.ok() && !gone) {
      failed("cannot remove container " + container + " on " + row->host + ": " + o.message() +
             " (the sandbox is kept; try again)");
    }
    if (gone && !row->container_id.empty()) {
      result.notes.push_back("container " + container + " was already gone");
    }
  }
  if (!row->work_dir.empty()) {
    CommandOutcome o =
        run_argv(*x, {"git", "-C", row->repo_base, "worktree", "remove", "--force", row->work_dir}, k_quick);
    if (!o.ok()) {
      // Not (or no longer) a worktree: remove the directory when it is ours, then let git forget it.
      const std::string ours = row->repo_base + "/" + m_options.worktrees_dir + "/";
      if (row->work_dir.rfind(ours, 0) == 0 && row->work_dir.find("/../") == std::string::npos) {
        run_argv(*x, {"rm", "-rf", "--", row->work_dir}, k_quick);
      }
      run_argv(*x, {"git", "-C", row->repo_base, "worktree", "prune"}, k_quick);
      result.notes.push_back("worktree " + row->work_dir + ": " + trim(o.message()));
    }
  }
  registry().remove(name);
  result.removed = true;
  return result;
}

std::vector<std::string> SandboxManager::reset(const std::vector<std::string>& images) {
  std::vector<std::string> done;
  for (const auto& row : rows()) {
    if (row.host != "local") {
      done.push_back("kept " + row.name + " (on " + row.host + "; remove it with rm -n " + row.name + ")");
      continue;
    }
    if (!row.slurm_job_id.empty()) {
      done.push_back("kept " + row.name + " (Slurm job " + row.slurm_job_id + ": reset never touches Slurm jobs)");
      continue;
    }
    RemoveResult r = remove(row.name);
    done.push_back("removed " + row.name);
  }
  auto x = executor_of("local");
  const std::string dir = m_options.repo_base + "/" + m_options.worktrees_dir;
  bool kept_here = false; // a kept sandbox (Slurm, or being made) with its worktree in this directory
  for (const auto& row : rows()) {
    kept_here = kept_here || row.host == "local";
  }
  if (kept_here) {
    done.push_back("kept " + dir + " (it holds the worktrees of the sandboxes kept)");
  } else {
    run_argv(*x, {"rm", "-rf", "--", dir}, k_quick);
    run_argv(*x, {"git", "-C", m_options.repo_base, "worktree", "prune"}, k_quick);
    done.push_back("removed " + dir);
  }
  try {
    const HostRuntime rt = runtime_on("local", *x);
    for (const auto& image : images) {
      if (run_argv(*x, image_exists_argv(rt.runtime, image), k_quick).ok()) {
        // Never forced: a container of another repository (or of a sandbox on another host that is
        // this machine) may still use it, and `rmi -f` would take that container with it.
        CommandOutcome o = run_argv(*x, remove_image_argv(rt.runtime, {image}), m_options.step_timeout);
        done.push_back(o.ok() ? "removed image " + image
                              : "kept image " + image + " (" + o.message() + "; remove the containers using it first)");
      }
    }
  } catch (const SandboxError& e) {
    done.push_back(std::string("images: ") + e.what());
  }
  return done;
}

} // namespace smcp::sandbox
