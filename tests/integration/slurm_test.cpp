// Slurm sandboxes against a real single-node cluster (munge + slurmctld + slurmd, started by
// scripts/slurm-local.sh for this suite) with real podman on the node, through the real binary:
// from this machine and from the sshd fixture as a login node. Skipped, saying why, when the
// cluster cannot start here (not root, no Slurm packages and no apt) or podman/the image is missing.
#include "sandbox/container/runtime.h"
#include "sandbox/exec/run_process.h"
#include "tests/support/sandbox_calls.h"
#include "tests/support/sshd_fixture.h"
#include "tests/support/stdio_client.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace smcp {
namespace {

using namespace std::chrono_literals;
using bench::StdioClient;
using nlohmann::json;
namespace fs = std::filesystem;

exec::ProcessResult run(const std::vector<std::string>& argv, std::chrono::milliseconds timeout = 120s) {
  return testing::run_program(argv, timeout);
}

class SlurmTest : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    if (run({"podman", "image", "exists", "localhost/sandbox-mcp:latest"}, 30s).status != 0) {
      skip_reason = "podman or localhost/sandbox-mcp:latest is missing (scripts/test.sh builds it)";
      return;
    }
    char tmpl[] = "/tmp/smcp-slurm-XXXXXX";
    cluster = ::mkdtemp(tmpl);
    // Traversable: a container's user namespace (its root is not host root) bind-mounts the fake
    // GPUs from under it.
    fs::permissions(cluster, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                 fs::perms::others_read | fs::perms::others_exec);
    // Two fake GPUs (mknod, major 195) as the node's gres, for the GPU test.
    gpu_dir = cluster + "/gpu";
    gpu_error = testing::make_fake_gpus(gpu_dir, 2, true);
    auto started = run({std::string(SMCP_SOURCE_DIR) + "/scripts/slurm-local.sh", "start", cluster, "Gres=gpu:2",
                        "Name=gpu File=" + gpu_dir + "/nvidia[0-1]"},
                       300s);
    if (started.status != 0) {
      skip_reason = "the test cluster did not start (scripts/slurm-local.sh, status " + std::to_string(started.status) +
                    "): " + started.err;
      return;
    }
    conf = cluster + "/slurm.conf";
    // The wrapper, where the original searched it last: PATH.
    bin = cluster + "/bin";
    fs::create_directories(bin);
    fs::copy_file(std::string(SMCP_SOURCE_DIR) + "/sandbox/podman-srun", bin + "/podman-srun");
  }
  static void TearDownTestSuite() {
    if (!cluster.empty()) {
      ::setenv("SLURM_CONF", conf.c_str(), 1);
      run({"scancel", "--name=sandbox-slurm-test-blocker"});
      ::unsetenv("SLURM_CONF");
      run({std::string(SMCP_SOURCE_DIR) + "/scripts/slurm-local.sh", "stop", cluster});
      fs::remove_all(cluster);
    }
  }

  void SetUp() override {
    if (!skip_reason.empty()) {
      GTEST_SKIP() << "no Slurm cluster: " << skip_reason;
    }
    char tmpl[] = "/tmp/smcp-slurm-t-XXXXXX";
    dir = ::mkdtemp(tmpl);
    repo = testing::make_git_repo(dir + "/repo");
    state = dir + "/state";
    config = dir + "/config.json";
    std::ofstream(config) << R"({"slurm": {"start_timeout_s": 60}})";
    path = bin + ":" + ::getenv("PATH");
  }
  void TearDown() override {
    client.reset();
    if (skip_reason.empty()) {
      // The cluster is this suite's: a job a failed test left (each may hold the node's memory)
      // must not keep the next test's sandbox pending.
      std::istringstream jobs(slurm({"squeue", "-h", "-o", "%i"}).out);
      std::vector<std::string> cancel = {"scancel"};
      for (std::string id; std::getline(jobs, id);) {
        cancel.push_back(id);
      }
      if (cancel.size() > 1) {
        slurm(cancel);
        for (int i = 0; i < 300 && !slurm({"squeue", "-h", "-o", "%i"}).out.empty(); ++i) {
          std::this_thread::sleep_for(100ms);
        }
      }
    }
    if (!dir.empty()) {
      fs::remove_all(dir);
    }
  }

  // The server with this cluster, the wrapper in PATH and `env` added to its environment.
  void start_server(const std::vector<std::pair<std::string, std::string>>& env = {}) {
    client.reset();
    Env e(this, env);
    client =
        std::make_unique<StdioClient>(SMCP_BINARY, std::vector<std::string>{"--repo_base", repo, "serve", "--state-dir",
                                                                            state, "--log-level", "warn"});
  }
  exec::ProcessResult cli(std::vector<std::string> args, const std::string& with_path = {}) {
    args.insert(args.begin(), {SMCP_BINARY, "--repo_base", repo});
    Env e(this, {{"SANDBOX_MCP_STATE_DIR", state}}, with_path);
    return run(args);
  }
  exec::ProcessResult slurm(const std::vector<std::string>& args) {
    Env e(this, {});
    return run(args);
  }
  std::string error_of(const std::string& tool, const json& args) { return testing::tool_error(*client, tool, args); }
  json sandbox_of(const std::string& name) { return testing::find_sandbox(*client, name); }
  bool in_queue(const std::string& job) { return !slurm({"squeue", "-h", "-j", job, "-o", "%T"}).out.empty(); }
  bool container_left(const std::string& name) { return run({"podman", "container", "exists", name}, 30s).status == 0; }

  // An executable script at `path`.
  static void script(const std::string& path, const std::string& text) {
    std::ofstream(path) << "#!/bin/sh\n" << text;
    fs::permissions(path, fs::perms::owner_all);
  }
  // The registry, wherever this version keeps it (the git directory, or the original's file).
  std::string registry_file() const {
    for (const std::string& f : {repo + "/.git/sandbox-mcp/sandboxes.sqlite", repo + "/.sandbox_db.sqlite"}) {
      if (fs::exists(f)) {
        return f;
      }
    }
    return "";
  }
  // The job's processes on the node (the node is this machine), as `scontrol listpids` gives them.
  std::vector<std::string> job_pids(const std::string& job) {
    std::vector<std::string> pids;
    std::istringstream in(slurm({"scontrol", "listpids", job}).out);
    std::string line;
    while (std::getline(in, line)) {
      const std::string pid = line.substr(0, line.find(' '));
      if (!pid.empty() && pid.find_first_not_of("0123456789") == std::string::npos) {
        pids.push_back(pid);
      }
    }
    return pids;
  }
  bool gone_within(const std::string& container, std::chrono::seconds bound) {
    for (auto end = std::chrono::steady_clock::now() + bound; std::chrono::steady_clock::now() < end;) {
      if (!container_left(container)) {
        return true;
      }
      std::this_thread::sleep_for(200ms);
    }
    return !container_left(container);
  }

  // The environment for one child (restored when it goes): this cluster, the config, the wrapper
  // in PATH, then `extra`.
  struct Env : testing::ScopedEnv {
    Env(SlurmTest* t, const std::vector<std::pair<std::string, std::string>>& extra, const std::string& with_path = {})
        : testing::ScopedEnv({{"SLURM_CONF", t->conf},
                              {"SANDBOX_MCP_CONFIG", t->config},
                              {"PATH", with_path.empty() ? t->path : with_path}}) {
      for (const auto& [k, v] : extra) {
        set(k, v);
      }
    }
  };

  static inline std::string skip_reason, cluster, conf, bin, gpu_dir, gpu_error;
  std::string dir, repo, state, config, path;
  std::unique_ptr<StdioClient> client;
};

