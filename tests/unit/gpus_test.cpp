// GPU requests, allocation and runtime arguments (sandbox/gpu/gpus.h), and the host probe run with
// a local /bin/sh against fake NVIDIA device nodes (mknod, character major 195) and a CDI spec as
// nvidia-ctk writes it.
#include "sandbox/gpu/gpus.h"
#include "sandbox/registry.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

namespace smcp::sandbox {
namespace {

namespace fs = std::filesystem;
using Kind = GpuRequest::Kind;

TEST(Gpus, ParsesTheFourForms) {
  EXPECT_EQ(parse_gpus("").kind, Kind::none);
  EXPECT_EQ(parse_gpus("none").kind, Kind::none);
  EXPECT_EQ(parse_gpus("0").kind, Kind::none) << "a count of 0";
  EXPECT_EQ(parse_gpus("all").kind, Kind::all);
  auto c = parse_gpus("2");
  EXPECT_EQ(c.kind, Kind::count);
  EXPECT_EQ(c.count, 2);
  auto l = parse_gpus(" 2, 0,2 ");
  EXPECT_EQ(l.kind, Kind::list);
  EXPECT_EQ(l.indices, (std::vector<int>{0, 2}));
  EXPECT_EQ(l.text(), "0,2");
  EXPECT_EQ(parse_gpus("3,").indices, (std::vector<int>{3})) << "one index: a trailing comma";
  EXPECT_TRUE(parse_gpus("1", true).shared);
  for (const char* bad : {"-1", "two", "0,x", "1;rm", "all,0", "99999"}) {
    EXPECT_THROW(parse_gpus(bad), std::invalid_argument) << bad;
  }
}

TEST(Gpus, AllocationNeverGivesAHeldDeviceUnlessShared) {
  const std::vector<int> devs = {0, 1, 2, 3};
  EXPECT_EQ(allocate_gpus(parse_gpus("2"), devs, {0}, {}, "h"), (std::vector<int>{1, 2}));
  EXPECT_EQ(allocate_gpus(parse_gpus("1"), devs, {}, {0}, "h"), (std::vector<int>{1})) << "shared ones avoided";
  EXPECT_EQ(allocate_gpus(parse_gpus("1", true), devs, {}, {0}, "h"), (std::vector<int>{0})) << "shared with shared";
  EXPECT_EQ(allocate_gpus(parse_gpus("1", true), devs, {0}, {}, "h"), (std::vector<int>{1}))
      << "an exclusive one never";
  EXPECT_EQ(allocate_gpus(parse_gpus("all"), devs, {}, {}, "h"), devs);
  EXPECT_EQ(allocate_gpus(parse_gpus("none"), devs, {0, 1, 2, 3}, {}, "h"), std::vector<int>{});
  auto message = [&](const GpuRequest& r, std::vector<int> excl, std::vector<int> shared) {
    try {
      allocate_gpus(r, devs, excl, shared, "gpu1");
    } catch (const SandboxError& e) {
      EXPECT_EQ(e.kind(), SandboxError::Kind::invalid);
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message(parse_gpus("3"), {0, 1}, {}).find("only 2 free"), std::string::npos);
  EXPECT_NE(message(parse_gpus("1,"), {1}, {}).find("GPU 1 on gpu1 is held by another sandbox"), std::string::npos);
  EXPECT_NE(message(parse_gpus("5,"), {}, {}).find("has no GPU 5 (it has 0,1,2,3)"), std::string::npos);
  EXPECT_NE(message(parse_gpus("all"), {}, {2}).find("held by other sandboxes on gpu1: 2 (shared)"), std::string::npos);
  EXPECT_NE(message(parse_gpus("all", true), {3}, {}).find("3"), std::string::npos);
  try {
    allocate_gpus(parse_gpus("1"), {}, {}, {}, "cpu-box");
    FAIL();
  } catch (const SandboxError& e) {
    EXPECT_NE(std::string(e.what()).find("no NVIDIA GPU on cpu-box"), std::string::npos);
  }
}

TEST(Gpus, RunArgumentsAreCdiDevicesElseDockerGpusElseAClearError) {
  HostGpus h;
  h.devices = {0, 1};
  h.cdi_devices = {"0", "1", "all"};
  EXPECT_EQ(gpu_run_args(Runtime::podman, {1}, h, k_default_cdi_kind, "h"),
            (std::vector<std::string>{"--device", "nvidia.com/gpu=1"}));
  EXPECT_EQ(gpu_run_args(Runtime::podman, {}, h, k_default_cdi_kind, "h"), std::vector<std::string>{});
  HostGpus docker;
  docker.devices = {0, 1};
  docker.docker_nvidia = true;
  EXPECT_EQ(gpu_run_args(Runtime::docker, {0, 1}, docker, k_default_cdi_kind, "h"),
            (std::vector<std::string>{"--gpus", "\"device=0,1\""}));
  // CDI devices reach docker only when its engine reads CDI specs (docker >= 25 with CDI on): an
  // older one (Debian 12's 20.10) gets --gpus from its nvidia runtime, or a clear refusal.
  HostGpus docker_cdi = docker;
  docker_cdi.cdi_devices = {"0", "1"};
  EXPECT_EQ(gpu_run_args(Runtime::docker, {1}, docker_cdi, k_default_cdi_kind, "h"),
            (std::vector<std::string>{"--gpus", "\"device=1\""}));
  docker_cdi.docker_cdi = true;
  EXPECT_EQ(gpu_run_args(Runtime::docker, {1}, docker_cdi, k_default_cdi_kind, "h"),
            (std::vector<std::string>{"--device", "nvidia.com/gpu=1"}));
  docker_cdi.docker_cdi = false;
  docker_cdi.docker_nvidia = false;
  try {
    gpu_run_args(Runtime::docker, {1}, docker_cdi, k_default_cdi_kind, "h");
    FAIL();
  } catch (const SandboxError& e) {
    EXPECT_NE(std::string(e.what()).find("docker's engine there does not read CDI specs"), std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(parse_gpu_probe("docker-cdi\n").docker_cdi);
  EXPECT_FALSE(parse_gpu_probe("docker-nvidia\n").docker_cdi);
  EXPECT_NE(gpu_probe_script(k_default_cdi_kind, true).find("{{json .CDISpecDirs}}"), std::string::npos);
  try {
    gpu_run_args(Runtime::podman, {0}, docker, k_default_cdi_kind, "gpu1");
    FAIL();
  } catch (const SandboxError& e) {
    EXPECT_EQ(e.kind(), SandboxError::Kind::missing);
    EXPECT_NE(std::string(e.what()).find("no CDI spec of kind nvidia.com/gpu"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("nvidia-ctk cdi generate"), std::string::npos) << e.what();
  }
}

std::string run_sh(const std::string& script) {
  std::string path = fs::temp_directory_path() / ("smcp-gpu-probe-" + std::to_string(::getpid()));
  std::ofstream(path) << script;
  std::string out;
  FILE* p = ::popen(("/bin/sh " + path).c_str(), "r");
  char buf[4096];
  while (p && ::fgets(buf, sizeof buf, p)) {
    out += buf;
  }
  if (p) {
    ::pclose(p);
  }
  fs::remove(path);
  return out;
}

TEST(Gpus, TheProbeFindsDeviceNodesAndCdiDevices) {
  const fs::path dir = fs::temp_directory_path() / ("smcp-gpu-" + std::to_string(::getpid()));
  fs::create_directories(dir / "dev");
  fs::create_directories(dir / "cdi");
  if (::geteuid() != 0) {
    GTEST_SKIP() << "mknod of fake NVIDIA nodes needs root";
  }
  for (int i : {0, 1, 3}) {
    ASSERT_EQ(::mknod((dir / "dev" / ("nvidia" + std::to_string(i))).c_str(), S_IFCHR | 0666, makedev(195, i)), 0);
  }
  ASSERT_EQ(::mknod((dir / "dev" / "nvidiactl").c_str(), S_IFCHR | 0666, makedev(195, 255)), 0);
  std::ofstream(dir / "dev" / "nvidia7") << "not a device";
  std::ofstream(dir / "cdi" / "nvidia.yaml") << R"(---
cdiVersion: 0.5.0
containerEdits:
  hooks:
  - args: [nvidia-ctk, hook, update-ldcache]
    hookName: createContainer
    path: /usr/bin/nvidia-ctk
devices:
- containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
  name: "0"
- containerEdits:
    deviceNodes:
    - path: /dev/nvidia1
  name: "1"
- name: all
kind: nvidia.com/gpu
)";
  std::ofstream(dir / "cdi" / "other.yaml") << "kind: example.com/fpga\ndevices:\n- name: \"9\"\n";
  HostGpus h = parse_gpu_probe(
      run_sh(gpu_probe_script(k_default_cdi_kind, false, (dir / "dev").string(), {(dir / "cdi").string()})));
  EXPECT_EQ(h.devices, (std::vector<int>{0, 1, 3}));
  EXPECT_EQ(h.cdi_devices, (std::vector<std::string>{"0", "1", "all"}));
  ASSERT_EQ(h.cdi_files.size(), 1u);
  EXPECT_EQ(h.cdi_files[0], (dir / "cdi" / "nvidia.yaml").string());
  EXPECT_FALSE(h.docker_nvidia);
  fs::remove_all(dir);
}

TEST(Gpus, NvidiaSmiCsvIsRead) {
  auto g = parse_nvidia_smi("0, NVIDIA A100-SXM4-80GB, 1024, 81920, 37\n1, NVIDIA A100-SXM4-80GB, [N/A], 81920, 0\n"
                            "garbage line\n");
  ASSERT_EQ(g.size(), 2u);
  EXPECT_EQ(g[0].index, 0);
  EXPECT_EQ(g[0].name, "NVIDIA A100-SXM4-80GB");
  EXPECT_EQ(g[0].memory_used_mib, 1024);
  EXPECT_EQ(g[0].memory_total_mib, 81920);
  EXPECT_EQ(g[0].utilization_pct, 37);
  EXPECT_EQ(g[1].memory_used_mib, -1);
  EXPECT_TRUE(parse_nvidia_smi("").empty());
}

TEST(GpuRace, OfTwoContainersClaimingOneGpuTheFirstCreatedKeepsIt) {
  // podman's and docker's ways of printing the creation time.
  const std::string holders = "smcp-a-x|0|2026-12-07 19:44:43.257857912 +0000 UTC\n"
                              "smcp-b-y|0,1|2026-12-07 19:44:43.9 +0000 UTC\n"
                              "/other|2|2026-12-07T19:44:42.5Z\n";
  EXPECT_EQ(gpu_race_loser("smcp-a-x", holders), "");
  EXPECT_NE(gpu_race_loser("smcp-b-y", holders).find("GPU 0 went to container smcp-a-x"), std::string::npos);
  // No overlap, or both shared: nobody loses.
  EXPECT_EQ(gpu_race_loser("other", holders), "");
  EXPECT_EQ(
      gpu_race_loser("b", "a|1/shared|2026-12-07 10:00:00.1 +0000 UTC\nb|1/shared|2026-12-07 10:00:00.2 +0000 UTC\n"),
      "");
  EXPECT_NE(gpu_race_loser("b", "a|1/shared|2026-12-07 10:00:00.1 +0000 UTC\nb|1|2026-12-07 10:00:00.2 +0000 UTC\n"),
            "");
  // A tie in time goes by name; a day later is later whatever the fraction.
  EXPECT_NE(gpu_race_loser("b", "a|3|2026-12-07 10:00:00 +0000 UTC\nb|3|2026-12-07 10:00:00 +0000 UTC\n"), "");
  EXPECT_EQ(gpu_race_loser("a", "a|3|2026-12-07 10:00:00.9 +0000 UTC\nb|3|2026-12-08 10:00:00.1 +0000 UTC\n"), "");
  EXPECT_EQ(gpu_race_loser("missing", holders), "");
}

TEST(GpuRace, OnlyHoldersOfTheSameCdiKindCount) {
  // GPU 0 of another kind is another device; an unlabelled kind is the default one.
  const std::string holders = "a|0|2026-12-07 10:00:00.1 +0000 UTC|vendor.example/gpu\n"
                              "b|0|2026-12-07 10:00:00.2 +0000 UTC|nvidia.com/gpu\n"
                              "c|0|2026-12-07 10:00:00.3 +0000 UTC|\n";
  EXPECT_EQ(gpu_race_loser("b", holders), "");
  EXPECT_NE(gpu_race_loser("c", holders).find("went to container b"), std::string::npos);
  EXPECT_EQ(gpu_race_loser("a", holders, "vendor.example/gpu"), "");
  EXPECT_EQ(gpu_labels_of_kind("a|0,1|vendor.example/gpu\nb|2/shared|nvidia.com/gpu\nc|3|\nd|4|<no value>\n",
                               "nvidia.com/gpu"),
            (std::vector<std::string>{"2/shared", "3", "4"}));
  EXPECT_EQ(gpu_labels_of_kind("a|0,1|vendor.example/gpu\nb|2|nvidia.com/gpu\n", "vendor.example/gpu"),
            std::vector<std::string>{"0,1"});
  EXPECT_TRUE(gpu_labels_of_kind("garbage\n", "nvidia.com/gpu").empty());
}

} // namespace
} // namespace smcp::sandbox
