// SandboxManager's reading and bringing over of a sandbox's work: git inside the sandbox (as the
// agent) says what is there, `git fetch` on the host whose other end (git-upload-pack) runs inside
// brings its refs over, and what the host held for it before is never lost on the way (kept under
// refs/sandbox/NAME/kept/). Nothing here runs host git in a directory a sandbox could write.
#include "sandbox/host_commands.h"
#include "sandbox/manager.h"
#include "sandbox/workspace.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <sstream>

namespace smcp::sandbox {

namespace {

using Kind = SandboxError::Kind;
constexpr auto k_quick = k_quick_step;

// The repository's refs under `prefix` (a ref name or a folder of them), as (object, ref) pairs.
std::vector<std::pair<std::string, std::string>> refs_under(const std::string& repo, exec::RemoteExecutor& x,
                                                            const std::string& prefix) {
  std::vector<std::pair<std::string, std::string>> refs;
  for (const auto& line : lines_of(run_argv(x, list_refs_argv(repo, prefix), k_quick).out)) {
    const auto sp = line.find(' ');
    if (sp != std::string::npos && is_object_name(line.substr(0, sp)) &&
        line.compare(sp + 1, prefix.size(), prefix) == 0) {
      refs.emplace_back(line.substr(0, sp), line.substr(sp + 1));
    }
  }
  return refs;
}

} // namespace

// What git inside the sandbox says (as the agent): its changes and every ref. Never throws.
WorkStatus SandboxManager::inspect(exec::RemoteExecutor& x, const std::vector<std::string>& in,
                                   std::chrono::milliseconds timeout) {
  std::vector<std::string> argv = in;
  for (auto& w : inspect_argv()) {
    argv.push_back(w);
  }
  CommandOutcome o;
  try {
    o = run_argv(x, argv, timeout);
  } catch (const exec::HostError& e) {
    WorkStatus w; // git inside hung (an fsmonitor that sleeps, say): the agent's own doing
    w.why_unknown = std::string("git in the sandbox did not answer: ") + e.what();
    return w;
  }
  WorkStatus w = o.ok() ? parse_inspect(o.out) : WorkStatus{};
  if (!o.ok()) {
    w.why_unknown = "git in the sandbox failed: " + o.message();
  }
  return w;
}

// Counts the commits of the sandbox's refs and HEAD that no branch of the repository has. After a
// fetch (`fetched`), from the refs the host holds for the sandbox: all it has now, and what an
// earlier sync brought that it has since deleted. Else from the refs read inside: missing ones
// (not fetched yet) count too.
void SandboxManager::count_unmerged(const SandboxRow& row, exec::RemoteExecutor& x, WorkStatus& w, bool fetched) {
  if (!w.known) {
    return;
  }
  if (fetched) {
    CommandOutcome c = run_argv(x, host_unmerged_argv(row.repo_base, row.name), m_options.step_timeout);
    w.unmerged = c.ok() ? std::atoi(trim(c.out).c_str()) : 1;
    return;
  }
  std::vector<std::string> checked;
  std::string query;
  for (const auto& t : w.tips()) {
    if (is_object_name(t) && std::find(checked.begin(), checked.end(), t) == checked.end()) {
      checked.push_back(t);
      query += t + "^{commit}\n";
    }
  }
  int missing = 0;
  std::vector<std::string> present;
  if (!checked.empty()) {
    std::istringstream have(run_argv(x, have_objects_argv(row.repo_base), k_quick, query).out);
    std::size_t i = 0;
    for (std::string line; std::getline(have, line) && i < checked.size(); ++i) {
      if (line.find(" missing") != std::string::npos) {
        ++missing;
      } else {
        present.push_back(checked[i]);
      }
    }
  }
  int count = 0;
  if (!present.empty()) {
    CommandOutcome c = run_argv(x, unmerged_count_argv(row.repo_base, present), k_quick);
    count = c.ok() ? std::atoi(trim(c.out).c_str()) : 1;
  }
  // And what the host already holds for it (an earlier sync's branch the agent deleted since).
  CommandOutcome held = run_argv(x, host_unmerged_argv(row.repo_base, row.name), k_quick);
  w.unmerged = count + missing + (held.ok() ? std::atoi(trim(held.out).c_str()) : 0);
}

// `git fetch` on the host whose other end runs inside the sandbox: "" or why it failed.
std::string SandboxManager::fetch_work(const SandboxRow& row, exec::RemoteExecutor& x,
                                       const std::vector<std::string>& in, const WorkStatus& w) {
  std::vector<std::string> upload = in;
  upload.push_back("git-upload-pack");
  upload.push_back(k_workspace);
  try {
    // Counted on the host, not from what the sandbox said: never more refs than k_max_refs.
    CommandOutcome listed = run_argv(x, ls_remote_argv(row.repo_base, ext_url(upload)), m_options.step_timeout);
    if (!listed.ok()) {
      return "git ls-remote: " + listed.message();
    }
    if (const auto n = static_cast<long>(lines_of(listed.out).size()); n > k_max_refs) {
      return std::to_string(n) + " refs (more than " + std::to_string(k_max_refs) +
             " are not brought over: rm with force moves its directory aside)";
    }
    // What the host holds for the sandbox now: a forced fetch may rewrite or prune it (the agent
    // rewrote a branch a sync brought). Kept aside first, and kept for good when the fetch would
    // lose commits of it.
    const std::string ns = "refs/sandbox/" + row.name + "/";
    const std::string kept = ns + "kept/" + utc_stamp() + "-" +
                             std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 1000000000);
    move_refs(row, x, ns + "old/", kept + "-earlier/"); // left by a fetch whose keeping failed
    copy_host_refs(row, x, ns + "old/", "create");
    CommandOutcome f = run_argv(x, fetch_mirror_argv(row.repo_base, ext_url(upload), row.name, !w.head.empty()),
                                m_options.step_timeout);
    // Counted again after the fetch: refs the sandbox made between the count and the fetch do not
    // stay (what the host held before is in old/, and is kept below as ever).
    if (const auto n = static_cast<long>(
            lines_of(run_argv(x, list_refs_argv(row.repo_base, all_refs_prefix(row.name)), m_options.step_timeout).out)
                .size());
        n > k_max_refs) {
      forget_refs(row, x, mirror_prefix(row.name));
      forget_refs(row, x, all_refs_prefix(row.name));
      forget_refs(row, x, head_ref(row.name));
      f.status = 1;
      f.err = std::to_string(n) + " refs arrived (more than " + std::to_string(k_max_refs) + "): not kept";
    }
    CommandOutcome lost = run_argv(x, only_old_argv(row.repo_base, row.name), m_options.step_timeout);
    if (!lost.ok() || trim(lost.out) != "0") {
      move_refs(row, x, ns + "old/", kept + "/");
    } else {
      forget_refs(row, x, ns + "old/");
    }
    return f.ok() ? std::string() : "git fetch: " + f.message();
  } catch (const exec::HostError& e) {
    return std::string("git fetch: ") + e.what();
  }
}