TEST_F(SlurmTest, NewRunsOnTheNodeCommandsJobsAttachAndRm) {
  start_server({{"ANTHROPIC_API_KEY", "sk-must-not-leak"},
                {"ANTHROPIC_BASE_URL", "http://x"},
                {"GITHUB_TOKEN", "ghp-passed-in"}});
  json made = client->call("sandbox_new", {{"name", "j1"}, {"slurm", true}, {"branch", "exp"}});
  const std::string job = made["slurm_job_id"];
  EXPECT_FALSE(job.empty());
  EXPECT_EQ(made["state"], "RUNNING") << made.dump();
  const std::string node = made["node"];
  EXPECT_FALSE(node.empty());
  json s = sandbox_of("j1");
  EXPECT_EQ(s["state"], "RUNNING");
  EXPECT_EQ(s["node"], node);
  EXPECT_EQ(s["slurm_job_id"], job);
  // Inside, through srun: the image's user in /workspace; the secrets rule.
  json r = client->call("remote_bash", {{"sandbox", "j1"},
                                        {"command", "id -un; pwd; echo \"gh=${GITHUB_TOKEN:-} ak=${ANTHROPIC_API_KEY:-}"
                                                    " au=${ANTHROPIC_BASE_URL:-}\""}});
  EXPECT_EQ(r["stdout"], "agent\n/workspace\ngh=ghp-passed-in ak= au=\n") << r.dump();
  // A background job inside, read with a filter; its files are on the shared worktree.
  json bg = client->call("remote_bash", {{"sandbox", "j1"},
                                         {"command", "for i in 1 2 3 4; do echo epoch $i; echo noise; done"},
                                         {"run_in_background", true}});
  json out =
      client->call("remote_bash_output", {{"bash_id", bg["bash_id"]}, {"filter", "^epoch [13]$"}, {"wait_ms", 30000}});
  EXPECT_EQ(out["output"], "epoch 1\nepoch 3\n") << out.dump();
  const std::string work_dir = made["work_dir"];
  EXPECT_TRUE(fs::exists(work_dir + "/.sandbox-mcp-jobs/" + bg["bash_id"].get<std::string>() + "/output"));
  json pane = client->call("sandbox_attach", {{"name", "j1"}, {"keys", "echo typed-$((40+2))\n"}});
  EXPECT_NE(pane["pane"].get<std::string>().find("typed-42"), std::string::npos) << pane.dump();
  EXPECT_EQ(pane["attach_command"].get<std::string>().rfind("srun --jobid=" + job + " --overlap", 0), 0u);
  // The job's output (sbatch --output) is there while it runs, and goes with the sandbox.
  const std::string output = work_dir.substr(0, work_dir.rfind('/')) + "/.j1.slurm.out";
  EXPECT_TRUE(fs::is_regular_file(output));
  json removed = client->call("sandbox_rm", {{"name", "j1"}});
  EXPECT_EQ(removed["removed"], true);
  EXPECT_FALSE(in_queue(job));
  EXPECT_FALSE(container_left(made["container"]));
  EXPECT_FALSE(fs::exists(work_dir));
  EXPECT_FALSE(fs::exists(output)) << removed.dump();
}

