// The sandbox manager's command lines for podman and docker, through a recording fake host (no
// container runtime, git or tmux involved): what `new` runs and in which order, what a failure
// undoes, how ls reads states, the id mapping, the environment allowlist.
#include "sandbox/manager.h"
#include "tests/support/recording_executor.h"

#include <gtest/gtest.h>
#include <gmock/gmock.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

namespace smcp::sandbox {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;
using Argv = std::vector<std::string>;

class SandboxManagerTest : public ::testing::Test {
protected:
  void SetUp() override {
    char tmpl[] = "/tmp/smcp-sbx-unit-XXXXXX";
    dir = ::mkdtemp(tmpl);
    host = std::make_shared<testing::RecordingHost>("local");
    rec = host->recorder;
    rec->answer({"podman", "info"}, 0, "false\n");
    rec->answer({"git", "-C", "/r", "rev-parse", "--path-format=absolute"}, 0, "/r\n/r/.git\n");
    rec->answer({"git", "-C", "/r", "rev-parse", "--verify"}, 1); // the branch does not exist yet
    rec->answer({"stat"}, 0, "0 0\n");
    rec->answer({"printenv", "HOME"}, 0, "/home/u\n");
    rec->answer({"ls", "-d"}, 2, "/home/u/.gitconfig\n", "ls: cannot access ...");
    rec->answer({"test", "-e"}, 1); // no directory in the way of a new sandbox
    rec->answer({"id", "-u"}, 0, "0\n");
    rec->answer({"stat", "-c", "%u"}, 0, "0\n"); // the repository is the server user's
    rec->answer({"test", "-L"}, 1);
    // git inside a sandbox: on branch main, nothing uncommitted.
    rec->answer({"podman", "exec", "-i", "--workdir"}, 0,
                "HEAD 0123456789012345678901234567890123456789\nON refs/heads/main\nSTATUS\n");
    rec->answer({"docker", "exec", "-i", "--workdir"}, 0,
                "HEAD 0123456789012345678901234567890123456789\nON refs/heads/main\nSTATUS\n");
  }
  // The id file and the container label of sandbox `name` say what its row says: it is ours.
  void own(SandboxManager& m, const std::string& name, Runtime rt = Runtime::podman) {
    auto row = m.registry().get(name);
    ASSERT_TRUE(row);
    rec->answer(read_id_argv(row->repo_base + "/.git/sandbox-mcp/sandboxes/." + name + ".sandbox-id"), 0,
                row->uid + "\n");
    rec->answer(id_label_argv(rt, container_name(row->repo_base, name)), 0, row->uid + "\n");
    rec->answer(id_and_running_argv(rt, container_name(row->repo_base, name)), 0, row->uid + " true\n");
  }
  void TearDown() override { std::filesystem::remove_all(dir); }

  std::unique_ptr<SandboxManager> make(ManagerOptions o = {}) {
    o.repo_base = dir;
    o.host_repo_base["gpu1"] = "/r";
    return std::make_unique<SandboxManager>(o, [this](const std::string& name) -> std::shared_ptr<exec::Host> {
      if (name == "local" || name == "gpu1") {
        return host;
      }
      throw std::out_of_range("unknown host '" + name + "'");
    });
  }
  NewRequest request(const std::string& name) {
    NewRequest r;
    r.name = name;
    r.repo_base = "/r";
    return r;
  }
  Argv only(const Argv& prefix) {
    auto all = rec->matching(prefix);
    EXPECT_EQ(all.size(), 1u) << "calls starting with " << prefix[0] << " " << prefix[1];
    return all.empty() ? Argv{} : all.front();
  }

