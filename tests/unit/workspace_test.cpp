// The sandbox workspace's pure parts (sandbox/workspace.h): what git inside a sandbox reports and
// how it is counted, the ext:: URL, the refs; and the registry's row ids (an undo or rm of one row
// never removes a later sandbox of the same name) and journal choice.
#include "sandbox/host_commands.h"
#include "sandbox/registry.h"
#include "sandbox/workspace.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <unistd.h>

namespace smcp::sandbox {
namespace {

const std::string k_sha = "0123456789abcdef0123456789abcdef01234567";

TEST(WorkspaceTest, InspectCountsChangedAndUntrackedFilesAndRenamesOnce) {
  std::string z = " M README";
  z += '\0';
  z += "R  new name";
  z += '\0';
  z += "old name";
  z += '\0';
  z += "?? a b.txt";
  z += '\0';
  z += "?? dir/c";
  z += '\0';
  const std::string other = "1111111111111111111111111111111111111111";
  WorkStatus w = parse_inspect("HEAD " + k_sha + "\nON refs/heads/feat\nREF " + k_sha + " refs/heads/feat\nREF " +
                               other + " refs/stash\nREF " + other + " refs/remotes/origin/main\nSTATUS\n" + z);
  ASSERT_TRUE(w.known);
  EXPECT_EQ(w.changed, 2);
  EXPECT_EQ(w.untracked, 2);
  EXPECT_EQ(w.head, k_sha);
  EXPECT_EQ(w.head_branch, "feat");
  ASSERT_EQ(w.branches.size(), 1u);
  EXPECT_EQ(w.branches[0].first, "feat");
  EXPECT_EQ(w.refs.size(), 3u);
  // The stash holds work; the host's branches as cloned (refs/remotes) do not.
  EXPECT_EQ(w.tips(), (std::vector<std::string>{k_sha, other, k_sha}));
  EXPECT_EQ(w.state(), "dirty");
  EXPECT_EQ(w.summary(), "2 changed files, 2 untracked files");
}

TEST(WorkspaceTest, CleanUnmergedAndUnknown) {
  WorkStatus w = parse_inspect("HEAD " + k_sha + "\nON \nSTATUS\n");
  ASSERT_TRUE(w.known);
  EXPECT_EQ(w.head_branch, ""); // detached
  w.unmerged = 0;
  EXPECT_EQ(w.state(), "clean");
  EXPECT_FALSE(w.has_work());
  w.unmerged = 3;
  EXPECT_EQ(w.state(), "unmerged");
  EXPECT_EQ(w.summary(), "3 commits on no branch of the repository");
  EXPECT_FALSE(parse_inspect("NOWORKSPACE /workspace is not a git repository\n").known);
  EXPECT_EQ(parse_inspect("NOWORKSPACE /workspace is gone\n").why_unknown, "/workspace is gone");
  EXPECT_FALSE(parse_inspect("").known);
  // Garbage for object names is not taken as one.
  EXPECT_EQ(parse_inspect("HEAD $(rm -rf /)\nSTATUS\n").head, "");
  EXPECT_TRUE(parse_inspect("REF nothex refs/heads/x\nSTATUS\n").branches.empty());
}

// A git that failed inside is never "clean" (second review: a broken index read as no changes).
TEST(WorkspaceTest, AFailedGitIsUnknownNeverClean) {
  EXPECT_FALSE(parse_inspect("HEAD " + k_sha + "\nREFSRC 0\nSTATUSRC 128\nSTATUS\n").known);
  EXPECT_EQ(parse_inspect("HEAD " + k_sha + "\nREFSRC 0\nSTATUSRC 128\nSTATUS\n").why_unknown,
            "git status failed in the sandbox");
  EXPECT_FALSE(parse_inspect("REFSRC 1\nSTATUSRC 0\nSTATUS\n").known);
  EXPECT_TRUE(parse_inspect("REFSRC 0\nSTATUSRC 0\nSTATUS\n").known);
  // Too many refs to bring over: unknown (rm needs force, which moves the directory aside).
  WorkStatus many = parse_inspect("REFSRC 0\nREFCOUNT 20001\nSTATUSRC 0\nSTATUS\n");
  EXPECT_FALSE(many.known);
  EXPECT_NE(many.why_unknown.find("20001 refs"), std::string::npos);
  // Uncommitted entries of linked worktrees count as changes.
  WorkStatus wt = parse_inspect("WTDIRTY 2\nREFSRC 0\nSTATUSRC 0\nSTATUS\n");
  EXPECT_EQ(wt.changed, 2);
  EXPECT_EQ(wt.state(), "dirty");
}

// What a program inside a sandbox says reaches a human's terminal only without control sequences.
TEST(WorkspaceTest, MessagesCarryNoTerminalControl) {
  CommandOutcome o;
  o.status = 1;
  o.err = "\x1b]0;PWNED\a\x1b[2J\x1b[31mFAKE: removed cleanly\xc2\x9b"
          "2J line\ttwo\n\x7f"
          "end";
  const std::string m = o.message();
  EXPECT_EQ(m.find('\x1b'), std::string::npos) << m;
  EXPECT_EQ(m.find('\a'), std::string::npos) << m;
  EXPECT_EQ(m.find("\xc2\x9b"), std::string::npos) << m;
  EXPECT_NE(m.find("FAKE: removed cleanly"), std::string::npos) << m;
  EXPECT_NE(m.find("line\ttwo\n  | "), std::string::npos) << m; // its lines marked as the program's
  o.err = "caf\xc3\xa9";                                        // UTF-8 text stays
  EXPECT_EQ(o.message(), "caf\xc3\xa9");
}

TEST(WorkspaceTest, ExtUrlEscapesSpacesAndPercent) {
  EXPECT_EQ(ext_url({"podman", "exec", "-i", "c 1", "100%"}), "ext::podman exec -i c% 1 100%%");
}

TEST(WorkspaceTest, RefsAreUnderTheSandboxesNamespaces) {
  EXPECT_EQ(mirror_prefix("t1"), "refs/remotes/sandbox/t1/");
  EXPECT_EQ(head_ref("t1"), "refs/sandbox/t1/HEAD");
  auto f = fetch_mirror_argv("/r", "ext::x", "t1", true);
  EXPECT_EQ(f[f.size() - 3], "+refs/heads/*:refs/remotes/sandbox/t1/*");
  EXPECT_EQ(f[f.size() - 2], "+refs/*:refs/sandbox/t1/refs/*"); // the stash, tags, ...
  EXPECT_EQ(f.back(), "+HEAD:refs/sandbox/t1/HEAD");
  // An unborn HEAD (git checkout --orphan) would fail the whole fetch: then it is not asked for.
  EXPECT_EQ(fetch_mirror_argv("/r", "ext::x", "t1", false).back(), "+refs/*:refs/sandbox/t1/refs/*");
  EXPECT_NE(std::find(f.begin(), f.end(), "fetch.fsckObjects=true"), f.end());
  EXPECT_EQ(fast_forward_argv("/r", "t1", "feat").back(), "refs/remotes/sandbox/t1/feat:refs/heads/feat");
}

TEST(WorkspaceTest, ObjectNames) {
  EXPECT_TRUE(is_object_name(k_sha));
  EXPECT_FALSE(is_object_name("0123"));
  EXPECT_FALSE(is_object_name("0123456789ABCDEF0123456789abcdef01234567"));
}

} // namespace
} // namespace smcp::sandbox
