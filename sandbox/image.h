// `sandbox-mcp image build`: the default sandbox image made on this machine without any registry.
// A Debian base is bootstrapped with debootstrap from Debian's mirror and imported
// (`podman import`), then a Containerfile adds the non-root user; each stage is skipped when its
// image exists, so a second build is a no-op (`--rebuild` starts over).
#pragma once

#include "sandbox/exec/remote_executor.h"

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace smcp::sandbox {

struct ImageOptions {
  std::string image = "localhost/sandbox-mcp:latest";
  std::string base_image = "localhost/sandbox-mcp-base:bookworm";
  std::string suite = "bookworm";
  std::string mirror = "http://deb.debian.org/debian";
  // bubblewrap: execution profiles work inside sandboxes too (with --security-opt unmask=/proc/*).
  std::vector<std::string> packages = {
      "bash", "tmux",           "git",       "python3", "coreutils", "ca-certificates", "procps",
      "less", "openssh-client", "bubblewrap"};
  std::string user = "agent";
  int uid = 1000;
  int gid = 1000;
  std::string runtime = "podman"; // podman | docker
  bool rebuild = false;
  std::string work_dir; // for the rootfs and the build context; empty: $TMPDIR or /tmp
  std::chrono::milliseconds timeout{1800000};
};

// Builds what is missing; `say` hears each step. Throws SandboxError naming what is missing
// (debootstrap, podman, root) or which step failed with its output.
void build_image(exec::RemoteExecutor& local, const ImageOptions& options,
                 const std::function<void(const std::string&)>& say);

// The Containerfile put on top of the base (exposed for tests).
std::string containerfile(const ImageOptions& options);

} // namespace smcp::sandbox
