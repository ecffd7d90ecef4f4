// SandboxManager::create, a transaction in small steps: validate -> check (the backend's tools, GPUs
// and image; the repository) -> reserve (the registry row) -> worktree (the sandbox's own clone) ->
// start (the backend) -> commit, each step's undo run when a later one fails.
#include "sandbox/container/run_spec.h"
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
  const char* program =
      "d=$(dirname \"$2\"); if [ -L \"$d\" ] || [ -L \"$2\" ]; then echo \"$2: a link, not written\" >&2; exit 3; fi; "
      "mkdir -p \"$d\" && { grep -qxF \"$1\" \"$2\" 2>/dev/null || printf '%s\\n' \"$1\" >> \"$2\"; }";
  return {"sh", "-c", program, "sh", line, file};
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

// validate -> check -> reserve -> worktree -> start -> commit, or undo what was done.
SandboxInfo SandboxManager::create(const NewRequest& request) {
  SandboxBackend& backend = backend_for(request);
  Creation c;
  c.request = validate(request);
  c.x = executor_of(c.request.host);
  check(c, backend);
  reserve(c); // the name (and the GPUs) are ours from here on
  try {
    make_workspace(c);
    backend.start(c);
    commit(c);
  } catch (...) {
    undo(c);
    throw;
  }
  return created(c);
}

// What needs no host: the names, and where the repository is (the request's, else the host's).
NewRequest SandboxManager::validate(const NewRequest& request_in) const {
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
  request.repo_base = repo_for(request);
  check_repo_path(request.repo_base);
  if (request.image.empty()) {
    request.image = m_options.container.image;
  }
  return request;
}

// On the host: the backend's tools, GPUs and image, then the repository.
void SandboxManager::check(Creation& c, SandboxBackend& backend) {
  check_image(c.request.image);
  c.row.image = c.request.image;
  backend.check(c);
  std::string top, common; // not a structured binding: clang 14 cannot capture those in lambdas
  std::tie(top, common) = git_dirs(*c.x, c.request.repo_base, c.request.host);
  check_repository(*c.x, top, common, c.request.host);
  c.row.name = c.request.name;
  c.row.branch = c.request.branch;
  c.row.ccr_mode = c.request.ccr;
  c.row.host = c.request.host;
  c.row.runtime = runtime_name(c.rt.runtime);
  c.row.repo_base = top;
  c.git_common = common;
}

void SandboxManager::reserve(Creation& c) {
  c.row = registry().reserve(c.row, c.allocate);
}

void SandboxManager::commit(Creation& c) {
  c.row.phase = Phase::ready;
  registry().update(c.row);
}

// Each step taken back, the last first; the row goes only when all of them were.
void SandboxManager::undo(Creation& c) {
  bool undone = true;
  for (auto it = c.undo.rbegin(); it != c.undo.rend(); ++it) {
    try {
      (*it)();
    } catch (...) { // the original error is what the caller needs; the row stays for rm
      undone = false;
    }
  }
  if (undone) {
    registry().remove(c.row); // this row only: never a later sandbox that took the name meanwhile
  }
}

SandboxInfo SandboxManager::created(const Creation& c) {
  SandboxInfo info;
  auto stored = registry().get(c.row.name);
  if (!stored) {
    throw SandboxError(Kind::not_found, "sandbox '" + c.row.name + "' was removed while it was being made");
  }
  info.row = *stored;
  {
    std::lock_guard lock(m_mutex);
    m_sandbox_hosts.erase(c.row.name); // a host of an earlier sandbox by this name
  }
  info.state = c.state;
  info.node = c.node;
  info.attach_command = attach_command(info.row);
  info.note = c.note;
  info.work.known = true; // a fresh clone: nothing uncommitted, nothing unmerged
  info.work.unmerged = 0;
  return info;
}

// The sandbox's own repository: a clone of the host's in WORKTREES_DIR/NAME, the directory only
// the manager writes (0700). Returns whether the clone shares the host's object store (mounted
// read-only) or is self-contained.
void SandboxManager::make_workspace(Creation& c) {
  c.say("sandbox " + c.row.name + ": making its repository");
  SandboxRow& row = c.row;
  exec::RemoteExecutor& x = *c.x;
  const HostRuntime& rt = c.rt;
  const std::string& git_common = c.git_common;
  auto& undo = c.undo;
  std::string& note = c.note;
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
  if (CommandOutcome o = run_argv(x, clone_argv(top, dir, row.branch, shared), m_options.step_timeout); !o.ok()) {
    step_failed("git clone of " + top + " into " + dir + " failed: " + o.message());
  }
  // Job files of commands run inside (Slurm keeps them in the workspace) are not work.
  run_argv(x, exclude_argv(dir + "/.git/info/exclude", "/.sandbox-mcp-jobs/"), k_quick);
  if (const std::string owner = workspace_owner(x, rt, m_options.container); !owner.empty()) {
    if (CommandOutcome ch = run_argv(x, {"chown", "-R", "--no-dereference", "--", owner, dir}, k_quick); !ch.ok()) {
      step_failed("cannot give " + dir + " to the sandbox's user (" + owner + "): " + ch.message());
    }
  }
  c.objects = shared ? git_common + "/objects" : std::string();
}

} // namespace smcp::sandbox