TEST_F(SlurmTest, AJobCancelledBehindOurBackShowsSoAndRmCleansUp) {
  auto made = cli({"new", "-n", "c1", "-s", "-b", "c1"});
  ASSERT_EQ(made.status, 0) << made.err;
  EXPECT_NE(made.out.find("RUNNING"), std::string::npos) << made.out;
  auto job = slurm({"squeue", "-h", "-n", "sandbox-c1", "-o", "%i"}).out;
  job = job.substr(0, job.find('\n'));
  ASSERT_FALSE(job.empty());
  ASSERT_EQ(slurm({"scancel", job}).status, 0);
  // The wrapper removes the container when its job ends (scancel alone would leave it running).
  for (int i = 0; i < 100 && !run({"podman", "ps", "-aq", "--filter", "label=sandbox-mcp.sandbox=c1", "--filter",
                                   "label=sandbox-mcp.repo=" + repo})
                                  .out.empty();
       ++i) {
    std::this_thread::sleep_for(100ms);
  }
  std::string ls;
  for (int i = 0; i < 50; ++i) {
    ls = cli({"ls"}).out;
    if (ls.find("CANCELLED") != std::string::npos) {
      break;
    }
    std::this_thread::sleep_for(200ms);
  }
  EXPECT_NE(ls.find("CANCELLED"), std::string::npos) << ls;
  // A command there says what happened instead of passing srun's status off as its own.
  start_server();
  std::string err = error_of("remote_bash", {{"sandbox", "c1"}, {"command", "true"}});
  EXPECT_NE(err.find("in Slurm job " + job + " (via local) is gone"), std::string::npos) << err;
  client.reset();
  auto rm = cli({"rm", "-n", "c1"});
  EXPECT_EQ(rm.status, 0) << rm.err;
  EXPECT_NE(rm.out.find("had already ended (CANCELLED)"), std::string::npos) << rm.out;
  EXPECT_EQ(run({"podman", "ps", "-aq", "--filter", "label=sandbox-mcp.sandbox=c1", "--filter",
                 "label=sandbox-mcp.repo=" + repo})
                .out,
            "");
  EXPECT_EQ(cli({"ls"}).out.find("c1 "), std::string::npos);
}