  std::string dir;
  std::shared_ptr<testing::RecordingHost> host;
  std::shared_ptr<testing::RecordingExecutor> rec;
};

TEST_F(SandboxManagerTest, PodmanNewRunsWorktreeContainerAndTmuxInOrder) {
  auto m = make();
  SandboxInfo info = m->create(request("exp1"));
  const std::string c = container_name("/r", "exp1");
  EXPECT_EQ(info.row.name, "exp1");
  EXPECT_EQ(info.row.container_id, c);
  EXPECT_EQ(info.row.work_dir, "/r/.git/sandbox-mcp/sandboxes/exp1");
  EXPECT_EQ(info.row.phase, Phase::ready);
  EXPECT_EQ(info.attach_command, "podman exec -it " + c + " tmux attach-session -t main");

  // The branch is made on the host, then the sandbox's own clone of it (sharing the host's objects).
  EXPECT_EQ(only({"git", "-C", "/r", "branch"}), (Argv{"git", "-C", "/r", "branch", "main", "HEAD"}));
  EXPECT_EQ(only({"git", "-c", "protocol.file.allow=always", "clone"}),
            (Argv{"git", "-c", "protocol.file.allow=always", "clone", "--quiet", "--shared", "--branch", "main", "--",
                  "/r", "/r/.git/sandbox-mcp/sandboxes/exp1"}));
  EXPECT_EQ(only({"chown"}), (Argv{"chown", "-R", "--no-dereference", "--", "1879049192:1879049192",
                                   "/r/.git/sandbox-mcp/sandboxes/exp1"}));
  const Argv run = only({"podman", "run"});
  const Argv expected_head = {"podman", "run",        "-d",   "--init",  "--name",
                              c,        "--hostname", "exp1", "--label", "sandbox-mcp.sandbox=exp1"};
  EXPECT_TRUE(std::equal(expected_head.begin(), expected_head.end(), run.begin())) << ::testing::PrintToString(run);
  // Rootful podman: the container in its own id range, never host root nor a host user.
  EXPECT_THAT(run, Contains("--uidmap=0:1879048192:65536"));
  EXPECT_THAT(run, Contains("--gidmap=0:1879048192:65536"));
  EXPECT_THAT(run, Contains("--security-opt=no-new-privileges"));
  EXPECT_THAT(run, Contains("sandbox-mcp.id=" + info.row.uid));
  EXPECT_THAT(run, Contains("/r/.git/sandbox-mcp/sandboxes/exp1:/workspace:rw,nosuid,nodev"));
  // The host's git directory is not mounted: only its object store, read-only.
  EXPECT_THAT(run, Contains("/r/.git/objects:/r/.git/objects:ro,nosuid,nodev,noexec"));
  for (const auto& word : run) {
    EXPECT_THAT(word, Not(HasSubstr("/r/.git:")));
    EXPECT_THAT(word, Not(HasSubstr("uidmap=1000:0")));
  }
  // Seed mounts only when their source exists (ls -d listed only .gitconfig).
  EXPECT_THAT(run, Contains("/home/u/.gitconfig:/home/agent/.gitconfig:ro,nosuid,nodev"));
  for (const auto& word : run) {
    EXPECT_THAT(word, Not(HasSubstr(".git-credentials")));
  }
  EXPECT_EQ(Argv(run.end() - 3, run.end()), (Argv{"localhost/sandbox-mcp:latest", "sleep", "infinity"}));
  EXPECT_EQ(only({"podman", "exec"}), (Argv{"podman", "exec", c, "tmux", "new-session", "-d", "-s", "main", "-c",
                                            "/workspace", "-x", "200", "-y", "50"}));
  // Order: worktree before the container, the container before tmux.
  auto calls = rec->calls();
  auto index = [&](const std::string& a, const std::string& b) {
    for (std::size_t i = 0; i < calls.size(); ++i) {
      if (calls[i].argv.size() > 1 && calls[i].argv[0] == a && (calls[i].argv[1] == b || calls[i].argv[3] == b)) {
        return i;
      }
    }
    return calls.size();
  };
  EXPECT_LT(index("git", "clone"), index("podman", "run"));
  EXPECT_LT(index("podman", "run"), index("podman", "exec"));
  ASSERT_TRUE(m->registry().get("exp1"));
  // git on the host never runs hooks or an fsmonitor the sandbox could have written; the
  // sandbox's hooks and config are read-only inside.
  EXPECT_EQ(rec->unprotected_git(), 0);
}

TEST_F(SandboxManagerTest, DockerCommandLinesAndNoIdMapping) {
  rec->answer({"podman", "--version"}, 127);
  auto m = make();
  SandboxInfo info = m->create(request("d1"));
  EXPECT_EQ(info.row.runtime, "docker");
  const Argv run = only({"docker", "run"});
  for (const auto& word : run) {
    EXPECT_THAT(word, Not(HasSubstr("map")));
  }
  EXPECT_THAT(run, Contains("--init"));
  EXPECT_EQ(only({"docker", "image"}),
            (Argv{"docker", "image", "inspect", "--format", "{{.Id}}", "localhost/sandbox-mcp:latest"}));
  own(*m, "d1", Runtime::docker);
  m->remove("d1");
  EXPECT_EQ(rec->matching({"docker", "rm"}).back(), (Argv{"docker", "rm", "-f", info.row.container_id}));
  EXPECT_EQ(info.attach_command, "docker exec -it " + info.row.container_id + " tmux attach-session -t main");
}

TEST_F(SandboxManagerTest, NoRuntimeNamesThePackages) {
  rec->answer({"podman", "--version"}, 127);
  rec->answer({"docker", "info"}, 127);
  auto m = make();
  try {
    m->create(request("x"));
    FAIL() << "created without a runtime";
  } catch (const SandboxError& e) {
    EXPECT_EQ(e.kind(), SandboxError::Kind::missing);
    EXPECT_THAT(e.what(), HasSubstr("apt-get install podman"));
  }
  EXPECT_TRUE(m->registry().list().empty());
}

TEST_F(SandboxManagerTest, ADockerClientWithoutItsEngineIsNotARuntime) {
  rec->answer({"podman", "--version"}, 127);
  rec->answer({"docker", "info"}, 1, "", "Cannot connect to the Docker daemon at unix:///var/run/docker.sock.");
  auto m = make();
  try {
    m->create(request("x"));
    FAIL() << "created with a docker client and no engine";
  } catch (const SandboxError& e) {
    EXPECT_THAT(e.what(), HasSubstr("docker is there but: Cannot connect to the Docker daemon"));
  }
}

// Configured docker whose client cannot reach its engine (DOCKER_HOST unset or wrong): says so in
// docker's words, not "image missing" (what `docker image inspect` failing next would say).
TEST_F(SandboxManagerTest, ConfiguredDockerWithoutItsEngineSaysSo) {
  rec->answer({"docker", "info"}, 1, "", "Cannot connect to the Docker daemon at unix:///var/run/docker.sock.");
  ManagerOptions o;
  o.container.runtime = "docker";
  auto m = make(o);
  try {
    m->create(request("x"));
    FAIL() << "created with a docker client and no engine";
  } catch (const SandboxError& e) {
    EXPECT_EQ(e.kind(), SandboxError::Kind::missing);
    EXPECT_THAT(e.what(), HasSubstr("docker does not work on local (the config asks for it): Cannot connect to the "
                                    "Docker daemon"));
  }
  EXPECT_TRUE(rec->matching({"docker", "image"}).empty());
  EXPECT_TRUE(m->registry().list().empty());
}

TEST_F(SandboxManagerTest, LimitsFromTheCallWinOverTheConfig) {
  ManagerOptions o;
  o.container.cpus = "4";
  o.container.memory = "8g";
  auto m = make(o);
  NewRequest r = request("l1");
  r.memory = "512m";
  r.pids = 200;
  m->create(r);
  const Argv run = only({"podman", "run"});
  EXPECT_THAT(run, Contains("--cpus=4"));
  EXPECT_THAT(run, Contains("--memory=512m"));
  EXPECT_THAT(run, Contains("--pids-limit=200"));
}

TEST_F(SandboxManagerTest, MissingImageNamesTheBuildCommand) {
  rec->answer({"podman", "image", "exists"}, 1);
  auto m = make();
  try {
    m->create(request("x"));
    FAIL();
  } catch (const SandboxError& e) {
    EXPECT_THAT(e.what(), HasSubstr("sandbox-mcp image build"));
  }
  EXPECT_TRUE(rec->matching({"git", "-c", "protocol.file.allow=always", "clone"}).empty())
      << "nothing made before the checks";
}

TEST_F(SandboxManagerTest, AFailedRunUndoesTheCloneTheBranchAndTheRow) {
  rec->answer({"podman", "run"}, 125, "", "Error: something broke");
  auto m = make();
  EXPECT_THROW(m->create(request("x")), SandboxError);
  const std::string c = container_name("/r", "x");
  EXPECT_EQ(rec->matching(remove_tree_argv("/r/.git/sandbox-mcp/sandboxes/x")).size(), 1u);
  EXPECT_EQ(rec->matching({"git", "-C", "/r", "branch", "-D", "main"}).size(), 1u);
  EXPECT_GE(rec->matching({"podman", "rm", "-f", "-t", "0", c}).size(), 1u);
  EXPECT_FALSE(m->registry().get("x"));
}

TEST_F(SandboxManagerTest, AnExistingBranchIsNotCreatedNorDeletedOnFailure) {
  rec->answer({"git", "-C", "/r", "rev-parse", "--verify"}, 0);
  rec->answer({"podman", "exec"}, 1, "", "tmux: not found");
  auto m = make();
  EXPECT_THROW(m->create(request("x")), SandboxError);
  EXPECT_TRUE(rec->matching({"git", "-C", "/r", "branch"}).empty());
}

TEST_F(SandboxManagerTest, EnvironmentValuesGoOnStdinNeverOnArgv) {
  ::setenv("SMCP_TEST_SECRET", "s3cret-value", 1);
  ManagerOptions o;
  o.container.env_allow = {"SMCP_TEST_SECRET", "SMCP_TEST_UNSET"};
  auto m = make(o);
  m->create(request("e1"));
  ::unsetenv("SMCP_TEST_SECRET");
  for (const auto& call : rec->calls()) {
    for (const auto& word : call.argv) {
      EXPECT_THAT(word, Not(HasSubstr("s3cret-value")));
    }
    if (!call.argv.empty() && call.argv[1] == "run") {
      EXPECT_EQ(call.input, "SMCP_TEST_SECRET=s3cret-value\n");
      EXPECT_THAT(call.argv, Contains("/dev/stdin"));
    }
  }
}

TEST_F(SandboxManagerTest, RootfulPodmanGetsItsOwnIdRangeAndRootlessKeepsTheUser) {
  RunSpec s;
  s.container = "c";
  s.sandbox = "n";
  s.work_dir = "/w";
  s.userns = true;
  ContainerOptions o;
  o.userns_base = 65536 * 3;
  Argv a = container_run_argv(Runtime::podman, o, s);
  EXPECT_THAT(a, Contains("--uidmap=0:196608:65536"));
  EXPECT_THAT(a, Contains("--gidmap=0:196608:65536"));
  s.userns = false;
  s.keep_id = true;
  EXPECT_THAT(container_run_argv(Runtime::podman, ContainerOptions{}, s), Contains("--userns=keep-id"));
  // docker: no id options (the daemon decides), setuid inert all the same.
  Argv d = container_run_argv(Runtime::docker, ContainerOptions{}, s);
  EXPECT_THAT(d, Contains("--security-opt=no-new-privileges"));
  EXPECT_THAT(d, Not(Contains("--userns=keep-id")));
}

TEST_F(SandboxManagerTest, LsReadsLiveStatesAndShowsMissingContainers) {
  auto m = make();
  m->create(request("a"));
  m->create(request("b"));
  rec->answer({"podman", "ps"}, 0, container_name("/r", "a") + " running\n");
  auto all = m->list();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].state.kind, SandboxState::Kind::running);
  EXPECT_EQ(all[0].state.text, "running");
  EXPECT_EQ(all[1].state.kind, SandboxState::Kind::missing);
  EXPECT_EQ(all[1].state.text, "missing");
  EXPECT_THAT(all[1].note, HasSubstr("sandbox_rm"));
  EXPECT_EQ(only({"podman", "ps"}),
            (Argv{"podman", "ps", "-a", "--filter", "label=sandbox-mcp.sandbox", "--format", "{{.Names}} {{.State}}"}));
}

