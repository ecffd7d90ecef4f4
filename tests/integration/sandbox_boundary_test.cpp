// The sandbox as a boundary, attacked from inside: an agent in a container sandbox runs what it
// likes as its user (here through `podman exec` or `docker exec`, as the review's attacker did), then the host does
// what a human does next (new, ls, sync, rm, reset, and git in the repository). Each test is one
// attack of the adversarial review of issue 21 and asserts that nothing reached the host: no code
// ran there, no host file was written, followed or deleted, and no work was lost. Real podman and
// a real Docker engine (each test runs on both: `/Podman`, `/Docker`), git and the real binary;
// skipped (saying why) only without that runtime or the sandbox image. Keep adding attacks here.
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

// Defect 1: git configuration, attributes and a `commondir` planted in whatever git directory the
// sandbox can write, with a filter that would create `mark` on the host; then everything a human
// does next on the host.
TEST_P(SandboxBoundaryTest, GitDataPlantedInsideNeverRunsOnTheHost) {
  make("a1", "feat");
  const std::string host_config = slurp(repo + "/.git/config");
  const std::string attack =
      "G=$(git rev-parse --path-format=absolute --git-common-dir); D=$(git rev-parse --path-format=absolute "
      "--git-dir); W=$(dirname \"$G\")/.sandboxes/a1; E=/workspace/evil; mkdir -p $E/info; "
      "for f in objects refs HEAD packed-refs; do ln -s \"$G/$f\" $E/$f 2>/dev/null; done; "
      "printf '[core]\\n\\trepositoryformatversion = 0\\n\\tfsmonitor = touch " +
      mark + "\\n\\tpager = touch " + mark + "\\n[filter \"x\"]\\n\\tsmudge = sh -c \\\"touch " + mark +
      "; cat\\\"\\n\\tclean = cat\\n\\trequired\\n' > $E/config; echo '* filter=x' > $E/info/attributes; "
      "for g in \"$G\" \"$D\"; do echo \"$W/evil\" > \"$g/commondir\" 2>/dev/null; cat $E/config >> \"$g/config\" "
      "2>/dev/null; cat $E/config >> \"$g/config.worktree\" 2>/dev/null; mkdir -p \"$g/info\" \"$g/hooks\" "
      "2>/dev/null; "
      "echo '* filter=x' >> \"$g/info/attributes\" 2>/dev/null; for h in post-checkout pre-commit "
      "reference-transaction "
      "post-merge; do printf '#!/bin/sh\\ntouch " +
      mark + "\\n' > \"$g/hooks/$h\" 2>/dev/null; chmod +x \"$g/hooks/$h\" 2>/dev/null; done; done; true";
  auto a = inside("a1", attack);
  ASSERT_EQ(a.status, 0) << a.err;
  // The host's git directory is not the sandbox's: nothing of it is there to write.
  EXPECT_NE(inside("a1", "test -e '" + repo + "/.git/config'").status, 0) << "the host's .git is visible inside";
  EXPECT_NE(inside("a1", "touch '" + repo + "/.git/objects/x'").status, 0) << "the host's objects are writable";

  make("a2"); // the review's exploit ran here, as root
  EXPECT_EQ(cli({"ls"}).status, 0);
  cli({"sync", "-n", "a1"});
  for (const auto& argv : std::vector<std::vector<std::string>>{{"status"},
                                                                {"log", "--all", "-n", "3"},
                                                                {"checkout", "-q", "-b", "human"},
                                                                {"checkout", "-q", "feat"},
                                                                {"gc", "--quiet"}}) {
    std::vector<std::string> g = {"git", "-C", repo};
    g.insert(g.end(), argv.begin(), argv.end());
    run(g);
  }
  EXPECT_EQ(cli({"rm", "-n", "a1", "--force"}).status, 0);
  EXPECT_EQ(cli({"rm", "-n", "a2"}).status, 0);
  expect_no_host_effect();
  EXPECT_EQ(slurp(repo + "/.git/config"), host_config);
  EXPECT_FALSE(fs::exists(repo + "/.git/commondir"));
  EXPECT_FALSE(fs::exists(repo + "/.git/hooks/post-checkout"));
}