TEST_F(SlurmTest, MissingSrunAndMissingWrapperAreNamedInTheOriginalsWords) {
  // A PATH with every Slurm tool but srun (and the wrapper): only srun is named.
  const std::string no_srun = dir + "/no-srun";
  fs::create_directories(no_srun);
  for (const char* tool : {"sh", "git", "sattach", "scancel", "sbatch", "squeue", "id", "mkdir", "grep", "dirname"}) {
    auto where = run({"sh", "-c", std::string("command -v ") + tool}).out;
    fs::create_symlink(where.substr(0, where.find('\n')), no_srun + "/" + tool);
  }
  fs::create_symlink(bin + "/podman-srun", no_srun + "/podman-srun");
  auto r = cli({"new", "-n", "m1", "-s"}, no_srun);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("Required Slurm tool(s) not found in PATH: srun"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("sattach"), std::string::npos) << r.err;
  // Every tool but the wrapper, and no copy shipped with sandbox-mcp either.
  std::ofstream(config) << R"({"slurm": {"start_timeout_s": 60, "wrapper": ""}})";
  auto w = cli({"new", "-n", "m2", "-s"}, "/usr/bin:/bin");
  EXPECT_EQ(w.status, 1);
  EXPECT_NE(w.err.find("podman-srun wrapper script not found (searched " + repo + "/podman-srun, " + repo +
                       "/sandbox/podman-srun, PATH on local)"),
            std::string::npos)
      << w.err;
  EXPECT_NE(w.err.find("the compute nodes run it too"), std::string::npos) << w.err;
  EXPECT_FALSE(fs::exists(repo + "/.git/sandbox-mcp/sandboxes/m1"));
  EXPECT_EQ(cli({"ls"}).out.find("m1"), std::string::npos);
  std::ofstream(config) << R"({"slurm": {"wrapper": "podman-srun"}})";
  w = cli({"new", "-n", "m2", "-s"}, "/usr/bin:/bin");
  EXPECT_NE(w.err.find("slurm.wrapper must be an absolute path"), std::string::npos) << w.err;
  // A fresh repository, the wrapper nowhere in it or in PATH: the copy that ships next to the
  // binary is found last, and the node (this machine) runs it.
  const std::string shipped = fs::path(SMCP_BINARY).parent_path() / "podman-srun";
  ASSERT_TRUE(fs::exists(shipped)) << "the build puts the wrapper next to the binary";
  std::ofstream(config) << R"({"slurm": {"start_timeout_s": 60}})";
  auto made = cli({"new", "-n", "m3", "-s"}, "/usr/bin:/bin");
  EXPECT_EQ(made.status, 0) << made.err;
  auto in = cli({"ls"}, "/usr/bin:/bin");
  EXPECT_NE(in.out.find("m3"), std::string::npos) << in.out;
  auto gone = cli({"rm", "-n", "m3"}, "/usr/bin:/bin");
  EXPECT_EQ(gone.status, 0) << gone.err;
}

TEST_F(SlurmTest, AJobThatStaysPendingIsReportedWithinItsBound) {
  // Take the whole node, so that the sandbox's job waits for resources.
  ASSERT_EQ(slurm({"sbatch", "--exclusive", "--job-name=sandbox-slurm-test-blocker", "--output=/dev/null",
                   "--wrap=sleep 600"})
                .status,
            0);
  for (int i = 0; i < 50 && slurm({"squeue", "-h", "-n", "sandbox-slurm-test-blocker", "-o", "%T"}).out != "RUNNING\n";
       ++i) {
    std::this_thread::sleep_for(100ms);
  }
  std::ofstream(config) << R"({"slurm": {"start_timeout_s": 3}})";
  start_server();
  const auto t0 = std::chrono::steady_clock::now();
  json made = client->call("sandbox_new", {{"name", "p1"}, {"slurm", true}, {"branch", "p1"}});
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_LT(took, 30s);
  EXPECT_EQ(made["state"], "PENDING") << made.dump();
  EXPECT_NE(made["note"].get<std::string>().find("still PENDING"), std::string::npos) << made.dump();
  EXPECT_EQ(sandbox_of("p1")["state"], "PENDING");
  const std::string job = made["slurm_job_id"];
  client->call("sandbox_rm", {{"name", "p1"}});
  EXPECT_FALSE(in_queue(job));
  slurm({"scancel", "--name=sandbox-slurm-test-blocker"});
}