TEST_F(SandboxManagerTest, RmToleratesAContainerAlreadyGone) {
  auto m = make();
  m->create(request("g"));
  own(*m, "g");
  rec->answer(id_label_argv(Runtime::podman, container_name("/r", "g")), 125, "", "Error: no such container g");
  rec->answer({"podman", "run", "--rm"}, 0,
              "HEAD 0123456789012345678901234567890123456789\nON refs/heads/main\nSTATUS\n");
  RemoveResult r = m->remove("g");
  EXPECT_TRUE(r.removed);
  ASSERT_FALSE(r.notes.empty());
  EXPECT_THAT(r.notes[0], HasSubstr("already gone"));
  EXPECT_FALSE(m->registry().get("g"));
}

TEST_F(SandboxManagerTest, RmOfAHalfMadeSandboxRemovesTheContainerItMayHaveMade) {
  auto m = make();
  SandboxRow row;
  row.name = "half";
  row.runtime = "podman";
  row.repo_base = "/r";
  row.work_dir = "/r/.git/sandbox-mcp/sandboxes/half";
  m->registry().reserve(row); // a `new` killed after `podman run`, before recording the container
  EXPECT_EQ(m->list()[0].state.text, "creating");
  own(*m, "half");
  m->remove("half");
  EXPECT_EQ(rec->matching({"podman", "rm"}).size(), 1u);
  EXPECT_EQ(rec->matching({"podman", "rm"})[0].back(), container_name("/r", "half"));
  EXPECT_EQ(rec->matching(remove_tree_argv("/r/.git/sandbox-mcp/sandboxes/half")).size(), 1u);
  EXPECT_FALSE(m->registry().get("half"));
}