// Fast-forwards the sandbox's branch in the repository when `new` made that branch (a branch that
// was there before is the human's: its work waits at sandbox/NAME/BRANCH). Returns the note.
std::string SandboxManager::fast_forward(const SandboxRow& row, exec::RemoteExecutor& x, std::string& head) {
  const std::string mine = "sandbox/" + row.name + "/" + row.branch;
  if (!row.own_branch) {
    return "branch " + row.branch + " was there before the sandbox, so it is not moved: the sandbox's work is at " +
           mine + " (git log " + mine + "; git merge " + mine + ")";
  }
  CommandOutcome ff = run_argv(x, fast_forward_argv(row.repo_base, row.name, row.branch), k_quick);
  if (!ff.ok()) {
    return "branch " + row.branch + " was not moved (" + ff.message() + "): the sandbox's work is at " + mine +
           " (git merge " + mine + ")";
  }
  head = trim(
      run_argv(x, {"git", "-C", row.repo_base, "rev-parse", "--verify", "--quiet", "refs/heads/" + row.branch}, k_quick)
          .out);
  return {};
}

// Copies every ref the host holds for the sandbox (but refs/sandbox/NAME/old/) under `to`, with
// update-ref's `verb` (create / update); false when there was none or it failed.
bool SandboxManager::copy_host_refs(const SandboxRow& row, exec::RemoteExecutor& x, const std::string& to,
                                    const std::string& verb) {
  std::string input;
  const std::string ns = "refs/sandbox/" + row.name + "/";
  for (const std::string& from : {mirror_prefix(row.name), ns}) {
    const std::string tag = from == mirror_prefix(row.name) ? "branches/" : "";
    for (const auto& [sha, ref] : refs_under(row.repo_base, x, from)) {
      if (ref.rfind(ns + "old/", 0) != 0) {
        input += verb + " " + to + tag + ref.substr(from.size()) + " " + sha + "\n";
      }
    }
  }
  return !input.empty() && run_argv(x, delete_refs_argv(row.repo_base), m_options.step_timeout, input).ok();
}

// Renames every ref under `from` to `to` in one transaction (all or nothing).
bool SandboxManager::move_refs(const SandboxRow& row, exec::RemoteExecutor& x, const std::string& from,
                               const std::string& to) {
  std::string input;
  for (const auto& [sha, ref] : refs_under(row.repo_base, x, from)) {
    input += "create " + to + ref.substr(from.size()) + " " + sha + "\ndelete " + ref + "\n";
  }
  return input.empty() || run_argv(x, delete_refs_argv(row.repo_base), m_options.step_timeout, input).ok();
}

void SandboxManager::forget_refs(const SandboxRow& row, exec::RemoteExecutor& x, const std::string& prefix) {
  std::string input;
  for (const auto& [sha, ref] : refs_under(row.repo_base, x, prefix)) {
    input += "delete " + ref + "\n";
  }
  if (!input.empty()) {
    run_argv(x, delete_refs_argv(row.repo_base), m_options.step_timeout, input);
  }
}

SyncResult SandboxManager::sync(const std::string& host_name) {
  const std::string name = sandbox_of_host(host_name);
  auto row = find(name);
  if (!row) {
    throw SandboxError(Kind::not_found, "no sandbox named '" + name + "' (see sandbox_ls)");
  }
  auto x = executor_of(row->host);
  std::string why;
  if (check_ownership(*row, *x, why) != Ownership::ours) {
    step_failed("sandbox " + name + " cannot be synced: " + (why.empty() ? "nothing was made yet" : why));
  }
  std::vector<std::string> in = inside(*row, *x, false, why);
  if (in.empty()) {
    step_failed("cannot reach sandbox " + name + "'s repository: " + why);
  }
  SyncResult r;
  r.name = name;
  r.branch = row->branch;
  r.work = inspect(*x, in);
  if (!r.work.known) {
    step_failed("cannot read sandbox " + name + "'s repository: " + r.work.why_unknown);
  }
  if (std::string err = fetch_work(*row, *x, in, r.work); !err.empty()) {
    step_failed("fetching from sandbox " + name + " failed: " + err);
  }
  r.note = fast_forward(*row, *x, r.branch_head);
  r.refs = lines_of(run_argv(*x, list_refs_argv(row->repo_base, mirror_prefix(name)), k_quick).out);
  count_unmerged(*row, *x, r.work, true);
  return r;
}

} // namespace smcp::sandbox