TEST_F(SlurmTest, ABackgroundJobInsideSurvivesAServerRestart) {
  start_server();
  json made = client->call("sandbox_new", {{"name", "r1"}, {"slurm", true}, {"branch", "r1"}});
  json bg = client->call(
      "remote_bash",
      {{"sandbox", "r1"}, {"command", "echo before; sleep 3; echo after-restart"}, {"run_in_background", true}});
  client.reset();
  start_server();
  json out =
      client->call("remote_bash_output", {{"bash_id", bg["bash_id"]}, {"wait_ms", 30000}, {"until", "after-restart"}});
  EXPECT_NE(out["output"].get<std::string>().find("after-restart"), std::string::npos) << out.dump();
  client->call("sandbox_rm", {{"name", "r1"}});
}

TEST_F(SlurmTest, FromALoginNodeOverSsh) {
  if (auto reason = testing::SshdFixture::unavailable_reason(); !reason.empty()) {
    GTEST_SKIP() << "no sshd: " << reason;
  }
  // On the login node's PATH, before the wrapper: a spy that ends a human's attach at once (saying
  // it got there), so that the CLI's attach command is run for real, through ssh.
  const std::string spy = dir + "/spy";
  fs::create_directories(spy);
  script(spy + "/podman-srun", "case \" $* \" in *\" attach-session \"*) touch " + spy + "/attached; exit 0 ;; esac\n" +
                                   "exec " + bin + "/podman-srun \"$@\"\n");
  testing::SshdOptions o;
  o.servers = 1;
  o.set_env = "SLURM_CONF=" + conf + " PATH=" + spy + ":" + bin + ":/usr/local/bin:/usr/bin:/bin";
  testing::SshdFixture fx(o);
  const std::string remote_repo = testing::make_git_repo(dir + "/login-repo");
  std::ofstream(config) << json{{"ssh_config", fx.config_file()},
                                {"hosts", json::array({json{{"name", "h0"}, {"repo_base", remote_repo}}})}}
                               .dump();
  // The server itself has no Slurm: everything goes through the login node.
  start_server({{"PATH", "/usr/local/bin:/usr/bin:/bin"}, {"SLURM_CONF", "/nonexistent"}});
  json made = client->call("sandbox_new", {{"name", "l1"}, {"slurm", true}, {"host", "h0"}, {"branch", "l1"}});
  EXPECT_EQ(made["state"], "RUNNING") << made.dump();
  EXPECT_EQ(made["host"], "h0");
  json r = client->call("remote_bash", {{"sandbox", "l1"}, {"command", "id -un; pwd"}});
  EXPECT_EQ(r["stdout"], "agent\n/workspace\n") << r.dump();
  EXPECT_EQ(sandbox_of("l1")["state"], "RUNNING");
  // (The remote command as one quoted word, or as words.)
  const std::string attach_command = made["attach_command"];
  EXPECT_TRUE(attach_command.rfind("ssh -F " + fx.config_file() + " -t h0 'srun --jobid=", 0) == 0 ||
              attach_command.rfind("ssh -F " + fx.config_file() + " -t h0 srun --jobid=", 0) == 0)
      << made.dump();
  // The CLI's attach, in a terminal: ssh carries the srun command line as one string, which the
  // login node's shell must split back into the same words.
  {
    Env e(this, {{"SANDBOX_MCP_STATE_DIR", state}});
    auto attach =
        run({"script", "-qec", std::string(SMCP_BINARY) + " --repo_base " + repo + " attach -n l1", "/dev/null"});
    EXPECT_TRUE(fs::exists(spy + "/attached")) << attach.out << attach.err;
  }
  const std::string job = made["slurm_job_id"];
  client->call("sandbox_rm", {{"name", "l1"}});
  EXPECT_FALSE(in_queue(job));
  EXPECT_FALSE(container_left(made["container"]));
}