TEST_F(SandboxManagerTest, RmKeepsASlurmSandboxWhenSlurmCannotBeAsked) {
  rec->answer({"sh", "-c", find_wrapper_argv("/r")[2]}, 0, "/r/sandbox/podman-srun\n");
  rec->answer({"sbatch"}, 0, "77\n");
  rec->answer({"squeue"}, 0, "RUNNING|n1|None\n");
  auto m = make();
  NewRequest r = request("k");
  r.slurm = true;
  m->create(r);
  own(*m, "k");
  // The controller goes away: squeue fails otherwise than "Invalid job id".
  rec->answer({"squeue"}, 1, "", "slurm_load_jobs error: Unable to contact slurm controller (connect failure)");
  try {
    m->remove("k");
    FAIL() << "removed while Slurm could not say whether the job runs";
  } catch (const SandboxError& e) {
    EXPECT_THAT(e.what(), HasSubstr("Unable to contact slurm controller"));
  }
  EXPECT_TRUE(m->registry().get("k"));
  EXPECT_TRUE(rec->matching(remove_tree_argv("/r/.git/sandbox-mcp/sandboxes/k")).empty());
  EXPECT_EQ(m->list()[0].state.text, "unknown");
  // Back: a job that left the queue is read from scontrol, and rm goes on.
  rec->answer({"squeue"}, 1, "", "slurm_load_jobs error: Invalid job id specified");
  rec->answer({"scontrol"}, 0, "JobId=77 JobName=sandbox-k JobState=CANCELLED Reason=None NodeList=n1\n");
  // Its work can no longer be read (the job is over): kept aside with force, refused without.
  rec->answer({"mktemp", "-d"}, 0, "/r/.git/sandbox-mcp/sandboxes/.rescued-k-T-abc\n");
  EXPECT_THROW(m->remove("k"), SandboxError);
  RemoveResult gone = m->remove("k", true);
  EXPECT_TRUE(gone.removed);
  EXPECT_THAT(gone.rescued, HasSubstr("/r/.git/sandbox-mcp/sandboxes/.rescued-k-"));
}

