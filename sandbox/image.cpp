#include "sandbox/image.h"

#include "sandbox/container/runtime.h"
#include "sandbox/host_commands.h"
#include "sandbox/registry.h"

#include <cstdlib>
#include <fstream>
#include <unistd.h>

namespace smcp::sandbox {

namespace {

using Kind = SandboxError::Kind;

[[noreturn]] void failed(const std::string& step, const CommandOutcome& o) {
  throw SandboxError(Kind::failed, "image build: " + step + " failed: " + o.message());
}

} // namespace

std::string containerfile(const ImageOptions& o) {
  const std::string uid = std::to_string(o.uid), gid = std::to_string(o.gid);
  return "FROM " + o.base_image + "\n" + "RUN groupadd -g " + gid + " " + o.user + " && useradd -m -u " + uid + " -g " +
         gid + " -s /bin/bash " + o.user + " && mkdir -p /workspace && chown " + uid + ":" + gid + " /workspace\n" +
         "ENV LANG=C.UTF-8 TERM=xterm-256color\n" + "USER " + o.user + "\n" + "WORKDIR /workspace\n" +
         "CMD [\"sleep\", \"infinity\"]\n";
}

// Long because it is the build's steps in order, each with its own diagnosis.
void build_image(exec::RemoteExecutor& x, const ImageOptions& o, const std::function<void(const std::string&)>& say) {
  const Runtime rt = o.runtime == "docker" ? Runtime::docker : Runtime::podman;
  const std::chrono::milliseconds quick{60000};
  if (run_argv(x, version_argv(rt), quick).status == 127) {
    throw SandboxError(Kind::missing, o.runtime + " is not installed: apt-get install " +
                                          (rt == Runtime::podman ? "podman runc" : "docker.io"));
  }
  if (!o.rebuild && run_argv(x, image_exists_argv(rt, o.image), quick).ok()) {
    say(o.image + " exists (use --rebuild to build it again)");
    return;
  }
  std::string tmp = o.work_dir;
  if (tmp.empty()) {
    const char* t = std::getenv("TMPDIR");
    tmp = t && *t ? t : "/tmp";
  }
  CommandOutcome made = run_argv(x, {"mktemp", "-d", tmp + "/sandbox-mcp-image.XXXXXX"}, quick);
  if (!made.ok()) {
    failed("mktemp", made);
  }
  const std::string dir = trim(made.out);
  struct Cleanup {
    exec::RemoteExecutor& x;
    std::string dir;
    ~Cleanup() {
      try {
        run_argv(x, {"rm", "-rf", "--", dir}, std::chrono::milliseconds(300000));
      } catch (...) {
      }
    }
  } cleanup{x, dir};

  if (o.rebuild || !run_argv(x, image_exists_argv(rt, o.base_image), quick).ok()) {
    if (run_argv(x, {"debootstrap", "--version"}, quick).status == 127) {
      throw SandboxError(Kind::missing, "debootstrap is not installed: apt-get install debootstrap");
    }
    if (::geteuid() != 0) {
      throw SandboxError(Kind::missing, "debootstrap needs root to make the base image: run `sudo sandbox-mcp image "
                                        "build` once, or set image in the config to an image you have");
    }
    say("debootstrap " + o.suite + " from " + o.mirror + " (about a minute)");
    CommandOutcome boot = run_argv(
        x,
        {"debootstrap", "--variant=minbase", "--include=" + join(o.packages, ","), o.suite, dir + "/rootfs", o.mirror},
        o.timeout);
    if (!boot.ok()) {
      failed("debootstrap", boot);
    }
    run_argv(x, {"rm", "-rf", "--", dir + "/rootfs/var/cache/apt/archives", dir + "/rootfs/var/lib/apt/lists"}, quick);
    say("importing the base as " + o.base_image);
    CommandOutcome tar = run_argv(x, {"tar", "-C", dir + "/rootfs", "-cf", dir + "/rootfs.tar", "."}, o.timeout);
    if (!tar.ok()) {
      failed("tar", tar);
    }
    CommandOutcome import = run_argv(x, {runtime_name(rt), "import", dir + "/rootfs.tar", o.base_image}, o.timeout);
    if (!import.ok()) {
      failed(std::string(runtime_name(rt)) + " import", import);
    }
    run_argv(x, {"rm", "-rf", "--", dir + "/rootfs", dir + "/rootfs.tar"}, o.timeout);
  }
  say("building " + o.image);
  {
    std::ofstream f(dir + "/Containerfile");
    f << containerfile(o);
    if (!f) {
      throw SandboxError(Kind::failed, "image build: cannot write " + dir + "/Containerfile");
    }
  }
  // The build's one RUN step adds a user: low ulimits suit it everywhere, and podman 4.3 asks for
  // higher ones than hosts whose hard limits are low allow ("error setting rlimit"), whatever
  // containers.conf says.
  CommandOutcome build = run_argv(x,
                                  {runtime_name(rt), "build", "--ulimit", "nofile=1024:1024", "--ulimit",
                                   "nproc=1024:1024", "-t", o.image, "-f", dir + "/Containerfile", dir},
                                  o.timeout);
  if (!build.ok()) {
    failed(std::string(runtime_name(rt)) + " build", build);
  }
  say("built " + o.image);
}

} // namespace smcp::sandbox