// The node has two fake GPUs as gres (SetUpTestSuite): gpus N becomes --gres=gpu:N, and the
// container gets exactly the nodes Slurm allocated and its CUDA_VISIBLE_DEVICES.
TEST_F(SlurmTest, GpusBecomeGresAndTheContainerSeesOnlyTheAllocatedNodes) {
  ASSERT_EQ(gpu_error, "") << "the fake GPUs of the test cluster";
  // Small jobs: two run side by side on the one node (without --mem a job takes all its memory).
  std::ofstream(config) << R"({"slurm": {"start_timeout_s": 60, "mem": "200M", "cpus": 1}})";
  start_server({{"PODMAN_SRUN_GPU_DEV_DIR", gpu_dir}});
  json a = client->call("sandbox_new", {{"name", "gp1"}, {"slurm", true}, {"gpus", 1}});
  ASSERT_EQ(a["state"], "RUNNING") << a.dump();
  EXPECT_EQ(a["gpus"], "gpu:1 (Slurm)");
  json b = client->call("sandbox_new", {{"name", "gp2"}, {"slurm", true}, {"gpus", 1}});
  ASSERT_EQ(b["state"], "RUNNING") << b.dump();
  const std::string list = "ls " + gpu_dir + " | tr '\\n' ' '; echo \"[${CUDA_VISIBLE_DEVICES-unset}]\"";
  const std::string seen_a = client->call("remote_bash", {{"sandbox", "gp1"}, {"command", list}})["stdout"];
  const std::string seen_b = client->call("remote_bash", {{"sandbox", "gp2"}, {"command", list}})["stdout"];
  // One GPU each, not the same one; nvidiactl with it.
  EXPECT_TRUE(seen_a == "nvidia0 nvidiactl [0]\n" || seen_a == "nvidia1 nvidiactl [1]\n") << seen_a;
  EXPECT_TRUE(seen_b == "nvidia0 nvidiactl [0]\n" || seen_b == "nvidia1 nvidiactl [1]\n") << seen_b;
  EXPECT_NE(seen_a, seen_b);
  // Slurm picks the devices: indices are refused; so is gpus with gres.
  std::string err = error_of("sandbox_new", {{"name", "gp3"}, {"slurm", true}, {"gpus", "0,1"}});
  EXPECT_NE(err.find("ask for a count"), std::string::npos) << err;
  err = error_of("sandbox_new", {{"name", "gp3"}, {"slurm", true}, {"gpus", 1}, {"gres", "gpu:1"}});
  EXPECT_NE(err.find("either gpus or gres"), std::string::npos) << err;
  client->call("sandbox_rm", {{"name", "gp1"}});
  client->call("sandbox_rm", {{"name", "gp2"}});
}

