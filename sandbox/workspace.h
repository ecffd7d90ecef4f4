// A sandbox's workspace: its own git repository, a clone of the host's, that the host never opens
// with git again. The container sees the clone (work tree and .git, read-write) at /workspace and,
// for a shared clone, the host repository's object store read-only; never the host's .git
// directory (config, hooks, refs, worktrees, index). Work comes back only as git objects: the host
// runs `git fetch` whose other end, git-upload-pack, runs inside the sandbox as the agent (through
// `podman exec`, srun, ...), so what the sandbox wrote is read as pack data (checked with fsck) and
// never as configuration, hooks or paths. See docs/security.md.
//
// Everything here builds argv vectors or parses output: nothing runs (tests/unit/workspace_test.cpp).
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace smcp::sandbox {

// Makes `dir` (the worktrees directory) a directory of ours, mode 0700, refusing a link or one owned
// by someone else: sandboxes' directories live in it, and nothing inside a sandbox can write it.
std::vector<std::string> prepare_worktrees_dir_argv(const std::string& dir);

// Prints "alternates" when the host's object store has alternates of its own, and the first file
// in it others cannot read (if any): a shared clone needs neither.
std::vector<std::string> objects_probe_argv(const std::string& objects);

// The sandbox's clone of `top`, branch `branch` checked out: `--shared` (its objects come from the
// host's store, mounted read-only) or `--no-local` (a self-contained copy).
std::vector<std::string> clone_argv(const std::string& top, const std::string& dir, const std::string& branch,
                                    bool shared);

// `rm -rf` of a sandbox's directory that never follows a link (`dir` itself must be a directory,
// not a link) nor leaves its filesystem.
std::vector<std::string> remove_tree_argv(const std::string& dir);
// Moves `dir` to `to` (same directory, no overwrite), for a sandbox whose work could not be read.
std::vector<std::string> move_aside_argv(const std::string& dir, const std::string& to);

// The id file beside a sandbox's directory: written (0600) when `new` reserves the name, read back
// before anything is removed.
std::string id_file(const std::string& worktrees_dir, const std::string& name);
std::vector<std::string> write_id_argv(const std::string& path, const std::string& uid);
// Removes the id file only when it holds `uid`.
std::vector<std::string> remove_id_argv(const std::string& path, const std::string& uid);
// Prints the id file's content when it is a regular file (not a link).
std::vector<std::string> read_id_argv(const std::string& path);

// `ext::` URL running `argv` (git-upload-pack inside the sandbox): spaces and '%' escaped.
std::string ext_url(const std::vector<std::string>& argv);

// Host refs for a sandbox's work.
std::string mirror_prefix(const std::string& name);   // refs/remotes/sandbox/NAME/ (its branches)
std::string head_ref(const std::string& name);        // refs/sandbox/NAME/HEAD (its HEAD, detached or not)
std::string all_refs_prefix(const std::string& name); // refs/sandbox/NAME/refs/ (every ref: stash, tags, ...)
std::string rescue_prefix(const std::string& name, const std::string& stamp); // refs/sandbox-rescue/NAME/STAMP/

// The host's `git fetch` of every ref of the sandbox: its branches into mirror_prefix, all its refs
// (stash, tags, ...) into all_refs_prefix, and HEAD into head_ref when it has one (`with_head`:
// an unborn HEAD would fail the whole fetch).
std::vector<std::string> fetch_mirror_argv(const std::string& top, const std::string& url, const std::string& name,
                                           bool with_head);
// Fast-forwards the host's branch to the sandbox's (refused by git when not a fast-forward or when
// the branch is checked out on the host).
std::vector<std::string> fast_forward_argv(const std::string& top, const std::string& name, const std::string& branch);
// The host's fetch of the refs a rescue made inside (refs/smcp-rescue/*) to rescue_prefix.
std::vector<std::string> fetch_rescue_argv(const std::string& top, const std::string& url, const std::string& prefix);
// Prints "SHA REF" for each of the sandbox's refs on the host.
std::vector<std::string> list_refs_argv(const std::string& top, const std::string& prefix);
// Deletes refs given on stdin ("delete REF\n" lines).
std::vector<std::string> delete_refs_argv(const std::string& top);
// Counts the commits of every ref the host holds for sandbox `name` (what sync and rm brought
// over, and what an earlier sync brought that the sandbox has since deleted) that no branch has.
std::vector<std::string> host_unmerged_argv(const std::string& top, const std::string& name);
// The refs the sandbox would send (`git ls-remote`), to count them on the host before a fetch.
std::vector<std::string> ls_remote_argv(const std::string& top, const std::string& url);
// Counts the commits of refs/sandbox/NAME/old/* (the host's refs for the sandbox before a fetch)
// that neither a branch nor the refs after the fetch hold: work the fetch would have lost.
std::vector<std::string> only_old_argv(const std::string& top, const std::string& name);
// Counts commits reachable from `shas` that no branch of the host has.
std::vector<std::string> unmerged_count_argv(const std::string& top, const std::vector<std::string>& shas);
// Prints "SHA missing" for each line of stdin the host does not have.
std::vector<std::string> have_objects_argv(const std::string& top);

// What runs inside the sandbox (as the agent, in /workspace).
std::vector<std::string> inspect_argv();
// Copies every branch, HEAD, the stash and a commit of the uncommitted tree (untracked files
// included, ignored ones not) to refs/smcp-rescue/ inside the sandbox's repository.
std::vector<std::string> rescue_argv(const std::string& name);

// More refs than this in a sandbox are not brought over (a fetch of each would flood the host's
// repository): its work is then unknown, and rm needs force (which moves the directory aside).
constexpr long k_max_refs = 20000;

// The sandbox's work as inspect_argv() reports it.
struct WorkStatus {
  bool known = false;
  std::string why_unknown;
  std::string head;                                          // HEAD's commit ("" before the first commit)
  std::string head_branch;                                   // the branch HEAD is on; "" when detached
  std::vector<std::pair<std::string, std::string>> branches; // (name, sha)
  std::vector<std::pair<std::string, std::string>> refs;     // every ref (full name, sha)
  // The commits that hold the sandbox's work: every ref but refs/remotes/ (the host's branches as
  // cloned), and HEAD.
  std::vector<std::string> tips() const;
  int changed = 0;   // tracked files changed, staged, deleted or conflicted
  int untracked = 0; // files not tracked and not ignored
  bool truncated = false;
  long ref_count = 0; // every ref, refs/remotes/ included
  int unmerged = -1;  // commits no branch of the host has (-1: not computed)
  bool has_work() const { return changed > 0 || untracked > 0 || unmerged > 0; }
  // "clean", "dirty", "unmerged" or "unknown"
  std::string state() const;
  // One line for people: "2 changed files, 1 untracked file, 3 commits on no branch of the repository".
  std::string summary() const;
};
WorkStatus parse_inspect(const std::string& out);

// Now, UTC, as "20261207T120000Z": the stamp of rescue and kept refs.
std::string utc_stamp();

// A 40- or 64-digit lower-case hex object name.
bool is_object_name(const std::string& s);

} // namespace smcp::sandbox