// Defect 2: a link planted where the host's cleanup would follow it (the sandbox's git directory,
// its work tree) must never empty the host directory it points at.
TEST_P(SandboxBoundaryTest, RmNeverFollowsALinkPlantedInside) {
  const std::string victim = dir + "/victim";
  fs::create_directories(victim);
  std::ofstream(victim + "/precious") << "keep me\n";
  make("b1");
  auto a = inside("b1", "D=$(git rev-parse --path-format=absolute --git-dir); ln -s '" + victim +
                            "' /workspace/link; mkdir -p /workspace/sub; ln -s '" + victim +
                            "' /workspace/sub/deeper; rm -rf \"$D\" 2>/dev/null; ln -s '" + victim +
                            "' \"$D\" 2>/dev/null; true");
  ASSERT_EQ(a.status, 0) << a.err;
  auto refused = cli({"rm", "-n", "b1"});
  EXPECT_NE(refused.status, 0) << "its work cannot be read, so rm needs force: " << refused.out;
  auto rm = cli({"rm", "-n", "b1", "--force"});
  EXPECT_EQ(rm.status, 0) << rm.err;
  EXPECT_EQ(slurp(victim + "/precious"), "keep me\n");
  run({"git", "-C", repo, "worktree", "prune"});
  run({"git", "-C", repo, "gc", "--quiet", "--prune=now"});
  EXPECT_EQ(slurp(victim + "/precious"), "keep me\n");
}

// Defect 3: a link planted where the manager writes (the exclude file) is never written through.
TEST_P(SandboxBoundaryTest, TheManagerNeverWritesThroughALinkPlantedInside) {
  make("c1");
  const std::string target = dir + "/written-through-link";
  auto a = inside("c1", "G=$(git rev-parse --path-format=absolute --git-common-dir); mkdir -p \"$G/info\"; "
                        "rm -f \"$G/info/exclude\"; ln -s '" +
                            target + "' \"$G/info/exclude\"; true");
  ASSERT_EQ(a.status, 0) << a.err;
  make("c2");
  EXPECT_FALSE(fs::exists(target)) << slurp(target);
  // The host's own exclude file is a plain file of the host's.
  EXPECT_FALSE(fs::is_symlink(repo + "/.git/info/exclude"));
}