// The secrets rule for every step: srun's default exports the caller's whole environment. A spy
// wrapper (first in PATH) writes the environment of each step it runs in: the CLI's attach (under a
// terminal) and the server's commands; neither, nor the container, sees the caller's secrets.
TEST_F(SlurmTest, AttachAndCommandStepsNeverCarryTheCallersEnvironment) {
  const std::string spy = dir + "/spy";
  fs::create_directories(spy);
  script(spy + "/podman-srun", "{ echo \"ARGS $*\"; env; } > " + spy + "/step.$$\n" +
                                   "case \" $* \" in *\" attach-session \"*) exit 0 ;; esac\n" + "exec " + bin +
                                   "/podman-srun \"$@\"\n");
  path = spy + ":" + path;
  const std::vector<std::pair<std::string, std::string>> secrets = {{"SMCP_TEST_SECRET", "sk-must-not-leak-1"},
                                                                    {"ANTHROPIC_API_KEY", "sk-must-not-leak-2"}};
  start_server(secrets);
  json made = client->call("sandbox_new", {{"name", "e1"}, {"slurm", true}, {"branch", "e1"}});
  ASSERT_EQ(made["state"], "RUNNING") << made.dump();
  json r = client->call(
      "remote_bash", {{"sandbox", "e1"}, {"command", "echo \"${SMCP_TEST_SECRET-unset} ${ANTHROPIC_API_KEY-unset}\""}});
  EXPECT_EQ(r["stdout"], "unset unset\n") << r.dump();
  client.reset();
  // A human's attach, in a terminal (script(1) gives it one), with the secrets in its environment.
  Env e(this, {{"SANDBOX_MCP_STATE_DIR", state}});
  for (const auto& [k, v] : secrets) {
    e.set(k, v);
  }
  auto attach =
      run({"script", "-qec", std::string(SMCP_BINARY) + " --repo_base " + repo + " attach -n e1", "/dev/null"});
  EXPECT_EQ(attach.status, 0) << attach.out << attach.err;
  int steps = 0, attaches = 0;
  for (const auto& f : fs::directory_iterator(spy)) {
    if (f.path().filename().string().rfind("step.", 0) != 0) {
      continue;
    }
    std::stringstream text;
    text << std::ifstream(f.path()).rdbuf();
    ++steps;
    attaches += text.str().find(" attach-session ") != std::string::npos;
    EXPECT_EQ(text.str().find("sk-must-not-leak"), std::string::npos) << text.str();
    EXPECT_EQ(text.str().find("ANTHROPIC_API_KEY"), std::string::npos) << text.str();
  }
  EXPECT_GE(steps, 3); // the job's podman run, commands, the attach
  EXPECT_EQ(attaches, 1);
  EXPECT_EQ(cli({"rm", "-n", "e1"}).status, 0);
}

