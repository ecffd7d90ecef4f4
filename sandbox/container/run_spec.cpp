#include "sandbox/container/run_spec.h"

#include "sandbox/host_commands.h"

#include <algorithm>
#include <sstream>

namespace smcp::sandbox {

HostRuntime find_runtime(exec::RemoteExecutor& x, const std::string& host, const std::string& wanted) {
  using Kind = SandboxError::Kind;
  constexpr auto k_quick = k_quick_step;
  HostRuntime rt;
  if (wanted == "podman" || wanted == "docker") {
    rt.runtime = parse_runtime(wanted);
    if (CommandOutcome v = run_argv(x, version_argv(rt.runtime), k_quick); v.status == 127) {
      throw SandboxError(Kind::missing,
                         wanted + " is not installed on " + host + " (the config asks for it): " +
                             (wanted == "podman" ? "apt-get install podman" : "apt-get install docker.io"));
    } else if (!v.ok()) { // a docker client without its engine (`docker info` cannot reach it)
      throw SandboxError(Kind::missing,
                         wanted + " does not work on " + host + " (the config asks for it): " + v.message());
    }
  } else if (run_argv(x, version_argv(Runtime::podman), k_quick).ok()) {
    rt.runtime = Runtime::podman;
  } else if (CommandOutcome docker = run_argv(x, version_argv(Runtime::docker), k_quick); docker.ok()) {
    rt.runtime = Runtime::docker;
  } else {
    throw SandboxError(Kind::missing,
                       "neither podman nor docker works on " + host +
                           ": install podman (Debian: `apt-get install podman runc`) or docker (`apt-get install "
                           "docker.io`)" +
                           (docker.status == 127 ? std::string() : " (docker is there but: " + docker.message() + ")"));
  }
  if (rt.runtime == Runtime::podman) {
    rt.rootless = trim(run_argv(x, rootless_argv(rt.runtime), k_quick).out) == "true";
  }
  return rt;
}

std::string workspace_owner(exec::RemoteExecutor& x, const HostRuntime& rt, const ContainerOptions& o) {
  if (rt.runtime == Runtime::podman && !rt.rootless) {
    return std::to_string(o.userns_base + o.user_uid) + ":" + std::to_string(o.userns_base + o.user_gid);
  }
  if (rt.runtime == Runtime::docker && trim(run_argv(x, {"id", "-u"}, k_quick_step).out) == "0") {
    return std::to_string(o.user_uid) + ":" + std::to_string(o.user_gid);
  }
  return {};
}

std::vector<Mount> existing_mounts(exec::RemoteExecutor& x, const ContainerOptions& o, MountSet set) {
  const bool batch = set == MountSet::batch_job;
  std::string home = trim(run_argv(x, {"printenv", "HOME"}, k_quick_step).out);
  std::vector<Mount> wanted;
  // All read-only: gh's config (a `pager:` or an alias) and git's run on the host later. Slurm
  // sandboxes get none of them: only GITHUB_TOKEN crosses into a Slurm job (the secrets rule).
  if (!home.empty() && !batch) {
    wanted = {
        {home + "/.claude-code-router/config.json", o.user_home + "/.claude-code-router/config.json", true},
        {home + "/.config/gh", o.user_home + "/.config/gh", true},
        {home + "/.git-credentials", o.user_home + "/.git-credentials", true},
        {home + "/.gitconfig", o.user_home + "/.gitconfig", true},
    };
  }
  for (auto m : o.mounts) {
    if (batch && !m.slurm) {
      continue; // a mount reaches Slurm jobs only when the config says so ("slurm": true)
    }
    if (m.source.rfind("~/", 0) == 0 && !home.empty()) {
      m.source = home + m.source.substr(1);
    }
    wanted.push_back(m);
  }
  if (wanted.empty()) {
    return {};
  }
  std::vector<std::string> argv = {"ls", "-d", "--"};
  for (const auto& m : wanted) {
    argv.push_back(m.source);
  }
  CommandOutcome listed = run_argv(x, argv, k_quick_step); // lists the ones that exist (exit 2 when some do not)
  std::istringstream in(listed.out);
  std::vector<std::string> present;
  for (std::string line; std::getline(in, line);) {
    present.push_back(line);
  }
  std::vector<Mount> out;
  for (const auto& m : wanted) {
    if (std::find(present.begin(), present.end(), m.source) != present.end()) {
      out.push_back(m);
    }
  }
  return out;
}

ContainerOptions container_options(const ContainerOptions& base, const SandboxRow& row, const NewRequest& request) {
  auto opts = base;
  opts.image = row.image;
  if (!request.cpus.empty()) {
    opts.cpus = request.cpus;
  }
  if (!request.memory.empty()) {
    opts.memory = request.memory;
  }
  if (request.pids > 0) {
    opts.pids = request.pids;
  }
  return opts;
}

RunSpec run_spec(const SandboxRow& row, const HostRuntime& rt, const std::string& objects, std::vector<Mount> mounts) {
  RunSpec spec;
  spec.container = container_name(row.repo_base, row.name);
  spec.sandbox = row.name;
  spec.repo_base = row.repo_base;
  spec.work_dir = row.work_dir;
  spec.objects = objects;
  spec.uid = row.uid;
  spec.ccr = row.ccr_mode;
  spec.mounts = std::move(mounts);
  if (rt.runtime == Runtime::podman) {
    // Never host root, never a host user: rootful podman puts the container in its own range.
    spec.userns = !rt.rootless;
    spec.keep_id = rt.rootless;
  }
  return spec;
}

std::vector<std::string> reader_argv(const SandboxRow& row, const ContainerOptions& co, Runtime rt,
                                     const HostRuntime& hr, const std::string& objects) {
  RunSpec spec;
  spec.work_dir = row.work_dir;
  spec.userns = rt == Runtime::podman && !hr.rootless;
  spec.keep_id = rt == Runtime::podman && hr.rootless;
  spec.objects = objects;
  std::vector<std::string> a = {runtime_name(rt),
                                "run",
                                "--rm",
                                "-i",
                                "--network=none",
                                "--security-opt=no-new-privileges",
                                "--user=" + std::to_string(co.user_uid) + ":" + std::to_string(co.user_gid),
                                "--workdir",
                                k_workspace,
                                "--pids-limit=" + std::to_string(co.pids > 0 ? co.pids : 512),
                                "--memory=" + (co.memory.empty() ? std::string("2g") : co.memory)};
  if (!co.cpus.empty()) {
    a.push_back("--cpus=" + co.cpus);
  }
  for (auto& w : userns_args(rt, co, spec)) {
    a.push_back(w);
  }
  for (auto& w : volume_args(rt, spec)) {
    a.push_back(w);
  }
  a.insert(a.end(), co.run_args.begin(), co.run_args.end());
  std::string image = row.image;
  try {
    check_image(image);
  } catch (const SandboxError&) {
    image = co.image; // never an option word from a row
  }
  a.push_back(image);
  return a;
}

} // namespace smcp::sandbox
