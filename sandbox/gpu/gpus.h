// GPUs for sandboxes: what a sandbox asks for ("all", "none", a count, or indices), what a host
// offers (its /dev/nvidiaN nodes, the CDI devices of kind nvidia.com/gpu in /etc/cdi and
// /var/run/cdi, docker's nvidia runtime), which devices a sandbox gets (never one another sandbox
// on the host holds, unless both share), and the runtime arguments that give it exactly those
// (CDI `--device nvidia.com/gpu=N`, else docker `--gpus device=N,M`). Pure functions: the probe is a
// /bin/sh script the manager runs through the host's executor.
#pragma once

#include "sandbox/container/runtime.h"

#include <string>
#include <vector>

namespace smcp::sandbox {

constexpr const char* k_default_cdi_kind = "nvidia.com/gpu";

struct GpuRequest {
  enum class Kind { none, all, count, list };
  Kind kind = Kind::none;
  int count = 0;
  std::vector<int> indices; // Kind::list, ascending, no duplicates
  bool shared = false;      // may use devices other sandboxes hold (and let them use these)
  bool any() const { return kind != Kind::none; }
  std::string text() const; // "none" | "all" | "2" | "0,2"
};

// "all" | "none" | "" (none) | "N" (a count, 1 and up) | "I,J,..." (device indices; "0" is index 0
// only when written with a comma list: a lone "0" is the count 0 = none). Throws
// std::invalid_argument naming the accepted forms.
GpuRequest parse_gpus(const std::string& text, bool shared = false);

// Device indices as stored in the registry ("0,2"; "" for none) and back.
std::string join_indices(const std::vector<int>& indices);
std::vector<int> split_indices(const std::string& text);

struct HostGpus {
  std::vector<int> devices;             // N of each /dev/nvidiaN (ascending)
  std::vector<std::string> cdi_devices; // the device names of the CDI kind ("0", "1", "all", GPU-uuid...)
  bool docker_nvidia = false;           // docker lists an nvidia runtime
  bool docker_cdi = false;              // docker's engine reads CDI specs (docker >= 25 with CDI on)
  std::vector<std::string> cdi_files;   // the spec files that define the kind
};

// Prints "dev N" per /dev/nvidiaN, "cdi NAME" per device of `cdi_kind` in the CDI spec dirs,
// "file PATH" per such spec, and "docker-nvidia" when `docker info` lists an nvidia runtime and
// "docker-cdi" when it lists CDI spec directories (only with `check_docker`). Runs with /bin/sh -s.
std::string gpu_probe_script(const std::string& cdi_kind, bool check_docker, const std::string& dev_dir = "/dev",
                             const std::vector<std::string>& cdi_dirs = {"/etc/cdi", "/var/run/cdi"});
HostGpus parse_gpu_probe(const std::string& out);

// Which devices the sandbox gets on a host offering `devices`, given the devices other sandboxes
// there hold (exclusively or shared). Throws SandboxError(invalid) with what is missing or taken.
std::vector<int> allocate_gpus(const GpuRequest& request, const std::vector<int>& devices,
                               const std::vector<int>& held_exclusive, const std::vector<int>& held_shared,
                               const std::string& host);

// The run arguments that give a container exactly `indices`: CDI when the host has a CDI device
// for each, else (docker with its nvidia runtime) --gpus; else SandboxError(failed) naming what to
// install.
std::vector<std::string> gpu_run_args(Runtime runtime, const std::vector<int>& indices, const HostGpus& host,
                                      const std::string& cdi_kind, const std::string& host_name);

// One line of `nvidia-smi --query-gpu=index,name,memory.used,memory.total,utilization.gpu
// --format=csv,noheader,nounits` (k_nvidia_smi_query).
struct GpuStatus {
  int index = 0;
  std::string name;
  long memory_used_mib = -1; // -1: not reported ([N/A])
  long memory_total_mib = -1;
  long utilization_pct = -1;
};
constexpr const char* k_nvidia_smi_query =
    "nvidia-smi --query-gpu=index,name,memory.used,memory.total,utilization.gpu --format=csv,noheader,nounits";
std::vector<GpuStatus> parse_nvidia_smi(const std::string& csv);

// Another repository's manager (another registry) may choose the same GPUs at the same moment:
// both read the labels before either container exists. After `run`, every holder is listed
// ("NAME|GPUS[/shared]|CREATED|KIND" lines, CREATED as the runtime prints it) and, of two
// containers claiming one GPU (not both shared), the one created first keeps it. Only holders of
// `cdi_kind` count (a missing KIND is the default kind). Returns why `mine` must give its GPUs back
// ("" when it keeps them).
std::string gpu_race_loser(const std::string& mine, const std::string& holders,
                           const std::string& cdi_kind = k_default_cdi_kind);

// The "GPUS[/shared]" of the "NAME|GPUS[/shared]|KIND" lines (gpu_holders_argv) whose kind is
// `cdi_kind`: GPU 0 of another CDI kind is another device.
std::vector<std::string> gpu_labels_of_kind(const std::string& holders, const std::string& cdi_kind);

} // namespace smcp::sandbox