// `new` killed between sbatch and the row's update leaves a job the row does not name: rm finds it
// by the sandbox's job name and the row's marker (sbatch --comment), and cancels it; a job of the
// same name without the marker is not touched. An sbatch that submits, then hangs, holds `new`
// there for the kill.
TEST_F(SlurmTest, RmCancelsTheJobOfANewKilledBeforeItRecordedIt) {
  std::ofstream(config) << R"({"slurm": {"start_timeout_s": 60, "mem": "200M", "cpus": 1}})";
  const std::string hang = dir + "/hang";
  fs::create_directories(hang);
  std::string real_sbatch = run({"sh", "-c", "command -v sbatch"}).out;
  real_sbatch = real_sbatch.substr(0, real_sbatch.find('\n'));
  script(hang + "/sbatch", "echo $$ > " + hang + "/pid\n" + real_sbatch + " \"$@\" > " + hang + "/job.tmp\n" + "mv " +
                               hang + "/job.tmp " + hang + "/job\nexec sleep 600\n");
  // Someone's job by the same name, without our marker: rm must leave it.
  auto decoy = slurm({"sbatch", "--parsable", "--job-name=sandbox-o1", "--mem=50M", "--output=/dev/null",
                      "--comment=sandbox-mcp repo=00000000 row=other", "--wrap=sleep 600"});
  ASSERT_EQ(decoy.status, 0) << decoy.err;
  const std::string decoy_job = decoy.out.substr(0, decoy.out.find_first_of(";\n"));
  std::string pid;
  {
    Env e(this, {{"SANDBOX_MCP_STATE_DIR", state}}, hang + ":" + path);
    pid = run({"sh", "-c", "\"$0\" --repo_base \"$1\" new -n o1 -s -b o1 >/dev/null 2>&1 & echo $!", SMCP_BINARY, repo})
              .out;
  }
  pid = pid.substr(0, pid.find('\n'));
  for (int i = 0; i < 300 && !fs::exists(hang + "/job"); ++i) {
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(fs::exists(hang + "/job")) << "sbatch was never called";
  std::stringstream job_text;
  job_text << std::ifstream(hang + "/job").rdbuf();
  const std::string job = job_text.str().substr(0, job_text.str().find_first_of(";\n"));
  std::stringstream sbatch_pid;
  sbatch_pid << std::ifstream(hang + "/pid").rdbuf();
  run({"kill", "-9", pid, sbatch_pid.str().substr(0, sbatch_pid.str().find('\n'))});
  ASSERT_FALSE(job.empty());
  // Its container comes up on the node: the job lives on without its `new`.
  const std::string container = sandbox::container_name(repo, "o1");
  for (int i = 0; i < 300 && !container_left(container); ++i) {
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(container_left(container)) << slurm({"scontrol", "show", "job", job}).out;
  ASSERT_EQ(slurm({"squeue", "-h", "-j", job, "-o", "%T"}).out, "RUNNING\n");
  // The row is there, without the job.
  const std::string ls = cli({"ls"}).out;
  ASSERT_NE(ls.find("o1"), std::string::npos) << ls;
  EXPECT_EQ(ls.find(" " + job + " "), std::string::npos) << ls;
  auto rm = cli({"rm", "-n", "o1"});
  EXPECT_EQ(rm.status, 0) << rm.out << rm.err;
  EXPECT_NE(rm.out.find("never recorded"), std::string::npos) << rm.out;
  bool left = true;
  for (int i = 0; i < 100 && (left = in_queue(job)); ++i) {
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_FALSE(left) << "the job of the dead `new` is still queued";
  // Cancelled by rm, not ended by itself.
  EXPECT_NE(slurm({"scontrol", "show", "job", job}).out.find("JobState=CANCELLED"), std::string::npos)
      << slurm({"scontrol", "show", "job", job}).out;
  EXPECT_TRUE(in_queue(decoy_job)) << "a job without our marker was cancelled";
  EXPECT_TRUE(gone_within(container, 20s));
  slurm({"scancel", decoy_job});
}

// Rootful podman's container is outside the job (its process tree and cgroup). Killing every
// process of the job with SIGKILL (no trap runs) still ends the container, through the liveness
// pipe podman-srun hands it; and the container has the job's memory and CPUs as its limits.
TEST_F(SlurmTest, AContainerEndsWithItsSigkilledJobAndHasTheJobsLimits) {
  std::ofstream(config) << R"({"slurm": {"start_timeout_s": 60, "mem": "200M", "cpus": 1}})";
  start_server();
  json made = client->call("sandbox_new", {{"name", "k1"}, {"slurm", true}, {"branch", "k1"}});
  ASSERT_EQ(made["state"], "RUNNING") << made.dump();
  json r = client->call("remote_bash",
                        {{"sandbox", "k1"},
                         {"command", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes "
                                     "/sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us"}});
  EXPECT_EQ(r["stdout"], std::to_string(200L * 1024 * 1024) + "\n100000\n100000\n") << r.dump();
  const std::string job = made["slurm_job_id"], container = made["container"];
  auto pids = job_pids(job);
  ASSERT_FALSE(pids.empty());
  pids.insert(pids.begin(), {"kill", "-9"});
  run(pids);
  EXPECT_TRUE(gone_within(container, 20s)) << "the container outlived its SIGKILLed job";
  client.reset();
  cli({"rm", "-n", "k1", "--force"}); // its work could not be read: the container is gone
}

// A registry row's wrapper path is only shown, never run: the wrapper is searched again where it
// runs. A row pointing it at another program (a registry replaced behind our back) runs nothing.
TEST_F(SlurmTest, APoisonedRowsWrapperPathIsNeverRun) {
  ASSERT_EQ(cli({"new", "-n", "w1", "-s", "-b", "w1"}).status, 0);
  const std::string db = registry_file();
  ASSERT_FALSE(db.empty());
  const std::string evil = dir + "/evil";
  script(evil, "touch " + dir + "/evil-ran\nexec " + bin + "/podman-srun \"$@\"\n");
  auto poisoned = run({"python3", "-c",
                       "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); "
                       "c.execute(\"UPDATE sandboxes SET wrapper=? WHERE name='w1'\", (sys.argv[2],)); c.commit()",
                       db, evil});
  ASSERT_EQ(poisoned.status, 0) << poisoned.err;
  start_server();
  json r = client->call("remote_bash", {{"sandbox", "w1"}, {"command", "echo in"}});
  EXPECT_EQ(r["stdout"], "in\n") << r.dump();
  client->call("sandbox_attach", {{"name", "w1"}, {"keys", "true\n"}});
  client.reset();
  EXPECT_EQ(cli({"rm", "-n", "w1"}).status, 0);
  EXPECT_FALSE(fs::exists(dir + "/evil-ran"));
}

} // namespace
} // namespace smcp
