// SandboxManager's rm and reset, and what they stand on: the checks that make rm act only on what
// this registry row really made, the ways into a sandbox (its container, a one-off container when
// it is gone), and keeping its work when it is removed by force (reading and fetching it is
// manager_sync.cpp). Nothing here runs host git in a directory a sandbox could write, or follows a
// path it could have planted.
#include "sandbox/container/run_spec.h"
#include "sandbox/host_commands.h"
#include "sandbox/manager.h"
#include "sandbox/workspace.h"

#include <ctime>
#include <sstream>
#include <thread>

namespace smcp::sandbox {

namespace {

using Kind = SandboxError::Kind;
constexpr auto k_quick = k_quick_step;

} // namespace

std::string SandboxManager::worktrees_dir_of(const SandboxRow& row, exec::RemoteExecutor& x) {
  return sandboxes_dir(row.repo_base, x);
}

std::string SandboxManager::sandboxes_dir(const std::string& repo, exec::RemoteExecutor& x) {
  CommandOutcome o = run_argv(
      x, {"git", "-C", repo, "rev-parse", "--path-format=absolute", "--show-toplevel", "--git-common-dir"}, k_quick);
  std::vector<std::string> lines = lines_of(o.out);
  if (!o.ok() || lines.size() < 2 || lines[0].empty() || lines[0][0] != '/' || lines[1][0] != '/') {
    return {};
  }
  return m_options.worktrees_dir.empty() ? lines[1] + "/sandbox-mcp/sandboxes"
                                         : lines[0] + "/" + m_options.worktrees_dir;
}

// A row is acted on only when the id file the manager wrote beside its directory (in the
// worktrees directory, which no sandbox can write) holds the row's id, and its paths are the ones
// the manager computes: a registry edited or replaced behind our back names nothing else.
SandboxManager::Ownership SandboxManager::check_ownership(const SandboxRow& row, exec::RemoteExecutor& x,
                                                          std::string& why) {
  if (row.uid.empty() || row.repo_base.empty() || row.repo_base[0] != '/' ||
      row.repo_base.find('\n') != std::string::npos) {
    why = "its registry row has no id or repository (made by an older sandbox-mcp, or not by sandbox-mcp)";
    return Ownership::not_ours;
  }
  const std::string wt = worktrees_dir_of(row, x);
  if (wt.empty()) {
    why = "its repository " + row.repo_base + " is not a git repository any more";
    return Ownership::not_ours;
  }
  const std::string expected_dir = wt + "/" + row.name;
  if (!row.work_dir.empty() && row.work_dir != expected_dir) {
    why = "its registry row names directory " + row.work_dir + ", not " + expected_dir;
    return Ownership::not_ours;
  }
  const std::string path = id_file(wt, row.name);
  CommandOutcome o = run_argv(x, read_id_argv(path), k_quick);
  if (!o.ok()) {
    if (row.phase == Phase::creating && row.records_nothing()) {
      return Ownership::nothing_made; // `new` died before it made anything
    }
    why = "its id file " + path + " is missing";
    return Ownership::not_ours;
  }
  if (trim(o.out) != row.uid) {
    why = "its id file " + path + " belongs to another sandbox (the registry row is not the one that made it)";
    return Ownership::not_ours;
  }
  return Ownership::ours;
}

std::vector<std::string> SandboxManager::inside(const SandboxRow& row, exec::RemoteExecutor& x, bool may_start,
                                                std::string& why) {
  if (row.runtime.empty() || row.container_id.empty()) {
    why = "it has no container";
    return {};
  }
  const Runtime rt = parse_runtime(row.runtime);
  if (auto in = backend_for(row).enter(row, x, may_start, why)) {
    return *in;
  }
  // The container is gone: a one-off one over the same files, without network, as the agent.
  if (!run_argv(x, {"test", "-d", row.work_dir}, k_quick).ok()) {
    why = "its directory " + row.work_dir + " is gone";
    return {};
  }
  HostRuntime hr;
  try {
    hr = runtime_on(row.host, x);
  } catch (const SandboxError& e) {
    why = std::string("no container runtime here to read it with: ") + e.what();
    return {};
  }
  if (!run_argv(x, image_exists_argv(rt, row.image.empty() ? m_options.container.image : row.image), k_quick).ok()) {
    why = "image " + row.image + " is not on " + row.host + " to read it with";
    return {};
  }
  std::string objects;
  CommandOutcome common =
      run_argv(x, {"git", "-C", row.repo_base, "rev-parse", "--path-format=absolute", "--git-common-dir"}, k_quick);
  if (common.ok() && !trim(common.out).empty() && trim(common.out)[0] == '/') {
    objects = trim(common.out) + "/objects";
  }
  return reader_argv(row, m_options.container, rt, hr, objects);
}

// Long because it is rm's steps in order: ownership, the work (read, synced, kept or refused),
// the backend's container (or Slurm job), the directory, the refs, the row.
RemoveResult SandboxManager::remove(const std::string& host_name, bool force) {
  const std::string name = sandbox_of_host(host_name);
  auto row = find(name);
  if (!row) {
    throw SandboxError(Kind::not_found, "no sandbox named '" + name + "' (see sandbox_ls)");
  }
  RemoveResult result;
  result.name = name;
  auto x = executor_of(row->host);
  std::string why;
  const Ownership own = check_ownership(*row, *x, why);
  if (own == Ownership::not_ours) {
    throw SandboxError(Kind::failed,
                       "sandbox " + name + " is not removed: " + why +
                           ". Nothing was touched; if the row is stale, check its container and directory by hand.");
  }
  {
    std::lock_guard lock(m_mutex);
    m_sandbox_hosts.erase(name);
  }
  // The agent's processes, stopped while rm reads the work: let go again whenever rm does not get
  // as far as removing the container (refused, or failed).
  std::vector<std::string> frozen;
  struct Thaw {
    exec::RemoteExecutor& x;
    std::vector<std::string>& frozen;
    ~Thaw() {
      if (frozen.empty()) {
        return;
      }
      frozen.insert(frozen.end(), {"sh", "-c", "kill -CONT -1 2>/dev/null; true"});
      try {
        run_argv(x, frozen, std::chrono::seconds(30));
      } catch (...) { // best effort: the sandbox stays as it was
      }
    }
  } thaw{*x, frozen};
  // A half-made sandbox (`new` died, or runs), or a Slurm job that never started, was never handed
  // to an agent: no work to keep.
  SandboxBackend& backend = backend_for(*row);
  const bool never_ran = row->phase != Phase::ready || backend.never_ran(*row, *x);
  if (own == Ownership::ours && !never_ran && !row->work_dir.empty() &&
      run_argv(*x, {"test", "-d", row->work_dir}, k_quick).ok()) {
    // The work first: the agent's processes stopped (nothing changes under us), then read inside
    // the sandbox, brought to the repository, and kept or refused.
    std::vector<std::string> in;
    std::string fetch_error;
    try {
      in = inside(*row, *x, true, why);
      if (!in.empty()) {
        std::vector<std::string> freeze = in;
        freeze.insert(freeze.end(), {"sh", "-c", "kill -STOP -1 2>/dev/null; true"});
        run_argv(*x, freeze, k_quick);
        frozen = in;
        result.work = inspect(*x, in);
      }
      fetch_error = in.empty()           ? why
                    : !result.work.known ? result.work.why_unknown
                                         : fetch_work(*row, *x, in, result.work);
      if (fetch_error.empty()) {
        std::string head;
        if (std::string n = fast_forward(*row, *x, head); !n.empty()) {
          result.notes.push_back(n);
        }
        count_unmerged(*row, *x, result.work, true);
      }
    } catch (const exec::HostError& e) {
      fetch_error = e.what();
    }
    if (!result.work.known && result.work.why_unknown.empty()) {
      result.work.why_unknown = fetch_error.empty() ? why : fetch_error;
    }
    const bool work = !result.work.known || result.work.has_work() || !fetch_error.empty();
    if (work && !force) {
      throw SandboxError(
          Kind::has_work,
          "sandbox " + name + " holds work that is not on a branch of " + row->repo_base + ": " +
              (fetch_error.empty() ? result.work.summary() : "its commits could not be fetched (" + fetch_error + ")") +
              ". Its commits are in the repository under sandbox/" + name + "/ and refs/sandbox/" + name +
              "/ (git for-each-ref refs/remotes/sandbox/" + name + " refs/sandbox/" + name +
              "): commit what is uncommitted, merge what you want into a branch of yours, or remove with force "
              "(sandbox_rm {force: true}, `rm --force`), which keeps it all first under refs/sandbox-rescue/" +
              name + "/");
    }
    if (work) {
      const std::string stamp = utc_stamp();
      // What earlier syncs brought (a branch the sandbox has deleted since, say) is kept too.
      // Beside the rescue from inside (STAMP/), never under it: nothing the sandbox names can
      // overwrite these.
      const std::string synced = rescue_prefix(name, stamp + "-synced");
      const bool kept_synced = copy_host_refs(*row, *x, synced, "create");
      bool kept = false;
      if (!in.empty() && result.work.known) {
        try {
          std::vector<std::string> rescue = in;
          for (auto& w : rescue_argv(name)) {
            rescue.push_back(w);
          }
          CommandOutcome made = run_argv(*x, rescue, m_options.step_timeout);
          std::vector<std::string> upload = in;
          upload.push_back("git-upload-pack");
          upload.push_back(k_workspace);
          const std::string prefix = rescue_prefix(name, stamp);
          CommandOutcome f = made.ok() ? run_argv(*x, fetch_rescue_argv(row->repo_base, ext_url(upload), prefix),
                                                  m_options.step_timeout)
                                       : made;
          kept = f.ok() && !lines_of(run_argv(*x, list_refs_argv(row->repo_base, prefix), k_quick).out).empty();
          if (kept) {
            result.rescued = prefix;
          } else {
            result.notes.push_back("keeping the work as refs failed (" + f.message() + ")");
          }
        } catch (const exec::HostError& e) {
          result.notes.push_back(std::string("keeping the work as refs failed (") + e.what() + ")");
        }
      }
      if (!kept && kept_synced) {
        result.notes.push_back("what earlier syncs brought is kept under " + synced);
      }
      if (!kept) {
        // Into a new directory of its own (mktemp): never onto something that exists.
        CommandOutcome made_dir = run_argv(
            *x, {"mktemp", "-d", "--", worktrees_dir_of(*row, *x) + "/.rescued-" + name + "-" + stamp + "-XXXXXX"},
            k_quick);
        const std::string wt = worktrees_dir_of(*row, *x);
        if (made_dir.ok() && trim(made_dir.out).rfind(wt + "/.rescued-", 0) != 0) {
          made_dir.status = 1;
          made_dir.err = "mktemp made " + trim(made_dir.out) + ", not a directory in " + wt;
        }
        const std::string aside = made_dir.ok() ? trim(made_dir.out) + "/" + name : std::string();
        CommandOutcome mv = made_dir.ok() ? run_argv(*x, move_aside_argv(row->work_dir, aside), k_quick) : made_dir;
        if (mv.ok() && run_argv(*x, {"test", "-e", row->work_dir}, k_quick).ok()) {
          mv.status = 1;
          mv.err = row->work_dir + " is still there after the move";
        }
        if (!mv.ok()) {
          step_failed("sandbox " + name + "'s work could neither be kept as refs nor moved aside (" + mv.message() +
                      "): nothing removed");
        }
        result.rescued = aside;
        result.notes.push_back("its directory was moved to " + aside +
                               " (git could not read it; treat what is in it as untrusted: never run git or its "
                               "scripts there on the host)");
      }
    }
  }
  backend.remove(*row, *x, result);
  frozen.clear(); // the container is gone: nothing to let go
  if (own == Ownership::ours) {
    if (CommandOutcome o = run_argv(*x, remove_tree_argv(row->work_dir), m_options.step_timeout); !o.ok()) {
      result.notes.push_back("directory " + row->work_dir + ": " + o.message());
    }
    forget_refs(*row, *x, mirror_prefix(name));
    forget_refs(*row, *x, "refs/sandbox/" + name + "/");
    run_argv(*x, remove_id_argv(id_file(worktrees_dir_of(*row, *x), name), row->uid), k_quick);
  }
  registry().remove(*row);
  result.removed = true;
  return result;
}

std::vector<std::string> SandboxManager::reset(const std::vector<std::string>& images, bool force) {
  std::vector<std::string> done;
  for (const auto& row : rows()) {
    if (row.host != "local") {
      done.push_back("kept " + row.name + " (on " + row.host + "; remove it with rm -n " + row.name + ")");
      continue;
    }
    if (const std::string why = backend_for(row).kept_by_reset(row); !why.empty()) {
      done.push_back("kept " + row.name + " (" + why + ")");
      continue;
    }
    try {
      RemoveResult r = remove(row.name, force);
      done.push_back("removed " + row.name + (r.rescued.empty() ? "" : " (its work is kept at " + r.rescued + ")"));
    } catch (const SandboxError& e) {
      done.push_back("kept " + row.name + ": " + e.what());
    }
  }
  auto x = executor_of("local");
  const std::string dir = sandboxes_dir(m_options.repo_base, *x);
  // Only an empty worktrees directory goes: kept sandboxes, moved-aside work and Slurm output stay.
  if (run_argv(*x, {"rmdir", "--", dir}, k_quick).ok()) {
    done.push_back("removed " + dir);
  } else if (run_argv(*x, {"test", "-d", dir}, k_quick).ok()) {
    done.push_back("kept " + dir + " (it still holds something: see `ls -a " + dir + "`)");
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