// Defect 4: rm and reset never lose work silently: refused with what is there, kept (and said
// where) with force; clean work comes over as commits on the branch.
TEST_P(SandboxBoundaryTest, RmAndResetRefuseToLoseWorkAndForceKeepsIt) {
  // reset removes the sandbox images: images of its own (tags of the test image), so that the
  // shared tag stays for the tests running beside this one.
  const std::string image = "localhost/sandbox-mcp-boundary-reset:" + std::to_string(::getpid());
  const std::string base = "localhost/sandbox-mcp-boundary-reset-base:" + std::to_string(::getpid());
  ASSERT_EQ(run(rt({"tag", k_image, image})).status, 0);
  ASSERT_EQ(run(rt({"tag", k_image, base})).status, 0);
  extra_images.insert(extra_images.end(), {image, base});
  write_config({{"sandbox", {{"image", image}, {"base_image", base}}}});
  make("d1", "feat");
  const std::string commit = "git -c user.name=a -c user.email=a@a commit -q";
  auto a = inside("d1", "echo one > one.txt && git add one.txt && " + commit +
                            " -m one && echo changed >> README && echo new > untracked.txt && "
                            "git stash list >/dev/null");
  ASSERT_EQ(a.status, 0) << a.err;
  auto ls = cli({"ls"});
  EXPECT_NE(ls.out.find("dirty"), std::string::npos) << ls.out;
  EXPECT_NE(ls.out.find("1 changed file, 1 untracked file"), std::string::npos) << ls.out;

  auto refused = cli({"rm", "-n", "d1"});
  EXPECT_EQ(refused.status, 1);
  EXPECT_NE(refused.err.find("1 changed file, 1 untracked file"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("force"), std::string::npos) << refused.err;
  EXPECT_NE(cli({"ls"}).out.find("d1"), std::string::npos) << "refused rm removed it";
  auto reset = cli({"reset"});
  EXPECT_NE(reset.out.find("kept d1"), std::string::npos) << reset.out;
  EXPECT_TRUE(fs::exists(repo + "/.git/sandbox-mcp/sandboxes/d1/untracked.txt"));

  // A commit on a detached HEAD, too.
  ASSERT_EQ(inside("d1", "git checkout -q --detach && echo det > det.txt && git add det.txt && " + commit +
                             " -m detached && git rev-parse HEAD")
                .status,
            0);
  auto rm = cli({"rm", "-n", "d1", "--force"});
  ASSERT_EQ(rm.status, 0) << rm.err;
  const std::string key = "is kept at ";
  auto at = rm.out.find(key);
  ASSERT_NE(at, std::string::npos) << rm.out;
  std::string prefix = rm.out.substr(at + key.size());
  prefix = prefix.substr(0, prefix.find('\n'));
  ASSERT_EQ(prefix.rfind("refs/sandbox-rescue/d1/", 0), 0u) << prefix;
  // Everything is in the repository: the branch's commit, the detached one, the uncommitted tree.
  EXPECT_EQ(run({"git", "-C", repo, "show", "feat:one.txt"}).out, "one\n") << "feat was fast-forwarded";
  EXPECT_EQ(run({"git", "-C", repo, "show", prefix + "HEAD:det.txt"}).out, "det\n");
  auto worktree = run({"git", "-C", repo, "show", prefix + "worktree:untracked.txt"});
  EXPECT_EQ(worktree.out, "new\n") << worktree.err;
  EXPECT_NE(run({"git", "-C", repo, "show", prefix + "worktree:README"}).out.find("changed"), std::string::npos);
  EXPECT_FALSE(fs::exists(repo + "/.git/sandbox-mcp/sandboxes/d1"));
}

TEST_P(SandboxBoundaryTest, CleanWorkComesOverAsCommitsOnTheBranchAndRmNeedsNoForce) {
  make("e1", "topic");
  ASSERT_EQ(
      inside("e1", "echo x > x.txt && git add x.txt && git -c user.name=a -c user.email=a@a commit -q -m x").status, 0);
  auto sync = cli({"sync", "-n", "e1"});
  ASSERT_EQ(sync.status, 0) << sync.err;
  EXPECT_NE(sync.out.find("refs/remotes/sandbox/e1/topic"), std::string::npos) << sync.out;
  EXPECT_EQ(run({"git", "-C", repo, "show", "topic:x.txt"}).out, "x\n");
  auto rm = cli({"rm", "-n", "e1"});
  EXPECT_EQ(rm.status, 0) << rm.err;
  // Its mirror refs go with it; the branch stays.
  EXPECT_EQ(run({"git", "-C", repo, "for-each-ref", "refs/remotes/sandbox/e1/"}).out, "");
  EXPECT_EQ(run({"git", "-C", repo, "show", "topic:x.txt"}).out, "x\n");
}

// Defect 5: the human's gh configuration (and the other seed files) are read-only inside.
TEST_P(SandboxBoundaryTest, TheSeedFilesAreReadOnlyInside) {
  const std::string home = dir + "/home";
  fs::create_directories(home + "/.config/gh");
  std::ofstream(home + "/.config/gh/config.yml") << "git_protocol: https\n";
  std::ofstream(home + "/.gitconfig") << "[user]\n\tname = human\n";
  {
    testing::ScopedEnv e({{"HOME", home}});
    make("f1");
  }
  auto a = inside("f1", "echo 'pager: touch /tmp/x' >> /home/agent/.config/gh/config.yml; "
                        "echo '[core]' >> /home/agent/.gitconfig; "
                        "touch /home/agent/.config/gh/hosts.yml; true");
  EXPECT_EQ(inside("f1", "cat /home/agent/.config/gh/config.yml").out, "git_protocol: https\n") << "not mounted?";
  EXPECT_EQ(slurp(home + "/.config/gh/config.yml"), "git_protocol: https\n");
  EXPECT_EQ(slurp(home + "/.gitconfig"), "[user]\n\tname = human\n");
  EXPECT_FALSE(fs::exists(home + "/.config/gh/hosts.yml"));
}

// Defect 6: with a root-owned repository (these tests run as root) the agent is neither host root
// nor any host user, and a setuid file it makes gives nothing. Docker has no per-container user
// namespace (the daemon's userns-remap decides; the tests' engine runs without): there the agent is
// host uid 1000, the configured user, never root.
TEST_P(SandboxBoundaryTest, TheAgentIsNeverHostRootAndSetuidIsInert) {
  make("g1");
  auto a = inside("g1", "id -u; cp /bin/sh /workspace/rootsh; chmod u+s /workspace/rootsh; "
                        "grep NoNewPrivs /proc/self/status");
  ASSERT_EQ(a.status, 0) << a.err;
  EXPECT_EQ(a.out.substr(0, a.out.find('\n')), "1000");
  EXPECT_NE(a.out.find("NoNewPrivs:\t1"), std::string::npos) << a.out;
  struct stat st {};
  ASSERT_EQ(::stat((repo + "/.git/sandbox-mcp/sandboxes/g1/rootsh").c_str(), &st), 0);
  EXPECT_NE(st.st_uid, 0u) << "a file the agent made belongs to host root";
  if (rt.docker()) {
    EXPECT_EQ(st.st_uid, 1000u) << "docker: the agent is the configured uid 1000";
  } else {
    EXPECT_GE(st.st_uid, 65536u) << "the agent is a host user (uid " << st.st_uid << ")";
  }
  // The sandboxes' directory is the manager's alone: nobody else on the host reaches a setuid file.
  ASSERT_EQ(::stat((repo + "/.git/sandbox-mcp/sandboxes").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  // Inside, the setuid bit does not work either (podman: nosuid mount and no-new-privileges; docker's
  // bind mounts take no nosuid: no-new-privileges alone).
  EXPECT_EQ(inside("g1", "/workspace/rootsh -c 'id -u'").out, "1000\n");
}

// Defect 10: a registry file that a merge brings into the work tree is not the registry, and a row
// edited into the real one cannot aim rm at a container or directory it did not make.
TEST_P(SandboxBoundaryTest, APoisonedRegistryCannotAimRmAnywhere) {
  const std::string victim = "smcp-victim-" + std::to_string(::getpid());
  extra_containers.push_back(victim);
  ASSERT_EQ(run(rt({"run", "-d", "--name", victim, k_image, "sleep", "infinity"})).status, 0);
  const std::string victim_dir = dir + "/victim-dir";
  fs::create_directories(victim_dir);
  std::ofstream(victim_dir + "/precious") << "keep\n";
  // A branch that adds .sandbox_db.sqlite (the original manager's file) with a row naming them.
  const std::string db = repo + "/.sandbox_db.sqlite";
  const std::string insert =
      "CREATE TABLE sandboxes (name TEXT PRIMARY KEY, branch TEXT, container_id TEXT, slurm_job_id TEXT, work_dir "
      "TEXT, ccr_mode INTEGER DEFAULT 0, created_at TEXT, updated_at TEXT, host TEXT DEFAULT 'local', runtime TEXT, "
      "image TEXT, repo_base TEXT, phase TEXT DEFAULT 'ready', wrapper TEXT DEFAULT '', gpus TEXT DEFAULT '', "
      "gpu_shared INTEGER DEFAULT 0); INSERT INTO sandboxes (name, branch, container_id, work_dir, runtime, image, "
      "repo_base, phase, created_at) VALUES ('evil', 'main', '" +
      victim + "', '" + victim_dir + "', '" + rt.name + "', '" + k_image + "', '" + repo +
      "', 'ready', datetime('now'));";
  ASSERT_EQ(run({"sqlite3", db, insert}).status, 0);
  ASSERT_EQ(run({"git", "-C", repo, "add", "-f", ".sandbox_db.sqlite"}).status, 0);
  ASSERT_EQ(run({"git", "-C", repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "a dependency"})
                .status,
            0);
  auto rm = cli({"rm", "-n", "evil"});
  EXPECT_NE(rm.status, 0);
  EXPECT_TRUE(rt.container_exists(victim)) << "rm removed a container it did not make";
  EXPECT_TRUE(fs::exists(victim_dir + "/precious"));

  // The same row edited into the real registry (made by a first `new`).
  make("h1");
  const std::string real = repo + "/.git/sandbox-mcp/sandboxes.sqlite";
  ASSERT_TRUE(fs::exists(real));
  ASSERT_EQ(run({"sqlite3", real,
                 "UPDATE sandboxes SET container_id = '" + victim + "', work_dir = '" + victim_dir +
                     "' WHERE name = 'h1'; INSERT INTO sandboxes (name, branch, container_id, work_dir, runtime, "
                     "image, repo_base, phase, uid, created_at) VALUES ('evil2', 'main', '" +
                     victim + "', '" + victim_dir + "', '" + rt.name + "', '" + k_image + "', '" + repo +
                     "', 'ready', 'ffffffffffffffffffffffffffffffff', datetime('now'));"})
                .status,
            0);
  EXPECT_NE(cli({"rm", "-n", "evil2"}).status, 0);
  EXPECT_NE(cli({"rm", "-n", "h1", "--force"}).status, 0) << "a row naming another directory is refused";
  EXPECT_TRUE(rt.container_exists(victim));
  EXPECT_TRUE(fs::exists(victim_dir + "/precious"));
}

// Defect 11: the registry belongs to the repository, not to the directory the CLI runs in.
TEST_P(SandboxBoundaryTest, TheRegistryIsTheRepositorysFromAnySubfolder) {
  fs::create_directories(repo + "/sub/deeper");
  make("i1");
  auto ls = cli({"ls"}, repo + "/sub/deeper");
  EXPECT_NE(ls.out.find("i1"), std::string::npos) << ls.out << ls.err;
  auto clash = cli({"new", "-n", "i1"}, repo + "/sub");
  EXPECT_NE(clash.status, 0);
  EXPECT_NE(clash.err.find("already exists"), std::string::npos) << clash.err;
  EXPECT_EQ(cli({"rm", "-n", "i1"}, repo + "/sub").status, 0);
}

// Every TEST_P of the suite (also those in sandbox_boundary_review_test.cpp) on both runtimes.
INSTANTIATE_TEST_SUITE_P(, SandboxBoundaryTest, ::testing::Values("podman", "docker"), testing::runtime_test_name);

} // namespace
} // namespace smcp
