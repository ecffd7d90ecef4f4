// GPUs for container sandboxes, for real: fake device nodes (mknod) described by a CDI spec of the
// test's own kind, given to podman and docker sandboxes by the real binary; two registries racing
// for the same GPUs. On both runtimes (`/Podman`, `/Docker`; docker skips what its engine cannot).
#include "tests/support/sandbox_suite.h"

namespace smcp {
namespace {

using namespace testing::sandbox_suite;
using namespace std::chrono_literals;
using nlohmann::json;
namespace fs = std::filesystem;

// GPUs without a GPU: fake NVIDIA device nodes (mknod, character major 195) behind a CDI spec of a
// test-only kind in /var/run/cdi, in the format podman 4.3's CDI library reads.
class GpuSandboxTest : public SandboxTest {
protected:
  void SetUp() override {
    SandboxTest::SetUp();
    if (IsSkipped()) {
      return;
    }
    if (::geteuid() != 0) {
      GTEST_SKIP() << "fake GPU device nodes (mknod) and /var/run/cdi need root";
    }
    nodes = dir + "/dev";
    // The container's root is an unprivileged host uid (its own user namespace): it must be able to
    // reach the nodes, as it reaches /dev/nvidiaN on a real machine.
    fs::permissions(dir, fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
    ASSERT_EQ(testing::make_fake_gpus(nodes, 3, false), "");
    std::string spec = "cdiVersion: \"0.3.0\"\nkind: \"" + kind + "\"\ndevices:\n";
    for (int i = 0; i < 3; ++i) {
      const std::string node = nodes + "/nvidia" + std::to_string(i);
      spec += "- name: \"" + std::to_string(i) + "\"\n  containerEdits:\n    deviceNodes:\n    - path: " + node + "\n";
    }
    fs::create_directories("/var/run/cdi");
    spec_file = "/var/run/cdi/sandbox-mcp-test-" + std::to_string(::getpid()) + ".yaml";
    std::ofstream(spec_file) << spec;
    write_config({{"sandbox", {{"cdi_kind", kind}}}});
    if (rt.docker()) {
      const std::string dirs = run({"docker", "info", "--format", "{{json .CDISpecDirs}}"}).out;
      docker_without_cdi = dirs.find("\"/") == std::string::npos;
    }
  }
  // Fake GPUs reach a container only through CDI here (docker's --gpus needs NVIDIA's toolkit and a
  // real GPU): a docker engine without CDI (before 25; Debian 12's docker.io is 20.10) gets none.
  void skip_without_cdi() {
    if (!docker_without_cdi) {
      return;
    }
    const std::string version = run({"docker", "info", "--format", "{{.ServerVersion}}"}).out;
    GTEST_SKIP() << "this docker engine (" << version.substr(0, version.find('\n'))
                 << ") reads no CDI specs (docker 25 or later with CDI on), and its --gpus needs NVIDIA's "
                    "container toolkit and a real GPU: fake GPUs cannot reach a docker container here (the clear "
                    "refusal is checked in BadRequestsAndHostsWithoutGpusGetClearErrors)";
  }
  void TearDown() override {
    if (!spec_file.empty()) {
      fs::remove(spec_file);
    }
    SandboxTest::TearDown();
  }
  // The fake nodes a sandbox's container sees.
  std::string seen(const std::string& sandbox) {
    return client->call("remote_bash",
                        {{"sandbox", sandbox}, {"command", "ls " + nodes + " 2>&1 | tr '\\n' ' '"}})["stdout"];
  }

  // Its own kind: tests running at once must not define the same CDI devices twice.
  const std::string kind = "t" + std::to_string(::getpid()) + ".sandbox-mcp-test.example/gpu";
  std::string nodes, spec_file;
  bool docker_without_cdi = false;
};

TEST_P(GpuSandboxTest, EachSandboxSeesExactlyItsGpusAndTwoNeverShareOne) {
  skip_without_cdi();
  if (IsSkipped()) {
    return;
  }
  start_server();
  json a = client->call("sandbox_new", {{"name", "g1"}, {"gpus", 1}});
  EXPECT_EQ(a["gpus"], "0") << a.dump();
  json b = client->call("sandbox_new", {{"name", "g2"}, {"gpus", "2"}});
  EXPECT_EQ(b["gpus"], "1,2") << b.dump();
  EXPECT_EQ(seen("g1"), "nvidia0 ");
  EXPECT_EQ(seen("g2"), "nvidia1 nvidia2 ");
  // Every GPU is taken: a third sandbox is refused and says which are held.
  std::string err = error_of("sandbox_new", {{"name", "g3"}, {"gpus", 1}});
  EXPECT_NE(err.find("only 0 free"), std::string::npos) << err;
  err = error_of("sandbox_new", {{"name", "g3"}, {"gpus", "1,"}, {"gpu_shared", true}});
  EXPECT_NE(err.find("GPU 1 on local is held by another sandbox"), std::string::npos) << err;
  EXPECT_EQ(sandbox_of("g3"), nullptr) << "a refused sandbox leaves nothing";
  // Another repository has its own registry; the containers' labels still say who holds what.
  const std::string repo2 = make_repo(dir + "/repo2");
  exec::ProcessResult other;
  {
    testing::ScopedEnv e({{"SANDBOX_MCP_CONFIG", config}});
    other = run({SMCP_BINARY, "--repo_base", repo2, "new", "-n", "o1", "--gpus", "1,"});
  }
  EXPECT_NE(other.status, 0);
  EXPECT_NE(other.err.find("GPU 1 on local is held by another sandbox"), std::string::npos) << other.err;
  EXPECT_EQ(sandbox_of("g2")["gpus"], "1,2");
  // A sandbox without GPUs sees none.
  client->call("sandbox_new", {{"name", "g0"}});
  EXPECT_NE(seen("g0").find("No such file"), std::string::npos);
  // Removing one frees its GPUs; shared ones are shared only with sandboxes that share.
  client->call("sandbox_rm", {{"name", "g1"}});
  json s1 = client->call("sandbox_new", {{"name", "s1"}, {"gpus", "0,"}, {"gpu_shared", true}});
  json s2 = client->call("sandbox_new", {{"name", "s2"}, {"gpus", "0,"}, {"gpu_shared", true}});
  EXPECT_EQ(s2["gpus"], "0");
  EXPECT_EQ(seen("s2"), "nvidia0 ");
  err = error_of("sandbox_new", {{"name", "x"}, {"gpus", "0,"}});
  EXPECT_NE(err.find("held by another sandbox"), std::string::npos) << err;
  // remote_hosts shows each GPU, how busy it is (nvidia-smi: here a stand-in), and who holds it.
  const std::string bin = dir + "/bin";
  fs::create_directories(bin);
  std::ofstream(bin + "/nvidia-smi") << "#!/bin/sh\nprintf '0, Fake GPU, 100, 1000, 5\\n1, Fake GPU, 0, 1000, 0\\n"
                                        "2, Fake GPU, 900, 1000, 99\\n'\n";
  fs::permissions(bin + "/nvidia-smi", fs::perms::owner_all);
  {
    testing::ScopedEnv e({{"PATH", bin + ":" + ::getenv("PATH")}});
    start_server();
  }
  json hosts = client->call("remote_hosts", {{"host", "local"}, {"probe", true}});
  const json& gpus = hosts["hosts"][0]["gpus"];
  ASSERT_EQ(gpus.size(), 3u) << hosts.dump();
  EXPECT_EQ(gpus[0]["sandboxes"], json::array({"s1 (shared)", "s2 (shared)"})) << gpus.dump();
  EXPECT_EQ(gpus[1]["sandboxes"], json::array({"g2"}));
  EXPECT_EQ(gpus[2]["utilization_pct"], 99);
  // The CLI shows them.
  auto ls = cli({"ls"});
  EXPECT_NE(ls.out.find("0(s)"), std::string::npos) << ls.out;
  EXPECT_NE(ls.out.find("1,2"), std::string::npos) << ls.out;
  for (const char* n : {"g2", "g0", "s1", "s2"}) {
    client->call("sandbox_rm", {{"name", n}});
  }
}

// Two repositories (two registries) asking for every GPU at the same moment: each reads the
// other's labels before either container exists, so only the check after `run` can tell; exactly
// one of them may get them.
TEST_P(GpuSandboxTest, TwoRegistriesAtOnceNeverGetTheSameGpu) {
  skip_without_cdi();
  if (IsSkipped()) {
    return;
  }
  const std::string repo2 = make_repo(dir + "/repo2");
  exec::ProcessResult a, b;
  {
    testing::ScopedEnv e({{"SANDBOX_MCP_CONFIG", config}, {"SANDBOX_MCP_STATE_DIR", state}});
    std::thread other([&] { b = run({SMCP_BINARY, "--repo_base", repo2, "new", "-n", "race", "--gpus", "3"}); });
    a = run({SMCP_BINARY, "--repo_base", repo, "new", "-n", "race", "--gpus", "3"});
    other.join();
  }
  EXPECT_EQ((a.status == 0) + (b.status == 0), 1) << "first: " << a.err << "\nsecond: " << b.err;
  const std::string& loser = a.status == 0 ? b.err : a.err;
  EXPECT_TRUE(loser.find("at the same moment") != std::string::npos || loser.find("only 0 free") != std::string::npos)
      << loser;
  auto holders = run(rt({"ps", "-a", "--filter", "label=sandbox-mcp.gpus", "--filter", "label=sandbox-mcp.sandbox=race",
                         "--format", "{{.Names}}"}));
  EXPECT_EQ(std::count(holders.out.begin(), holders.out.end(), '\n'), 1) << holders.out;
  run({SMCP_BINARY, "--repo_base", repo2, "rm", "-n", "race"});
}

TEST_P(GpuSandboxTest, BadRequestsAndHostsWithoutGpusGetClearErrors) {
  start_server();
  std::string err = error_of("sandbox_new", {{"name", "b1"}, {"gpus", "two"}});
  EXPECT_NE(err.find("invalid gpus 'two'"), std::string::npos) << err;
  EXPECT_NE(err.find("'gpus'"), std::string::npos) << "the error names the field: " << err;
  err = error_of("sandbox_new", {{"name", "b2"}, {"gpus", "7,"}});
  EXPECT_NE(err.find("has no GPU 7 (it has 0,1,2)"), std::string::npos) << err;
  if (docker_without_cdi) { // the CDI devices exist, but this engine cannot be given them
    err = error_of("sandbox_new", {{"name", "b5"}, {"gpus", 1}});
    EXPECT_NE(err.find("docker's engine there does not read CDI specs"), std::string::npos) << err;
    EXPECT_EQ(sandbox_of("b5"), nullptr) << "a refused sandbox leaves nothing";
  }
  // Another CDI kind: no CDI devices, and this machine has no /dev/nvidiaN.
  write_config({{"sandbox", {{"cdi_kind", "nothing-here.example/gpu"}}}});
  start_server();
  err = error_of("sandbox_new", {{"name", "b3"}, {"gpus", "all"}});
  if (fs::exists("/dev/nvidia0")) {
    EXPECT_NE(err.find("no CDI spec of kind nothing-here.example/gpu"), std::string::npos) << err;
  } else {
    EXPECT_NE(err.find("no NVIDIA GPU on local"), std::string::npos) << err;
  }
  EXPECT_EQ(client->call("sandbox_ls", json::object())["sandboxes"].size(), 0u);
  auto r = cli({"new", "-n", "b4", "--gpus", "0,x"});
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_NE(r.err.find("invalid gpus"), std::string::npos) << r.err;
}

INSTANTIATE_TEST_SUITE_P(, GpuSandboxTest, ::testing::Values("podman", "docker"), testing::runtime_test_name);

} // namespace
} // namespace smcp
