// SandboxManager's lifecycles: create (a transaction: worktree -> container -> tmux -> row, each
// step undone when a later one fails), remove (each step tolerates "already gone") and reset.
#include "sandbox/gpu/gpus.h"
#include "sandbox/host_commands.h"
#include "sandbox/manager.h"
#include "sandbox/workspace.h"

#include <cstdlib>
#include <sstream>
#include <tuple>

namespace smcp::sandbox {

namespace {

using Kind = SandboxError::Kind;
constexpr auto k_quick = k_quick_step;

// Appends `line` to a git exclude file unless it is there (a fixed program; the values are
// positional parameters, never part of the program text).
std::vector<std::string> exclude_argv(const std::string& file, const std::string& line) {
  return {
      "sh",
      "-c",
      "d=$(dirname \"$2\"); if [ -L \"$d\" ] || [ -L \"$2\" ]; then echo \"$2: a link, not written\" >&2; exit 3; fi; "
      "mkdir -p \"$d\" && { grep -qxF \"$1\" \"$2\" 2>/dev/null || printf '%s\\n' \"$1\" >> \"$2\"; }",
      "sh",
      line,
      file};
}

// ---- GPUs (sandbox/gpu/gpus.h) ----

struct GpuPlan {
  GpuRequest request;
  HostGpus host;
  std::vector<int> offered;        // what can be given: numbered CDI devices, else /dev/nvidiaN
  std::vector<std::string> labels; // "0,2[/shared]" of every container on the host holding GPUs of our kind
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
  plan.labels = gpu_labels_of_kind(run_argv(x, gpu_holders_argv(runtime), k_quick).out, cdi_kind);
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

void SandboxManager::check_repository(exec::RemoteExecutor& x, const std::string& top, const std::string& common,
                                      const std::string& host) {
  auto refuse = [&](const std::string& why) {
    throw SandboxError(Kind::invalid, "repository " + top + " on " + host + " cannot hold sandboxes: " + why,
                       "repo_base");
  };
  for (const std::string& path : {top + "/", common + "/"}) {
    if (path.find("/sandbox-mcp/sandboxes/") != std::string::npos ||
        (!m_options.worktrees_dir.empty() && path.find("/" + m_options.worktrees_dir + "/") != std::string::npos)) {
      refuse("it is inside a sandbox (its repository is the agent's, and the host never runs git there)");
    }
  }
  if (top.find("/.git/") != std::string::npos) {
    refuse("it is inside another repository's git directory");
  }
  for (const auto& root : m_options.forbidden_repo_roots) {
    if (!root.empty() && (top == root || top.rfind(root + "/", 0) == 0)) {
      refuse("it is under " + root + ", where confined commands write");
    }
  }
  // As git's safe.directory: only a repository of the user running sandbox-mcp (whose config is
  // theirs) is one the host runs git in.
  const std::string me = trim(run_argv(x, {"id", "-u"}, k_quick).out);
  const std::string owner = trim(run_argv(x, {"stat", "-c", "%u", "--", common}, k_quick).out);
  if (me.empty() || owner != me) {
    refuse("it belongs to uid " + owner + ", not to the user running sandbox-mcp (uid " + me + ")");
  }
}

std::vector<Mount> SandboxManager::existing_mounts(exec::RemoteExecutor& x, bool slurm) {
  const auto& o = m_options.container;
  std::string home = trim(run_argv(x, {"printenv", "HOME"}, k_quick).out);
  std::vector<Mount> wanted;
  // All read-only: gh's config (a `pager:` or an alias) and git's run on the host later. Slurm
  // sandboxes get none of them: only GITHUB_TOKEN crosses into a Slurm job (the secrets rule).
  if (!home.empty() && !slurm) {
    wanted = {
        {home + "/.claude-code-router/config.json", o.user_home + "/.claude-code-router/config.json", true},
        {home + "/.config/gh", o.user_home + "/.config/gh", true},
        {home + "/.git-credentials", o.user_home + "/.git-credentials", true},
        {home + "/.gitconfig", o.user_home + "/.gitconfig", true},
    };
  }
  for (auto m : o.mounts) {
    if (slurm && !m.slurm) {
      continue; // a mount reaches Slurm jobs only when the config says so ("slurm": true)
    }
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
  check_repository(*x, top, common, request.host);

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
  say("sandbox " + row.name + ": making its repository");
  std::vector<std::function<void()>> undo;
  std::string note;
  SlurmJobState job;
  try {
    const bool shared = make_workspace(row, *x, rt, common, undo, note);
    RunSpec spec = run_spec(row, request, *x, rt, shared ? common + "/objects" : std::string());
    if (!request.slurm) {
      spec.device_args = gpu_run_args(rt.runtime, split_indices(row.gpus), gpus.host, m_options.cdi_kind, request.host);
      spec.gpus = row.gpus;
      spec.gpu_shared = row.gpu_shared;
      spec.gpu_kind = m_options.cdi_kind;
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
      registry().remove(row); // this row only: never a later sandbox that took the name meanwhile
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
  info.work.known = true; // a fresh clone: nothing uncommitted, nothing unmerged
  info.work.unmerged = 0;
  return info;
}

// The sandbox's own repository: a clone of the host's in WORKTREES_DIR/NAME, the directory only
// the manager writes (0700). Returns whether the clone shares the host's object store (mounted
// read-only) or is self-contained.
bool SandboxManager::make_workspace(SandboxRow& row, exec::RemoteExecutor& x, const HostRuntime& rt,
                                    const std::string& git_common, std::vector<std::function<void()>>& undo,
                                    std::string& note) {
  const std::string& top = row.repo_base;
  const std::string wt =
      m_options.worktrees_dir.empty() ? git_common + "/sandbox-mcp/sandboxes" : top + "/" + m_options.worktrees_dir;
  const std::string dir = wt + "/" + row.name;
  row.work_dir = dir;
  registry().update(row);
  if (CommandOutcome o = run_argv(x, prepare_worktrees_dir_argv(wt), k_quick); !o.ok()) {
    step_failed("cannot use " + wt + " for sandboxes: " + o.message());
  }
  const std::string id_path = id_file(wt, row.name);
  undo.push_back([&x, id_path, uid = row.uid] { run_argv(x, remove_id_argv(id_path, uid), k_quick); });
  if (CommandOutcome o = run_argv(x, write_id_argv(id_path, row.uid), k_quick); !o.ok()) {
    step_failed("cannot write " + id_path + ": " + o.message());
  }
  // The host's own exclude file (no sandbox reaches the host's git directory).
  if (!m_options.worktrees_dir.empty()) {
    run_argv(x, exclude_argv(git_common + "/info/exclude", "/" + m_options.worktrees_dir + "/"), k_quick);
  }
  if (run_argv(x, {"test", "-e", dir}, k_quick).ok() || run_argv(x, {"test", "-L", dir}, k_quick).ok()) {
    step_failed(dir + " already exists (left by an earlier sandbox?): move it away, or pick another name");
  }
  const bool branch_exists =
      run_argv(x, {"git", "-C", top, "rev-parse", "--verify", "--quiet", "refs/heads/" + row.branch}, k_quick).ok();
  if (!branch_exists) {
    if (CommandOutcome b = run_argv(x, {"git", "-C", top, "branch", row.branch, "HEAD"}, k_quick); !b.ok()) {
      step_failed("cannot create branch " + row.branch + " in " + top + ": " + b.message());
    }
    undo.push_back([&x, top, branch = row.branch] {
      run_argv(x, {"git", "-C", top, "branch", "-D", branch}, k_quick);
    });
    row.own_branch = true;
    registry().update(row);
  }
  if (trim(run_argv(x, {"git", "-C", top, "symbolic-ref", "-q", "HEAD"}, k_quick).out) == "refs/heads/" + row.branch) {
    note = "branch " + row.branch + " is checked out in " + top + ": the sandbox works on its own copy of it, and " +
           "sync brings its commits to sandbox/" + row.name + "/" + row.branch +
           " for you to merge (use -b / branch for a branch of its own, which sync fast-forwards).";
  }
  // Shared (no copy of the objects) when the agent can read the host's object store as it is.
  const std::vector<std::string> probe =
      lines_of(run_argv(x, objects_probe_argv(git_common + "/objects"), k_quick).out);
  const bool shared = rt.rootless || probe.empty();
  undo.push_back([&x, dir] { run_argv(x, remove_tree_argv(dir), k_quick); });
  if (CommandOutcome c = run_argv(x, clone_argv(top, dir, row.branch, shared), m_options.step_timeout); !c.ok()) {
    step_failed("git clone of " + top + " into " + dir + " failed: " + c.message());
  }
  // Job files of commands run inside (Slurm keeps them in the workspace) are not work.
  run_argv(x, exclude_argv(dir + "/.git/info/exclude", "/.sandbox-mcp-jobs/"), k_quick);
  const auto& o = m_options.container;
  std::string owner;
  if (rt.runtime == Runtime::podman && !rt.rootless) {
    owner = std::to_string(o.userns_base + o.user_uid) + ":" + std::to_string(o.userns_base + o.user_gid);
  } else if (rt.runtime == Runtime::docker && trim(run_argv(x, {"id", "-u"}, k_quick).out) == "0") {
    owner = std::to_string(o.user_uid) + ":" + std::to_string(o.user_gid);
  }
  if (!owner.empty()) {
    if (CommandOutcome c = run_argv(x, {"chown", "-R", "--no-dereference", "--", owner, dir}, k_quick); !c.ok()) {
      step_failed("cannot give " + dir + " to the sandbox's user (" + owner + "): " + c.message());
    }
  }
  return shared;
}

RunSpec SandboxManager::run_spec(const SandboxRow& row, const NewRequest& request, exec::RemoteExecutor& x,
                                 const HostRuntime& rt, const std::string& objects) {
  RunSpec spec;
  spec.container = container_name(row.repo_base, row.name);
  spec.sandbox = row.name;
  spec.repo_base = row.repo_base;
  spec.work_dir = row.work_dir;
  spec.objects = objects;
  spec.uid = row.uid;
  spec.ccr = row.ccr_mode;
  spec.mounts = existing_mounts(x, request.slurm);
  if (rt.runtime == Runtime::podman) {
    // Never host root, never a host user: rootful podman puts the container in its own range.
    spec.userns = !rt.rootless;
    spec.keep_id = rt.rootless;
  }
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
    step_failed(std::string(runtime_name(rt.runtime)) + " run failed on " + row.host + ": " + run.message());
  }
  row.container_id = spec.container;
  registry().update(row);
  if (!row.gpus.empty()) {
    // Another registry may have chosen the same GPUs meanwhile: the container created first keeps them.
    const std::vector<std::string> ids = lines_of(
        run_argv(x, {runtime_name(rt.runtime), "ps", "-aq", "--filter", std::string("label=") + k_gpu_label}, k_quick)
            .out);
    if (!ids.empty()) {
      const std::string lost = gpu_race_loser(
          spec.container, run_argv(x, gpu_holders_created_argv(rt.runtime, ids), k_quick).out, m_options.cdi_kind);
      if (!lost.empty()) {
        throw SandboxError(Kind::exists,
                           lost + ": this sandbox was not made; ask again (it will get other GPUs, or "
                                  "say that none are free)",
                           "gpus");
      }
    }
  }

  if (request.progress) {
    request.progress("sandbox " + row.name + ": starting tmux");
  }
  CommandOutcome tmux = run_argv(x, tmux_new_argv(rt.runtime, spec.container), k_quick);
  if (!tmux.ok()) {
    step_failed("tmux could not start in the container (is tmux in image " + row.image + "?): " + tmux.message());
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

} // namespace smcp::sandbox
