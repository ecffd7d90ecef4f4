// The sandbox boundary, attacked again: the attacks of the three adversarial reviews of issue 21's
// fix (the first reviews' defects are in sandbox_boundary_test.cpp). Each asserts that no work was
// lost and nothing reached the host. Real podman and a real Docker engine (each test on both,
// instantiated in sandbox_boundary_test.cpp), git and the real binary; skipped (saying why) only
// without that runtime or the sandbox image.
#include "tests/support/sandbox_boundary.h"

#include <filesystem>
#include <fstream>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

namespace smcp {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::k_image;
using testing::run;
using testing::SandboxBoundaryTest;
using testing::slurp;
namespace fs = std::filesystem;

// Review of the fix, finding 1: the host runs git in a sandbox's repository (fetch, rev-list): a
// repository a call names must be the server user's and not a sandbox's own, and a call confined
// by a profile names none (a confined command could write one, with a url.insteadOf that runs).
TEST_P(SandboxBoundaryTest, ARepositoryInASandboxOrNotOursOrFromAConfinedCallIsRefused) {
  make("r1");
  // As with rootless podman or docker run by the user: the sandbox's clone belongs to the server's
  // user, so git itself would not refuse it.
  ASSERT_EQ(run({"chown", "-R", "0:0", repo + "/.git/sandbox-mcp/sandboxes/r1"}).status, 0);
  start_server();
  std::string err = testing::tool_error(*client, "sandbox_new",
                                        {{"name", "z1"}, {"repo_base", repo + "/.git/sandbox-mcp/sandboxes/r1"}});
  EXPECT_NE(err.find("cannot hold sandboxes"), std::string::npos) << err;
  const std::string theirs = testing::make_git_repo(dir + "/theirs");
  ASSERT_EQ(run({"chown", "-R", "65534:65534", theirs}).status, 0);
  err = testing::tool_error(*client, "sandbox_new", {{"name", "z2"}, {"repo_base", theirs}});
  EXPECT_TRUE(err.find("uid 65534") != std::string::npos || err.find("not a git repository") != std::string::npos)
      << err;
  start_server({{"SANDBOX_DEFAULT_PROFILE", "restrictive"}});
  err = testing::tool_error(*client, "sandbox_new", {{"name", "z3"}, {"repo_base", repo}});
  EXPECT_NE(err.find("confined by a profile"), std::string::npos) << err;
  const std::string listed = cli({"ls"}).out;
  for (const char* name : {"\nz1 ", "\nz2 ", "\nz3 "}) {
    EXPECT_EQ(listed.find(name), std::string::npos) << "nothing was made: " << listed;
  }
  EXPECT_EQ(cli({"rm", "-n", "r1", "--force"}).status, 0); // its clone is root's now: unreadable inside
}

// Finding 2: an unborn HEAD (git checkout --orphan) must not make the fetch fail quietly and the
// branch's commits vanish.
TEST_P(SandboxBoundaryTest, AnOrphanHeadDoesNotHideCommits) {
  make("o1");
  ASSERT_EQ(inside("o1", "git checkout -q -b work && echo a > a && git add a && git -c user.name=a -c "
                         "user.email=a@a commit -q -m a && git checkout -q --orphan scratch && git rm -q -rf .")
                .status,
            0);
  auto refused = cli({"rm", "-n", "o1"});
  EXPECT_EQ(refused.status, 1) << refused.out;
  EXPECT_NE(refused.err.find("commit"), std::string::npos) << refused.err;
  auto rm = cli({"rm", "-n", "o1", "--force"});
  ASSERT_EQ(rm.status, 0) << rm.err;
  const std::string prefix = kept_at(rm.out);
  ASSERT_FALSE(prefix.empty()) << rm.out;
  EXPECT_EQ(run({"git", "-C", repo, "show", prefix + "heads/work:a"}).out, "a\n");
}

// Finding 3: the stash and a commit only a tag holds are work too.
TEST_P(SandboxBoundaryTest, TheStashAndTaggedCommitsAreWork) {
  make("s1");
  ASSERT_EQ(inside("s1", "git config user.name a && git config user.email a@a && echo stashed >> README && "
                         "git stash -q && git checkout -q --detach && echo t > t && git add t && git commit -q -m "
                         "tagged && git tag keep && git checkout -q main")
                .status,
            0);
  auto ls = cli({"ls"});
  EXPECT_NE(ls.out.find("unmerged"), std::string::npos) << ls.out;
  EXPECT_EQ(cli({"rm", "-n", "s1"}).status, 1);
  auto rm = cli({"rm", "-n", "s1", "--force"});
  ASSERT_EQ(rm.status, 0) << rm.err;
  const std::string prefix = kept_at(rm.out);
  EXPECT_EQ(run({"git", "-C", repo, "show", prefix + "tags/keep:t"}).out, "t\n");
  EXPECT_NE(run({"git", "-C", repo, "show", prefix + "stash:README"}).out.find("stashed"), std::string::npos);
}

// Finding 4: rm stops the agent's processes while it reads and fetches (nothing changes under
// it); a refused rm lets them run on.
TEST_P(SandboxBoundaryTest, ARefusedRmLeavesTheAgentRunning) {
  make("p1");
  ASSERT_EQ(
      inside("p1", "nohup sh -c 'while :; do echo x >> /workspace/tick; sleep 0.2; done' >/dev/null 2>&1 &").status, 0);
  EXPECT_EQ(cli({"rm", "-n", "p1"}).status, 1) << "tick is an untracked file";
  auto count = [&] { return inside("p1", "wc -l < /workspace/tick").out; };
  const std::string before = count();
  std::this_thread::sleep_for(std::chrono::seconds(1));
  EXPECT_NE(count(), before) << "the agent's loop was left stopped";
  EXPECT_EQ(cli({"rm", "-n", "p1", "--force"}).status, 0);
}

// Finding 13: a branch that was there before the sandbox is the human's: sync never moves it.
TEST_P(SandboxBoundaryTest, AHumansBranchIsNeverMovedBySync) {
  ASSERT_EQ(run({"git", "-C", repo, "branch", "theirs"}).status, 0);
  const std::string before = run({"git", "-C", repo, "rev-parse", "theirs"}).out;
  make("t1", "theirs");
  ASSERT_EQ(inside("t1", "echo y > y && git add y && git -c user.name=a -c user.email=a@a commit -q -m y").status, 0);
  auto sync = cli({"sync", "-n", "t1"});
  ASSERT_EQ(sync.status, 0) << sync.err;
  EXPECT_NE(sync.out.find("was there before the sandbox"), std::string::npos) << sync.out;
  EXPECT_EQ(run({"git", "-C", repo, "rev-parse", "theirs"}).out, before);
  EXPECT_EQ(run({"git", "-C", repo, "show", "sandbox/t1/theirs:y"}).out, "y\n");
  EXPECT_EQ(cli({"rm", "-n", "t1"}).status, 1) << "its commit is on no branch of the repository yet";
  ASSERT_EQ(run({"git", "-C", repo, "branch", "-f", "theirs", "sandbox/t1/theirs"}).status, 0); // the human merges
  EXPECT_EQ(cli({"rm", "-n", "t1"}).status, 0);
}

// Findings 5 and 6: the sandboxes live in the git directory (no checkout writes there), and a
// sandbox whose git cannot be read is moved into a new directory of its own.
TEST_P(SandboxBoundaryTest, SandboxesAreOutsideTheWorkTreeAndAsideMeansANewDirectory) {
  make("m1");
  EXPECT_FALSE(fs::exists(repo + "/.sandboxes"));
  EXPECT_EQ(run({"git", "-C", repo, "status", "--porcelain", "--ignored"}).out, "");
  ASSERT_EQ(inside("m1", "echo precious > precious.txt && rm -rf .git && echo broken > .git").status, 0);
  auto rm = cli({"rm", "-n", "m1", "--force"});
  ASSERT_EQ(rm.status, 0) << rm.err;
  const std::string moved = kept_at(rm.out);
  ASSERT_NE(moved.find("/.rescued-m1-"), std::string::npos) << rm.out;
  EXPECT_EQ(slurp(moved + "/precious.txt"), "precious\n");
}

// Second review, finding 1: work is counted from every ref, not the first thousand by name (a
// sandbox that fetched a big upstream has more remote-tracking refs than that before refs/stash).
TEST_P(SandboxBoundaryTest, AStashBehindManyRefsIsStillWork) {
  make("k1");
  ASSERT_EQ(inside("k1", "h=$(git rev-parse HEAD); i=0; while [ $i -lt 1100 ]; do i=$((i+1)); echo \"create "
                         "refs/remotes/upstream/b$i $h\"; done | git update-ref --stdin && echo important > notes.txt "
                         "&& git add notes.txt && git -c user.name=a -c user.email=a@a stash -q")
                .status,
            0);
  auto refused = cli({"rm", "-n", "k1"});
  EXPECT_EQ(refused.status, 1) << refused.out;
  auto rm = cli({"rm", "-n", "k1", "--force"});
  ASSERT_EQ(rm.status, 0) << rm.err;
  EXPECT_EQ(run({"git", "-C", repo, "show", kept_at(rm.out) + "stash:notes.txt"}).out, "important\n") << rm.out;
}

// Second review, finding 2: a git that fails inside (a broken index) is unknown, never clean.
TEST_P(SandboxBoundaryTest, ABrokenIndexIsNotClean) {
  make("b2");
  ASSERT_EQ(inside("b2", "echo p > a.txt && git add a.txt && echo m > b.txt && printf 'DIRC\\0\\0\\0\\2junk' > "
                         ".git/index")
                .status,
            0);
  EXPECT_NE(cli({"ls"}).out.find("unknown"), std::string::npos);
  EXPECT_EQ(cli({"rm", "-n", "b2"}).status, 1);
  auto rm = cli({"rm", "-n", "b2", "--force"});
  ASSERT_EQ(rm.status, 0) << rm.err;
  const std::string kept = kept_at(rm.out);
  EXPECT_TRUE(slurp(kept + "/b.txt") == "m\n" || run({"git", "-C", repo, "show", kept + "worktree:b.txt"}).out == "m\n")
      << rm.out;
}

// Second review, finding 3: commits in a linked worktree are work, and come over.
TEST_P(SandboxBoundaryTest, CommitsInALinkedWorktreeAreWork) {
  make("w1");
  ASSERT_EQ(inside("w1", "git worktree add -q --detach /home/agent/wt HEAD && cd /home/agent/wt && echo w > w && git "
                         "add w && git -c user.name=a -c user.email=a@a commit -q -m w")
                .status,
            0);
  EXPECT_EQ(cli({"rm", "-n", "w1"}).status, 1);
  auto rm = cli({"rm", "-n", "w1", "--force"});
  ASSERT_EQ(rm.status, 0) << rm.err;
  EXPECT_EQ(run({"git", "-C", repo, "show", kept_at(rm.out) + "smcp-worktrees/1:w"}).out, "w\n") << rm.out;
}

// Second review, finding 4: a failed `new` never deletes another sandbox's id file (another
// registry's sandbox of the same name in the same repository).
TEST_P(SandboxBoundaryTest, AFailedNewLeavesAnotherSandboxsIdFileAlone) {
  const std::string other = testing::make_git_repo(dir + "/other");
  start_server(); // its registry is repo's; the sandbox is made in other
  json made = client->call("sandbox_new", {{"name", "idc1"}, {"repo_base", other}});
  ASSERT_EQ(made["name"], "idc1") << made.dump();
  auto clash = cli({"new", "-n", "idc1"}, other); // other's own registry: the name is free there
  EXPECT_NE(clash.status, 0);
  EXPECT_TRUE(fs::exists(other + "/.git/sandbox-mcp/sandboxes/.idc1.sandbox-id"));
  json removed = client->call("sandbox_rm", {{"name", "idc1"}});
  EXPECT_EQ(removed["removed"], true) << removed.dump();
}

// Second review, finding 7: the agent is the configured user whatever the image says.
TEST_P(SandboxBoundaryTest, AnImageWithoutAUserStillRunsTheAgentAsItsUser) {
  const std::string image = "localhost/smcp-rootuser:" + std::to_string(::getpid());
  extra_images.push_back(image);
  const std::string file = dir + "/Containerfile";
  std::ofstream(file) << "FROM " << k_image << "\nUSER root\n";
  auto built = run(rt({"build", "-q", "-t", image, "-f", file, dir}));
  ASSERT_EQ(built.status, 0) << built.err;
  auto made = cli({"new", "-n", "u1", "--image", image});
  ASSERT_EQ(made.status, 0) << made.err;
  EXPECT_EQ(inside("u1", "id -u").out, "1000\n");
  EXPECT_EQ(cli({"rm", "-n", "u1"}).status, 0);
}

// Second review, finding 9: what a sync brought is not forgotten because the agent deleted it since.
TEST_P(SandboxBoundaryTest, WorkAnEarlierSyncBroughtIsNotForgotten) {
  make("s9");
  ASSERT_EQ(inside("s9", "git checkout -q -b work && echo s > s && git add s && git -c user.name=a -c user.email=a@a "
                         "commit -q -m s")
                .status,
            0);
  ASSERT_EQ(cli({"sync", "-n", "s9"}).status, 0);
  ASSERT_EQ(inside("s9", "git checkout -q main && git branch -q -D work").status, 0);
  EXPECT_EQ(cli({"rm", "-n", "s9"}).status, 1) << "sandbox/s9/work holds a commit no branch has";
  auto rm = cli({"rm", "-n", "s9", "--force"});
  ASSERT_EQ(rm.status, 0) << rm.err;
  EXPECT_EQ(kept_file(synced_of(kept_at(rm.out)), "s"), "s\n") << rm.out;
}

// Second review, finding 11: a sandbox with more refs than are brought over is unknown work.
TEST_P(SandboxBoundaryTest, TooManyRefsAreNotBroughtOver) {
  make("f1");
  ASSERT_EQ(inside("f1", "h=$(git rev-parse HEAD); i=0; while [ $i -lt 20050 ]; do i=$((i+1)); echo \"create "
                         "refs/tags/t$i $h\"; done | git update-ref --stdin")
                .status,
            0);
  auto refused = cli({"rm", "-n", "f1"});
  EXPECT_EQ(refused.status, 1);
  EXPECT_NE(refused.err.find("refs (more than"), std::string::npos) << refused.err;
  EXPECT_EQ(cli({"rm", "-n", "f1", "--force"}).status, 0);
  EXPECT_EQ(run({"sh", "-c", "git -C '" + repo + "' for-each-ref | wc -l"}).out, "1\n") << "no refs flooded in";
}

// Third review, finding 1: a branch an earlier sync brought and the agent rewrote since keeps its
// commits on the host (the fetch is forced): rm refuses, force keeps them.
TEST_P(SandboxBoundaryTest, ABranchRewrittenAfterASyncKeepsItsCommits) {
  make("rw");
  const std::string commit = "git -c user.name=a -c user.email=a@a commit -q -m";
  ASSERT_EQ(
      inside("rw", "git checkout -q -b feat && echo f > f && git add f && " + commit + " f && git checkout -q main")
          .status,
      0);
  ASSERT_EQ(cli({"sync", "-n", "rw"}).status, 0);
  ASSERT_EQ(inside("rw", "git branch -f feat main").status, 0);
  EXPECT_NE(cli({"ls"}).out.find("unmerged"), std::string::npos);
  EXPECT_EQ(cli({"rm", "-n", "rw"}).status, 1);
  // The agent names refs like the host's keeping places: they land inside the rescue, not over it.
  ASSERT_EQ(
      inside("rw", "git update-ref refs/synced/branches/feat HEAD && git update-ref refs/branches/feat HEAD").status,
      0);
  auto rm = cli({"rm", "-n", "rw", "--force"});
  ASSERT_EQ(rm.status, 0) << rm.err;
  auto kept = run({"sh", "-c",
                   "git -C '" + repo + "' for-each-ref --contains $(git -C '" + repo + "' rev-parse " +
                       synced_of(kept_at(rm.out)) + "kept 2>/dev/null || echo x) | wc -l"});
  const std::string f_commit =
      run({"sh", "-c",
           "git -C '" + repo + "' for-each-ref --format='%(objectname)' '" + synced_of(kept_at(rm.out)) +
               "' | while read o; do git -C '" + repo + "' show \"$o:f\" 2>/dev/null; done"})
          .out;
  EXPECT_NE(f_commit.find("f"), std::string::npos) << "the rewritten branch's commit is kept: " << rm.out;
  (void)kept;
}

// Third review, finding 3: a branch renamed to a nested name (fix -> fix/sub) still syncs.
TEST_P(SandboxBoundaryTest, ABranchRenamedToANestedNameStillSyncs) {
  make("nb");
  const std::string commit = "git -c user.name=a -c user.email=a@a commit -q -m";
  ASSERT_EQ(inside("nb", "git checkout -q -b fix && echo a > a && git add a && " + commit + " a").status, 0);
  ASSERT_EQ(cli({"sync", "-n", "nb"}).status, 0);
  ASSERT_EQ(inside("nb", "git checkout -q -b tmp && git branch -q -D fix && git checkout -q -b fix/sub && git branch "
                         "-q -D tmp")
                .status,
            0);
  auto sync = cli({"sync", "-n", "nb"});
  ASSERT_EQ(sync.status, 0) << sync.err;
  EXPECT_EQ(run({"git", "-C", repo, "show", "sandbox/nb/fix/sub:a"}).out, "a\n");
  EXPECT_EQ(cli({"rm", "-n", "nb", "--force"}).status, 0);
}

} // namespace
} // namespace smcp
