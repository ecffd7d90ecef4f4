// The sandbox as a boundary, attacked from inside: an agent in a container sandbox runs what it
// likes as its user (here through `podman exec`, as the review's attacker did), then the host does
// what a human does next (new, ls, sync, rm, reset, and git in the repository). Each test is one
// attack of the adversarial review of issue 21 and asserts that nothing reached the host: no code
// ran there, no host file was written, followed or deleted, and no work was lost. Real podman,
// git and the real binary; skipped (saying why) only without podman or the sandbox image. Keep
// adding attacks here.
#include "sandbox/exec/run_process.h"
#include "tests/support/sandbox_calls.h"
#include "tests/support/stdio_client.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

namespace smcp {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
namespace fs = std::filesystem;

constexpr const char* k_image = "localhost/sandbox-mcp:latest";

exec::ProcessResult run(const std::vector<std::string>& argv, std::chrono::milliseconds timeout = 120s) {
  return testing::run_program(argv, timeout);
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class SandboxBoundaryTest : public ::testing::Test {
protected:
  void SetUp() override {
    if (auto reason = testing::why_no_sandbox_image(k_image); !reason.empty()) {
      GTEST_SKIP() << "no container runtime for sandboxes: " << reason;
    }
    char tmpl[] = "/tmp/smcp-boundary-XXXXXX";
    dir = ::mkdtemp(tmpl);
    repo = testing::make_git_repo(dir + "/repo");
    state = dir + "/state";
    config = dir + "/config.json";
    std::ofstream(config) << "{}";
    mark = dir + "/pwned"; // what an attack would create on the host
  }
  void TearDown() override {
    client.reset();
    if (!dir.empty()) {
      testing::remove_containers_of(repo);
      for (const auto& c : extra_containers) {
        run({"podman", "rm", "-f", "-t", "0", c});
      }
      for (const auto& i : extra_images) {
        run({"podman", "rmi", i});
      }
      fs::remove_all(dir);
    }
  }

  exec::ProcessResult cli(std::vector<std::string> args, const std::string& base = {}) {
    args.insert(args.begin(), {SMCP_BINARY, "--repo_base", base.empty() ? repo : base});
    testing::ScopedEnv e({{"SANDBOX_MCP_CONFIG", config}, {"SANDBOX_MCP_STATE_DIR", state}});
    return run(args);
  }
  // The sandbox's container, found by its labels (not by trusting any name we computed).
  std::string container_of(const std::string& name) {
    auto ps = run({"podman", "ps", "-a", "--filter", "label=sandbox-mcp.sandbox=" + name, "--filter",
                   "label=sandbox-mcp.repo=" + repo, "--format", "{{.Names}}"});
    std::string c = ps.out.substr(0, ps.out.find('\n'));
    EXPECT_FALSE(c.empty()) << "no container for sandbox " << name;
    return c;
  }
  // Runs `script` inside the sandbox as the agent, the way an attacker in it would.
  exec::ProcessResult inside(const std::string& name, const std::string& script) {
    return run({"podman", "exec", "--workdir", "/workspace", container_of(name), "sh", "-c", script});
  }
  void make(const std::string& name, const std::string& branch = "") {
    std::vector<std::string> a = {"new", "-n", name};
    if (!branch.empty()) {
      a.insert(a.end(), {"-b", branch});
    }
    auto r = cli(a);
    ASSERT_EQ(r.status, 0) << r.err << r.out;
  }
  void start_server(const std::vector<std::pair<std::string, std::string>>& env = {}) {
    client.reset();
    testing::ScopedEnv e({{"SANDBOX_MCP_CONFIG", config}});
    for (const auto& [k, v] : env) {
      e.set(k, v);
    }
    client = std::make_unique<bench::StdioClient>(
        SMCP_BINARY,
        std::vector<std::string>{"--repo_base", repo, "serve", "--state-dir", state, "--log-level", "warn"});
  }
  // The "kept at PREFIX" of an rm --force.
  static std::string kept_at(const std::string& out) {
    const std::string key = "is kept at ";
    auto at = out.find(key);
    if (at == std::string::npos) {
      return {};
    }
    std::string prefix = out.substr(at + key.size());
    return prefix.substr(0, prefix.find('\n'));
  }
  // Where rm --force keeps what earlier syncs brought: beside the rescue from inside.
  static std::string synced_of(std::string prefix) {
    if (!prefix.empty() && prefix.back() == '/') {
      prefix.pop_back();
    }
    return prefix + "-synced/";
  }
  // The content of `path` in the first ref under `prefix` that has it ("" when none does).
  std::string kept_file(const std::string& prefix, const std::string& path) {
    return run({"sh", "-c",
                "git -C \"$1\" for-each-ref --format='%(objectname)' \"$2\" | while read o; do git -C \"$1\" show "
                "\"$o:$3\" 2>/dev/null && break; done",
                "sh", repo, prefix, path})
        .out;
  }
  void expect_no_host_effect() { EXPECT_FALSE(fs::exists(mark)) << "code planted in the sandbox ran on the host"; }

  std::string dir, repo, state, config, mark;
  std::vector<std::string> extra_containers;
  std::vector<std::string> extra_images;
  std::unique_ptr<bench::StdioClient> client;
};

// Defect 1: git configuration, attributes and a `commondir` planted in whatever git directory the
// sandbox can write, with a filter that would create `mark` on the host; then everything a human
// does next on the host.
TEST_F(SandboxBoundaryTest, GitDataPlantedInsideNeverRunsOnTheHost) {
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
TEST_F(SandboxBoundaryTest, RmNeverFollowsALinkPlantedInside) {
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
TEST_F(SandboxBoundaryTest, TheManagerNeverWritesThroughALinkPlantedInside) {
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
TEST_F(SandboxBoundaryTest, RmAndResetRefuseToLoseWorkAndForceKeepsIt) {
  // reset removes the sandbox images: images of its own (tags of the test image), so that the
  // shared tag stays for the tests running beside this one.
  const std::string image = "localhost/sandbox-mcp-boundary-reset:" + std::to_string(::getpid());
  const std::string base = "localhost/sandbox-mcp-boundary-reset-base:" + std::to_string(::getpid());
  ASSERT_EQ(run({"podman", "tag", k_image, image}).status, 0);
  ASSERT_EQ(run({"podman", "tag", k_image, base}).status, 0);
  extra_images.insert(extra_images.end(), {image, base});
  std::ofstream(config) << "{\"sandbox\": {\"image\": \"" << image << "\", \"base_image\": \"" << base << "\"}}";
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

TEST_F(SandboxBoundaryTest, CleanWorkComesOverAsCommitsOnTheBranchAndRmNeedsNoForce) {
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
TEST_F(SandboxBoundaryTest, TheSeedFilesAreReadOnlyInside) {
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
// nor any host user, and a setuid file it makes gives nothing.
TEST_F(SandboxBoundaryTest, TheAgentIsNeverHostRootAndSetuidIsInert) {
  make("g1");
  auto a = inside("g1", "id -u; cp /bin/sh /workspace/rootsh; chmod u+s /workspace/rootsh; "
                        "grep NoNewPrivs /proc/self/status");
  ASSERT_EQ(a.status, 0) << a.err;
  EXPECT_EQ(a.out.substr(0, a.out.find('\n')), "1000");
  EXPECT_NE(a.out.find("NoNewPrivs:\t1"), std::string::npos) << a.out;
  struct stat st {};
  ASSERT_EQ(::stat((repo + "/.git/sandbox-mcp/sandboxes/g1/rootsh").c_str(), &st), 0);
  EXPECT_NE(st.st_uid, 0u) << "a file the agent made belongs to host root";
  EXPECT_GE(st.st_uid, 65536u) << "the agent is a host user (uid " << st.st_uid << ")";
  // The sandboxes' directory is the manager's alone: nobody else on the host reaches a setuid file.
  ASSERT_EQ(::stat((repo + "/.git/sandbox-mcp/sandboxes").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  // Inside, the setuid bit does not work either (nosuid mount, no-new-privileges).
  EXPECT_EQ(inside("g1", "/workspace/rootsh -c 'id -u'").out, "1000\n");
}

// Defect 10: a registry file that a merge brings into the work tree is not the registry, and a row
// edited into the real one cannot aim rm at a container or directory it did not make.
TEST_F(SandboxBoundaryTest, APoisonedRegistryCannotAimRmAnywhere) {
  const std::string victim = "smcp-victim-" + std::to_string(::getpid());
  extra_containers.push_back(victim);
  ASSERT_EQ(run({"podman", "run", "-d", "--name", victim, k_image, "sleep", "infinity"}).status, 0);
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
      victim + "', '" + victim_dir + "', 'podman', '" + k_image + "', '" + repo + "', 'ready', datetime('now'));";
  ASSERT_EQ(run({"sqlite3", db, insert}).status, 0);
  ASSERT_EQ(run({"git", "-C", repo, "add", "-f", ".sandbox_db.sqlite"}).status, 0);
  ASSERT_EQ(run({"git", "-C", repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "a dependency"})
                .status,
            0);
  auto rm = cli({"rm", "-n", "evil"});
  EXPECT_NE(rm.status, 0);
  EXPECT_EQ(run({"podman", "container", "exists", victim}).status, 0) << "rm removed a container it did not make";
  EXPECT_TRUE(fs::exists(victim_dir + "/precious"));

  // The same row edited into the real registry (made by a first `new`).
  make("h1");
  const std::string real = repo + "/.git/sandbox-mcp/sandboxes.sqlite";
  ASSERT_TRUE(fs::exists(real));
  ASSERT_EQ(run({"sqlite3", real,
                 "UPDATE sandboxes SET container_id = '" + victim + "', work_dir = '" + victim_dir +
                     "' WHERE name = 'h1'; INSERT INTO sandboxes (name, branch, container_id, work_dir, runtime, "
                     "image, repo_base, phase, uid, created_at) VALUES ('evil2', 'main', '" +
                     victim + "', '" + victim_dir + "', 'podman', '" + k_image + "', '" + repo +
                     "', 'ready', 'ffffffffffffffffffffffffffffffff', datetime('now'));"})
                .status,
            0);
  EXPECT_NE(cli({"rm", "-n", "evil2"}).status, 0);
  EXPECT_NE(cli({"rm", "-n", "h1", "--force"}).status, 0) << "a row naming another directory is refused";
  EXPECT_EQ(run({"podman", "container", "exists", victim}).status, 0);
  EXPECT_TRUE(fs::exists(victim_dir + "/precious"));
}

// Defect 11: the registry belongs to the repository, not to the directory the CLI runs in.
TEST_F(SandboxBoundaryTest, TheRegistryIsTheRepositorysFromAnySubfolder) {
  fs::create_directories(repo + "/sub/deeper");
  make("i1");
  auto ls = cli({"ls"}, repo + "/sub/deeper");
  EXPECT_NE(ls.out.find("i1"), std::string::npos) << ls.out << ls.err;
  auto clash = cli({"new", "-n", "i1"}, repo + "/sub");
  EXPECT_NE(clash.status, 0);
  EXPECT_NE(clash.err.find("already exists"), std::string::npos) << clash.err;
  EXPECT_EQ(cli({"rm", "-n", "i1"}, repo + "/sub").status, 0);
}

// Review of the fix, finding 1: the host runs git in a sandbox's repository (fetch, rev-list): a
// repository a call names must be the server user's and not a sandbox's own, and a call confined
// by a profile names none (a confined command could write one, with a url.insteadOf that runs).
TEST_F(SandboxBoundaryTest, ARepositoryInASandboxOrNotOursOrFromAConfinedCallIsRefused) {
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
TEST_F(SandboxBoundaryTest, AnOrphanHeadDoesNotHideCommits) {
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
TEST_F(SandboxBoundaryTest, TheStashAndTaggedCommitsAreWork) {
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
TEST_F(SandboxBoundaryTest, ARefusedRmLeavesTheAgentRunning) {
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
TEST_F(SandboxBoundaryTest, AHumansBranchIsNeverMovedBySync) {
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
TEST_F(SandboxBoundaryTest, SandboxesAreOutsideTheWorkTreeAndAsideMeansANewDirectory) {
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
TEST_F(SandboxBoundaryTest, AStashBehindManyRefsIsStillWork) {
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
TEST_F(SandboxBoundaryTest, ABrokenIndexIsNotClean) {
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
TEST_F(SandboxBoundaryTest, CommitsInALinkedWorktreeAreWork) {
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
TEST_F(SandboxBoundaryTest, AFailedNewLeavesAnotherSandboxsIdFileAlone) {
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
TEST_F(SandboxBoundaryTest, AnImageWithoutAUserStillRunsTheAgentAsItsUser) {
  const std::string image = "localhost/smcp-rootuser:" + std::to_string(::getpid());
  extra_images.push_back(image);
  const std::string file = dir + "/Containerfile";
  std::ofstream(file) << "FROM " << k_image << "\nUSER root\n";
  ASSERT_EQ(run({"podman", "build", "-q", "-t", image, "-f", file, dir}).status, 0);
  auto made = cli({"new", "-n", "u1", "--image", image});
  ASSERT_EQ(made.status, 0) << made.err;
  EXPECT_EQ(inside("u1", "id -u").out, "1000\n");
  EXPECT_EQ(cli({"rm", "-n", "u1"}).status, 0);
}

// Second review, finding 9: what a sync brought is not forgotten because the agent deleted it since.
TEST_F(SandboxBoundaryTest, WorkAnEarlierSyncBroughtIsNotForgotten) {
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
TEST_F(SandboxBoundaryTest, TooManyRefsAreNotBroughtOver) {
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
TEST_F(SandboxBoundaryTest, ABranchRewrittenAfterASyncKeepsItsCommits) {
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
TEST_F(SandboxBoundaryTest, ABranchRenamedToANestedNameStillSyncs) {
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