TEST_F(SandboxManagerTest, SshHostAttachGoesThroughSsh) {
  auto m = make();
  NewRequest r = request("s1");
  r.host = "gpu1";
  r.repo_base.clear(); // the host's configured repository
  SandboxInfo info = m->create(r);
  EXPECT_EQ(info.row.host, "gpu1");
  // One shell-quoted word for the remote shell (ssh joins its words).
  EXPECT_EQ(info.attach_command.rfind("ssh -t gpu1 'podman exec -it ", 0), 0u) << info.attach_command;
}

TEST_F(SandboxManagerTest, SlurmNamesOnlyTheMissingToolsInTheOriginalsWords) {
  rec->answer({"sh", "-c", missing_tools_argv({})[2]}, 0, "sattach\nscancel\n");
  auto m = make();
  NewRequest r = request("x");
  r.slurm = true;
  try {
    m->create(r);
    FAIL();
  } catch (const SandboxError& e) {
    EXPECT_THAT(e.what(), HasSubstr("Required Slurm tool(s) not found in PATH: sattach, scancel"));
  }
  EXPECT_TRUE(rec->matching({"sbatch"}).empty());
}

TEST_F(SandboxManagerTest, SlurmSubmitsThePodmanRunThroughTheWrapperWithOnlyGithubToken) {
  rec->answer({"sh", "-c", find_wrapper_argv("/r")[2]}, 0, "/r/sandbox/podman-srun\n"); // no tool is missing
  rec->answer({"sbatch"}, 0, "4242\n");
  rec->answer({"squeue"}, 0, "RUNNING|node7|None\n");
  rec->answer({"id", "-u"}, 0, "0\n");
  rec->answer({"ls", "-d"}, 2, "/home/u/.gitconfig\n/data-all\n/data-slurm\n", "ls: cannot access ...");
  ManagerOptions o;
  o.container.mounts = {{"/data-all", "/data", true, false}, {"/data-slurm", "/ds", true, true}};
  auto m = make(o);
  NewRequest r = request("j1");
  r.slurm = true;
  r.gres = "gpu:1";
  r.partition = "gpu";
  SandboxInfo info = m->create(r);
  EXPECT_EQ(info.row.slurm_job_id, "4242");
  EXPECT_EQ(info.state.kind, SandboxState::Kind::running);
  EXPECT_EQ(info.state.text, "RUNNING");
  EXPECT_EQ(info.node, "node7");
  const Argv sb = only({"sbatch"});
  EXPECT_THAT(sb, Contains("--export=PATH,GITHUB_TOKEN,PODMAN_SRUN_GPU_DEV_DIR"));
  EXPECT_THAT(sb, Contains("--gres=gpu:1"));
  EXPECT_THAT(sb, Contains("--partition=gpu"));
  EXPECT_THAT(sb, Contains("--job-name=sandbox-j1"));
  const std::string wrap = sb.back();
  // The wrapper is looked up on the node at each use (the repository, then PATH), never a path
  // read back from the registry.
  EXPECT_EQ(wrap.rfind("--wrap=exec '/bin/sh' '-c' ", 0), 0u) << wrap;
  EXPECT_THAT(wrap, HasSubstr("'podman-srun' '/r' '' 'podman' 'run' '--init'"));
  EXPECT_THAT(wrap, HasSubstr("'--env' 'GITHUB_TOKEN'"));
  EXPECT_THAT(wrap, Not(HasSubstr("ANTHROPIC")));
  EXPECT_THAT(wrap, HasSubstr("tmux new-session -d -s main"));
  // The secrets rule: none of the human's seed files (ls -d listed .gitconfig as present), and a
  // configured mount only when it says slurm: true.
  EXPECT_THAT(wrap, Not(HasSubstr(".gitconfig")));
  EXPECT_THAT(wrap, Not(HasSubstr("/data-all")));
  EXPECT_THAT(wrap, HasSubstr("/data-slurm"));
  // Commands inside go through srun (only PATH exported; the terminal's TERM too for attach) and the wrapper.
  EXPECT_EQ(info.attach_command.rfind("srun --jobid=4242 --overlap --quiet --pty --export=PATH,TERM ", 0), 0u)
      << info.attach_command;
  EXPECT_FALSE(
      rec->matching({"srun", "--jobid=4242", "--overlap", "--quiet", "--unbuffered", "--export=PATH"}).empty());
}

TEST_F(SandboxManagerTest, DefaultNamesAreCntN) {
  auto m = make();
  EXPECT_EQ(m->create(request("")).row.name, "cnt_1");
  EXPECT_EQ(m->create(request("")).row.name, "cnt_2");
  own(*m, "cnt_1");
  m->remove("cnt_1");
  EXPECT_EQ(m->create(request("")).row.name, "cnt_1");
  try {
    m->create(request("cnt_2"));
    FAIL();
  } catch (const SandboxError& e) {
    EXPECT_EQ(e.kind(), SandboxError::Kind::exists);
  }
}

} // namespace
} // namespace smcp::sandbox
