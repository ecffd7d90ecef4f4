// Container sandboxes for real: podman (runc) and a real Docker engine (every test on both:
// `/Podman`, `/Docker`; docker is the tests' own engine, scripts/docker-local.sh), git clones and
// tmux, through the CLI and the MCP tools of the real `sandbox-mcp` binary, on this machine and on
// an SSH host (the loopback sshd fixture, with the runtime reached through it). The image is built
// by scripts/test.sh (`sandbox-mcp image build`) and loaded into docker from podman; without the
// runtime or the image these tests skip and say why.
#include "tests/support/sandbox_suite.h"

namespace smcp {
namespace {
using namespace testing::sandbox_suite;
using namespace std::chrono_literals;
using nlohmann::json;
namespace fs = std::filesystem;

TEST_P(SandboxTest, CliNewLsRmWithTheOriginalFlags) {
  auto made = cli({"new", "-n", "it1", "-b", "feat"});
  ASSERT_EQ(made.status, 0) << made.err;
  EXPECT_NE(made.out.find("Created sandbox it1 on local: branch feat"), std::string::npos) << made.out;
  EXPECT_NE(made.out.find("sandbox-mcp attach -n it1"), std::string::npos);
  EXPECT_TRUE(fs::exists(repo + "/.git/sandbox-mcp/sandboxes/it1/README"));
  // The registry is in the git directory: no checkout or merge can replace it.
  EXPECT_TRUE(fs::exists(repo + "/.git/sandbox-mcp/sandboxes.sqlite"));
  EXPECT_FALSE(fs::exists(repo + "/.sandbox_db.sqlite"));
  auto ls = cli({"ls"});
  EXPECT_NE(ls.out.find("it1"), std::string::npos);
  EXPECT_NE(ls.out.find("running"), std::string::npos) << ls.out;
  EXPECT_NE(ls.out.find("feat"), std::string::npos);
  // The branch was created from HEAD; git status in the main repository stays clean.
  EXPECT_EQ(run({"git", "-C", repo, "rev-parse", "--verify", "-q", "refs/heads/feat"}).status, 0);
  EXPECT_EQ(run({"git", "-C", repo, "status", "--porcelain"}).out, "");
  // attach needs a terminal: without one it says so and names the command.
  auto attach = cli({"attach", "-n", "it1"});
  EXPECT_NE(attach.status, 0);
  EXPECT_NE(attach.err.find("tmux attach-session -t main"), std::string::npos) << attach.err;
  auto rm = cli({"rm", "-n", "it1"});
  ASSERT_EQ(rm.status, 0) << rm.err;
  EXPECT_FALSE(fs::exists(repo + "/.git/sandbox-mcp/sandboxes/it1"));
  EXPECT_EQ(cli({"ls"}).out.find("it1"), std::string::npos);
  EXPECT_EQ(run({"git", "-C", repo, "rev-parse", "--verify", "-q", "refs/heads/feat"}).status, 0) << "branch kept";
  auto again = cli({"rm", "-n", "it1"});
  EXPECT_EQ(again.status, 1);
  EXPECT_NE(again.err.find("no sandbox named 'it1'"), std::string::npos) << again.err;
}

TEST_P(SandboxTest, McpFlowCommandsJobsFilesAttachAndRm) {
  start_server();
  json made = client->call("sandbox_new", {{"name", "m1"}});
  EXPECT_EQ(made["host"], "local");
  EXPECT_EQ(made["branch"], "main");
  EXPECT_EQ(made["state"], "running");
  EXPECT_EQ(made["work_dir"], repo + "/.git/sandbox-mcp/sandboxes/m1");
  const std::string container = made["container"];
  EXPECT_TRUE(container_exists(container));
  json r = client->call("remote_bash", {{"sandbox", "m1"},
                                        {"command", "pwd; id -un; cat README; git status --short; "
                                                    "echo made > new.txt"}});
  EXPECT_EQ(r["exit_code"], 0) << r.dump();
  EXPECT_EQ(r["stdout"], "/workspace\nagent\nhello\n");
  EXPECT_EQ(r["host"], "sandbox:m1");
  // What the agent wrote is in its directory on the host.
  EXPECT_TRUE(fs::exists(repo + "/.git/sandbox-mcp/sandboxes/m1/new.txt"));
  // git works inside (its own clone), but the repository's git directory is not there: its hooks
  // and config, which git on the host would run, cannot be changed from inside.
  json git = client->call("remote_bash", {{"sandbox", "m1"},
                                          {"command", "git -c user.name=a -c user.email=a@a commit -q --allow-empty -m "
                                                      "from-sandbox && echo committed; echo x > " +
                                                          repo +
                                                          "/.git/hooks/post-checkout 2>&1; git config core.fsmonitor "
                                                          "'touch /tmp/owned-" +
                                                          std::to_string(::getpid()) + "' 2>&1 | head -1"}});
  EXPECT_NE(git["stdout"].get<std::string>().find("committed"), std::string::npos) << git.dump();
  EXPECT_FALSE(fs::exists(repo + "/.git/hooks/post-checkout")) << git.dump();
  EXPECT_EQ(run({"git", "-C", repo, "config", "--get", "core.fsmonitor"}).out, "") << git.dump();
  // The commit comes over on sync: main is checked out here, so it waits at sandbox/m1/main.
  EXPECT_EQ(run({"git", "-C", repo, "log", "-1", "--format=%s", "main"}).out, "init\n");
  json synced = client->call("sandbox_sync", {{"name", "m1"}});
  EXPECT_NE(synced["note"].get<std::string>().find("git merge sandbox/m1/main"), std::string::npos) << synced.dump();
  EXPECT_EQ(run({"git", "-C", repo, "log", "-1", "--format=%s", "sandbox/m1/main"}).out, "from-sandbox\n");
  EXPECT_EQ(synced["work"]["state"], "dirty") << synced.dump(); // new.txt
  // new.txt, and what the planted fsmonitor made when git inside ran it (in the sandbox only).
  EXPECT_GE(synced["work"]["untracked"], 1) << synced.dump();
  EXPECT_FALSE(fs::exists("/tmp/owned-" + std::to_string(::getpid()))) << "the fsmonitor ran on the host";
  // A background job inside, read with a filter.
  json job = client->call("remote_bash", {{"sandbox", "m1"},
                                          {"command", "for i in 1 2 3 4; do echo line$i; echo noise; done"},
                                          {"run_in_background", true}});
  const std::string id = job["bash_id"];
  json out = client->call("remote_bash_output", {{"bash_id", id}, {"filter", "^line[24]$"}, {"wait_ms", 20000}});
  EXPECT_EQ(out["status"], "exited") << out.dump();
  EXPECT_EQ(out["output"], "line2\nline4\n") << out.dump();
  json list = client->call("remote_bash_list", {{"sandbox", "m1"}});
  ASSERT_EQ(list["jobs"].size(), 1u);
  EXPECT_EQ(list["jobs"][0]["sandbox"], "m1");
  json file = client->call("remote_file_read", {{"sandbox", "m1"}, {"file_path", "new.txt"}});
  EXPECT_NE(file["content"].get<std::string>().find("made"), std::string::npos) << file.dump();
  // The agent types into the shared tmux; the pane shows it (what a human who attaches sees).
  json pane = client->call("sandbox_attach", {{"name", "m1"}, {"keys", "echo typed-by-agent-$((6*7))\n"}});
  EXPECT_NE(pane["pane"].get<std::string>().find("typed-by-agent-42"), std::string::npos) << pane.dump();
  EXPECT_NE(pane["attach_command"].get<std::string>().find(rt.name + " exec -it " + container), std::string::npos);
  // Its work is on no branch: rm refuses, force keeps it in the repository first.
  std::string refused = error_of("sandbox_rm", {{"name", "m1"}});
  EXPECT_NE(refused.find("1 commit on no branch"), std::string::npos) << refused;
  json removed = client->call("sandbox_rm", {{"name", "m1"}, {"force", true}});
  EXPECT_EQ(removed["removed"], true);
  const std::string kept = removed["rescued"];
  EXPECT_EQ(run({"git", "-C", repo, "show", kept + "worktree:new.txt"}).out, "made\n") << removed.dump();
  EXPECT_EQ(run({"git", "-C", repo, "log", "-1", "--format=%s", kept + "heads/main"}).out, "from-sandbox\n");
  EXPECT_FALSE(container_exists(container));
  EXPECT_FALSE(fs::exists(repo + "/.git/sandbox-mcp/sandboxes/m1"));
  EXPECT_NE(error_of("remote_bash", {{"sandbox", "m1"}, {"command", "true"}}).find("no sandbox named 'm1'"),
            std::string::npos);
}

TEST_P(SandboxTest, TwoSandboxesAtOnceAreApart) {
  start_server();
  client->call("sandbox_new", {{"name", "a"}, {"branch", "ba"}});
  client->call("sandbox_new", {{"name", "b"}, {"branch", "bb"}});
  client->call("remote_bash", {{"sandbox", "a"}, {"command", "echo only-a > mine.txt; touch /tmp/in-a"}});
  json b = client->call("remote_bash", {{"sandbox", "b"}, {"command", "ls mine.txt /tmp/in-a 2>&1; hostname"}});
  EXPECT_NE(b["stdout"].get<std::string>().find("No such file"), std::string::npos) << b.dump();
  EXPECT_NE(b["stdout"].get<std::string>().find("\nb\n"), std::string::npos) << b.dump();
  EXPECT_EQ(sandbox_of("a")["state"], "running");
  EXPECT_EQ(sandbox_of("b")["state"], "running");
  client->call("sandbox_rm", {{"name", "a"}, {"force", true}}); // mine.txt
  client->call("sandbox_rm", {{"name", "b"}});
  EXPECT_EQ(client->call("sandbox_ls", json::object())["sandboxes"].size(), 0u);
}

TEST_P(SandboxTest, AContainerRemovedBehindOurBackShowsMissingAndRmStillCleansUp) {
  start_server();
  json made = client->call("sandbox_new", {{"name", "k1"}});
  ASSERT_EQ(rt.rm(made["container"]), 0);
  json s = sandbox_of("k1");
  EXPECT_EQ(s["state"], "missing") << s.dump();
  // A command there fails as on an unreachable host, saying what happened and what to do.
  std::string err = error_of("remote_bash", {{"sandbox", "k1"}, {"command", "true"}});
  EXPECT_NE(err.find("container " + made["container"].get<std::string>() + " on local is gone"), std::string::npos)
      << err;
  EXPECT_NE(err.find("sandbox_rm cleans up"), std::string::npos) << err;
  json removed = client->call("sandbox_rm", {{"name", "k1"}});
  EXPECT_EQ(removed["removed"], true);
  EXPECT_NE(removed["note"].get<std::string>().find("already gone"), std::string::npos) << removed.dump();
  EXPECT_FALSE(fs::exists(repo + "/.git/sandbox-mcp/sandboxes/k1"));
  EXPECT_TRUE(sandbox_of("k1").is_null());
}

TEST_P(SandboxTest, AContainerStoppedDuringACommandEndsItWithAClearError) {
  start_server();
  json made = client->call("sandbox_new", {{"name", "st1"}});
  std::thread stopper([this, c = made["container"].get<std::string>()] {
    std::this_thread::sleep_for(1500ms);
    run(rt({"stop", "-t", "0", c}));
  });
  std::string err = error_of("remote_bash", {{"sandbox", "st1"}, {"command", "echo start; sleep 30"}});
  stopper.join();
  // podman says "stopped" for a moment before "exited".
  EXPECT_TRUE(err.find("is not running (exited)") != std::string::npos ||
              err.find("is not running (stopped)") != std::string::npos)
      << err;
  std::string state;
  for (int i = 0; i < 50 && state != "exited"; ++i) {
    state = sandbox_of("st1")["state"].get<std::string>();
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(state, "exited");
  // A command's own exit status 137 in a running container stays a result.
  client->call("sandbox_rm", {{"name", "st1"}});
  client->call("sandbox_new", {{"name", "st2"}});
  EXPECT_EQ(client->call("remote_bash", {{"sandbox", "st2"}, {"command", "exit 137"}})["exit_code"], 137);
  client->call("sandbox_rm", {{"name", "st2"}});
}

TEST_P(SandboxTest, ResourceLimitsReachTheContainer) {
  start_server();
  client->call("sandbox_new", {{"name", "lim"}, {"memory", "256m"}, {"pids", 100}, {"cpus", "1"}});
  json r =
      client->call("remote_bash", {{"sandbox", "lim"},
                                   {"command", "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat "
                                               "/sys/fs/cgroup/pids.max; cat /sys/fs/cgroup/memory/"
                                               "memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max"}});
  EXPECT_EQ(r["stdout"], "100\n268435456\n") << r.dump();
  client->call("sandbox_rm", {{"name", "lim"}});
}

TEST_P(SandboxTest, NoContainerRuntimeNamesThePackage) {
  // A PATH with what the manager needs besides podman and docker.
  const std::string bin = dir + "/bin";
  fs::create_directories(bin);
  for (const char* tool : {"git", "sh", "ls", "stat", "printenv", "mkdir", "grep", "dirname", "rm"}) {
    auto where = run({"sh", "-c", std::string("command -v ") + tool});
    fs::create_symlink(where.out.substr(0, where.out.find('\n')), bin + "/" + tool);
  }
  exec::ProcessResult r;
  {
    testing::ScopedEnv e({{"PATH", bin}});
    r = cli({"new", "-n", "np"});
  }
  EXPECT_EQ(r.status, 1);
  if (rt.docker()) { // the config asks for docker
    EXPECT_NE(r.err.find("docker is not installed on local (the config asks for it): apt-get install docker.io"),
              std::string::npos)
        << r.err;
  } else {
    EXPECT_NE(
        r.err.find("neither podman nor docker works on local: install podman (Debian: `apt-get install podman runc`)"),
        std::string::npos)
        << r.err;
  }
  EXPECT_FALSE(fs::exists(repo + "/.git/sandbox-mcp/sandboxes/np"));
  if (rt.docker()) {
    // A docker client whose engine does not answer says so, with docker's words (not "image missing").
    {
      testing::ScopedEnv e({{"DOCKER_HOST", "unix://" + dir + "/no-engine.sock"}});
      r = cli({"new", "-n", "np"});
    }
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("docker does not work on local (the config asks for it): "), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("no-engine.sock"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(repo + "/.git/sandbox-mcp/sandboxes/np"));
  }
}

TEST_P(SandboxTest, RmAfterAHumanAttachFloodedAndKilled) {
  if (run({"sh", "-c", "command -v script"}).status != 0) {
    GTEST_SKIP() << "no `script` (util-linux) to give `attach` a terminal";
  }
  auto made = cli({"new", "-n", "hum"});
  ASSERT_EQ(made.status, 0) << made.err;
  // A human's terminal that floods the pane with input and then dies (the client is killed): it
  // can leave podman's exec session stuck on the terminal, which blocks a plain `podman rm`.
  {
    testing::ScopedEnv e({{"SANDBOX_MCP_STATE_DIR", state}});
    run({"timeout", "-s", "KILL", "3", "sh", "-c",
         std::string("exec script -qfc '") + SMCP_BINARY + " --repo_base " + repo +
             " attach -n hum' /dev/null < /dev/zero"},
        20s);
  }
  auto rm = cli({"rm", "-n", "hum"});
  EXPECT_EQ(rm.status, 0) << rm.out << rm.err;
  EXPECT_EQ(run(rt({"ps", "-aq", "--filter", "name=-hum$"})).out, "");
  EXPECT_FALSE(fs::exists(repo + "/.git/sandbox-mcp/sandboxes/hum"));
}

// Profiles inside a container sandbox work with podman's default masks: no `unmask=/proc/*`
// (which would also lift /proc/sys), the container's own /proc bound read-only instead. Under
// docker's default seccomp profile bwrap cannot make its namespaces: the profile is refused with
// the reason (never run unconfined instead), and the masks hold all the same.
TEST_P(SandboxTest, ProfilesInsideASandboxWorkWithoutUnmaskingProc) {
  start_server();
  json made = client->call("sandbox_new", {{"name", "pf1"}});
  if (client->call("remote_bash", {{"sandbox", "pf1"}, {"command", "command -v bwrap || true"}})["stdout"] == "") {
    client->call("sandbox_rm", {{"name", "pf1"}});
    GTEST_SKIP() << "the sandbox image has no bwrap (`sandbox-mcp image build --rebuild` adds it)";
  }
  const std::string c = made["container"];
  // The container keeps the runtime's masks: /proc/sys stays read-only in it, and in the profile.
  EXPECT_NE(run(rt({"exec", c, "sh", "-c", "echo x > /proc/sys/kernel/core_pattern"})).status, 0);
  EXPECT_EQ(run(rt({"container", "inspect", "--format", "{{.HostConfig.SecurityOpt}}", c})).out.find("unmask"),
            std::string::npos);
  if (rt.docker()) {
    std::string err = error_of("remote_bash", {{"sandbox", "pf1"}, {"profile", "restrictive"}, {"command", "id"}});
    EXPECT_NE(err.find("bubblewrap cannot create namespaces on sandbox:pf1"), std::string::npos) << err;
    EXPECT_NE(err.find("never run unconfined"), std::string::npos) << err;
    client->call("sandbox_rm", {{"name", "pf1"}});
    GTEST_SKIP() << "docker's default seccomp profile refuses the namespaces bwrap makes (unshare, clone with "
                    "CLONE_NEWUSER): a profile inside a docker sandbox is refused with that reason (checked), "
                    "never run unconfined; podman's default profile allows them";
  }
  json r = client->call("remote_bash", {{"sandbox", "pf1"},
                                        {"profile", "restrictive"},
                                        {"command", "pwd; id -un; ls /workspace 2>&1 | head -1; python3 -c "
                                                    "'x = bytearray(900 * 1024 * 1024)' 2>&1 | tail -1"}});
  EXPECT_EQ(r["stdout"], "/work\nagent\nls: cannot access '/workspace': No such file or directory\nMemoryError\n")
      << r.dump();
  client->call("sandbox_rm", {{"name", "pf1"}});
}

TEST_P(SandboxTest, InvalidNamesAreRefusedClearly) {
  start_server();
  for (const char* bad : {"../x", "a;b", "-rf", "a b", "x.lock"}) {
    std::string err = error_of("sandbox_new", {{"name", bad}});
    EXPECT_NE(err.find("-32602"), std::string::npos) << bad << ": " << err;
  }
  // Options smuggled in as values are refused before anything runs.
  EXPECT_NE(error_of("sandbox_new", {{"name", "i1"}, {"image", "--privileged"}}).find("invalid image"),
            std::string::npos);
  EXPECT_NE(error_of("sandbox_new", {{"name", "i2"}, {"repo_base", "-C/tmp"}}).find("invalid repo_base"),
            std::string::npos);
  EXPECT_NE(error_of("sandbox_new", {{"name", "i3"}, {"branch", "--orphan"}}).find("invalid branch"),
            std::string::npos);
  auto r = cli({"new", "-n", "a;rm -rf ~"});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("invalid sandbox name"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(repo + "/.git/sandbox-mcp/sandboxes"));
  // The server keeps serving.
  EXPECT_EQ(client->call("sandbox_ls", json::object())["sandboxes"].size(), 0u);
}

TEST_P(SandboxTest, AFailedNewLeavesNothingBehind) {
  write_config({{"sandbox", {{"run_args", {"--no-such-podman-flag"}}}}});
  start_server();
  std::string err = error_of("sandbox_new", {{"name", "f1"}, {"branch", "fresh"}});
  EXPECT_NE(err.find(rt.name + " run failed"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(repo + "/.git/sandbox-mcp/sandboxes/f1"));
  EXPECT_NE(run({"git", "-C", repo, "rev-parse", "--verify", "-q", "refs/heads/fresh"}).status, 0) << "branch undone";
  EXPECT_FALSE(fs::exists(repo + "/.git/sandbox-mcp/sandboxes/.f1.sandbox-id")) << "the id file is undone too";
  EXPECT_EQ(client->call("sandbox_ls", json::object())["sandboxes"].size(), 0u);
  // A missing image names the command that builds it.
  err = error_of("sandbox_new", {{"name", "f2"}, {"image", "localhost/no-such-image:1"}});
  EXPECT_NE(err.find("sandbox-mcp image build"), std::string::npos) << err;
}

TEST_P(SandboxTest, ABackgroundJobInsideSurvivesAServerRestart) {
  start_server();
  client->call("sandbox_new", {{"name", "r1"}});
  json job = client->call(
      "remote_bash",
      {{"sandbox", "r1"}, {"command", "echo before; sleep 3; echo after-restart"}, {"run_in_background", true}});
  const std::string id = job["bash_id"];
  client.reset(); // the server ends; the job runs on in the container
  start_server();
  json out = client->call("remote_bash_output", {{"bash_id", id}, {"wait_ms", 20000}, {"until", "after-restart"}});
  EXPECT_NE(out["output"].get<std::string>().find("after-restart"), std::string::npos) << out.dump();
  client->call("sandbox_rm", {{"name", "r1"}});
}

TEST_P(SandboxTest, ResetRemovesLocalSandboxesWorkDirsAndImages) {
  // Images of its own (tags of the test image), so that reset does not take the shared one.
  const std::string image = "localhost/sandbox-mcp-reset-test:" + std::to_string(::getpid());
  const std::string base = "localhost/sandbox-mcp-reset-test-base:" + std::to_string(::getpid());
  ASSERT_EQ(run(rt({"tag", k_image, image})).status, 0);
  ASSERT_EQ(run(rt({"tag", k_image, base})).status, 0);
  write_config({{"sandbox", {{"image", image}, {"base_image", base}}}});
  ASSERT_EQ(cli({"new", "-n", "x1"}).status, 0);
  ASSERT_EQ(cli({"new", "-n", "x2", "-b", "other"}).status, 0);
  auto r = cli({"reset"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("removed x1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("removed x2"), std::string::npos);
  EXPECT_FALSE(fs::exists(repo + "/.git/sandbox-mcp/sandboxes"));
  EXPECT_FALSE(rt.image_exists(image));
  EXPECT_FALSE(rt.image_exists(base));
  EXPECT_TRUE(rt.image_exists(k_image)) << "the default image is another tag";
  EXPECT_EQ(cli({"ls"}).out.find("x1"), std::string::npos);
}

TEST_P(SandboxTest, OnAnSshHostThroughTheSshdFixture) {
  if (auto reason = testing::SshdFixture::unavailable_reason(); !reason.empty()) {
    GTEST_SKIP() << "no sshd: " << reason;
  }
  testing::SshdOptions options;
  if (rt.docker()) { // the host's docker is the tests' engine: its sessions are pointed at it
    options.set_env = std::string("DOCKER_HOST=") + ::getenv("DOCKER_HOST");
  }
  testing::SshdFixture fx(options);
  const std::string remote_repo = make_repo(dir + "/remote-repo");
  write_config(
      {{"ssh_config", fx.config_file()}, {"hosts", json::array({json{{"name", "h0"}, {"repo_base", remote_repo}}})}});
  start_server();
  json made = client->call("sandbox_new", {{"name", "s1"}, {"host", "h0"}});
  EXPECT_EQ(made["host"], "h0");
  EXPECT_EQ(made["work_dir"], remote_repo + "/.git/sandbox-mcp/sandboxes/s1");
  // What a human types reaches the host the way the server does (the same ssh config).
  EXPECT_EQ(made["attach_command"].get<std::string>().rfind(
                "ssh -F " + fx.config_file() + " -t h0 '" + rt.name + " exec -it ", 0),
            0u)
      << made.dump();
  json r = client->call("remote_bash", {{"sandbox", "s1"}, {"command", "pwd; id -un; cat README"}});
  EXPECT_EQ(r["stdout"], "/workspace\nagent\nhello\n") << r.dump();
  json s = sandbox_of("s1");
  EXPECT_EQ(s["state"], "running");
  EXPECT_EQ(s["host"], "h0");
  // A background job inside, read with a filter, and the shared tmux, all through sshd.
  json job = client->call("remote_bash", {{"sandbox", "s1"},
                                          {"command", "for i in 1 2 3; do echo step$i; echo noise; done"},
                                          {"run_in_background", true}});
  json out =
      client->call("remote_bash_output", {{"bash_id", job["bash_id"]}, {"filter", "^step[13]$"}, {"wait_ms", 20000}});
  EXPECT_EQ(out["output"], "step1\nstep3\n") << out.dump();
  json pane = client->call("sandbox_attach", {{"name", "s1"}, {"keys", "echo via-ssh-$((2+3))\n"}});
  EXPECT_NE(pane["pane"].get<std::string>().find("via-ssh-5"), std::string::npos) << pane.dump();
  // The runtime's commands went through sshd.
  EXPECT_NE(fx.log(0).find("Accepted publickey"), std::string::npos);
  client->call("sandbox_rm", {{"name", "s1"}});
  EXPECT_FALSE(container_exists(made["container"]));
  EXPECT_FALSE(fs::exists(remote_repo + "/.git/sandbox-mcp/sandboxes/s1"));
  // The registry is this machine's (repo_base), with the host recorded.
  EXPECT_TRUE(fs::exists(repo + "/.git/sandbox-mcp/sandboxes.sqlite"));
}

INSTANTIATE_TEST_SUITE_P(, SandboxTest, ::testing::Values("podman", "docker"), testing::runtime_test_name);

} // namespace
} // namespace smcp
