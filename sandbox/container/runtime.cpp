#include "sandbox/container/runtime.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>

namespace smcp::sandbox {

const char* runtime_name(Runtime runtime) {
  return runtime == Runtime::podman ? "podman" : "docker";
}

Runtime parse_runtime(const std::string& name) {
  return name == "docker" ? Runtime::docker : Runtime::podman;
}

namespace {

std::vector<std::string> with_runtime(Runtime r, std::vector<std::string> rest) {
  rest.insert(rest.begin(), runtime_name(r));
  return rest;
}

// Container ids 0..65535 as host ids, the image user's (`inside`) being the owner's (`host`). When
// the owner is root, the container's ids below the user's move up by one (container root is uid 1
// on the host, not root); otherwise the two ids trade places. Contiguous ranges only: podman's
// idmapped image layers refused a mapping that moved container root far away (measured, 4.3).
void add_id_map(std::vector<std::string>& a, const char* flag, int inside, int host) {
  auto range = [&](long from, long to, long count) {
    if (count > 0) {
      a.push_back(std::string(flag) + "=" + std::to_string(from) + ":" + std::to_string(to) + ":" +
                  std::to_string(count));
    }
  };
  const long top = 65536;
  if (host == 0) {
    range(0, 1, inside);
    range(inside, 0, 1);
    range(inside + 1, inside + 1, top - inside - 1);
    return;
  }
  const long lo = std::min(inside, host), hi = std::max(inside, host);
  range(0, 0, lo);
  range(lo, hi, 1);
  range(lo + 1, lo + 1, hi - lo - 1);
  range(hi, lo, 1);
  range(hi + 1, hi + 1, std::max(0L, top - hi - 1));
}

} // namespace

std::vector<std::string> version_argv(Runtime r) {
  if (r == Runtime::docker) {
    return {"docker", "info", "--format", "{{.ServerVersion}}"};
  }
  return {"podman", "--version"};
}

std::vector<std::string> image_exists_argv(Runtime r, const std::string& image) {
  if (r == Runtime::podman) {
    return {"podman", "image", "exists", image};
  }
  return {"docker", "image", "inspect", "--format", "{{.Id}}", image};
}

std::vector<std::string> rootless_argv(Runtime r) {
  return with_runtime(r, {"info", "--format", "{{.Host.Security.Rootless}}"});
}

std::vector<std::string> container_run_argv(Runtime r, const ContainerOptions& o, const RunSpec& s) {
  std::vector<std::string> a = {runtime_name(r), "run"};
  if (s.detach) {
    a.push_back("-d");
  }
  for (const std::string& word :
       {std::string("--init"), std::string("--name"), s.container, std::string("--hostname"), s.sandbox,
        std::string("--label"), std::string(k_label) + "=" + s.sandbox, std::string("--label"),
        "sandbox-mcp.repo=" + s.repo_base, std::string("--workdir"), std::string(k_workspace)}) {
    a.push_back(word);
  }
  if (r == Runtime::podman && s.map_owner) {
    add_id_map(a, "--uidmap", o.user_uid, s.owner_uid);
    add_id_map(a, "--gidmap", o.user_gid, s.owner_gid);
  } else if (r == Runtime::podman && s.keep_id) {
    a.push_back("--userns=keep-id");
  }
  a.push_back("--volume");
  a.push_back(s.work_dir + ":" + k_workspace);
  if (!s.git_common.empty()) {
    a.push_back("--volume");
    a.push_back(s.git_common + ":" + s.git_common);
  }
  for (const auto& m : s.mounts) {
    a.push_back("--volume");
    a.push_back(m.source + ":" + m.target + (m.read_only ? ":ro" : ""));
  }
  if (!o.cpus.empty()) {
    a.push_back("--cpus=" + o.cpus);
  }
  if (!o.memory.empty()) {
    a.push_back("--memory=" + o.memory);
  }
  if (o.pids > 0) {
    a.push_back("--pids-limit=" + std::to_string(o.pids));
  }
  a.push_back("--env");
  a.push_back(std::string("SANDBOX_NAME=") + s.sandbox);
  if (!s.gpus.empty()) {
    // Other repositories' managers (another registry) read these before they give out GPUs.
    a.push_back("--label");
    a.push_back(std::string(k_gpu_label) + "=" + s.gpus + (s.gpu_shared ? "/shared" : ""));
  }
  if (s.ccr) {
    a.push_back("--env");
    a.push_back("SANDBOX_CCR=1");
    a.push_back("--label");
    a.push_back("sandbox-mcp.ccr=1");
  }
  if (s.has_env_file) {
    a.push_back("--env-file");
    a.push_back("/dev/stdin");
  }
  for (const auto& name : s.env_names) {
    a.push_back("--env");
    a.push_back(name);
  }
  a.insert(a.end(), s.device_args.begin(), s.device_args.end());
  a.insert(a.end(), o.run_args.begin(), o.run_args.end());
  a.push_back(o.image);
  a.insert(a.end(), s.command.begin(), s.command.end());
  return a;
}

std::vector<std::string> attach_argv(Runtime r, const std::string& container) {
  return with_runtime(r, {"exec", "-it", container, "tmux", "attach-session", "-t", k_tmux_session});
}

std::vector<std::string> tmux_new_argv(Runtime r, const std::string& container) {
  return with_runtime(r, {"exec", container, "tmux", "new-session", "-d", "-s", k_tmux_session, "-c", k_workspace, "-x",
                          "200", "-y", "50"});
}

std::vector<std::string> tmux_send_argv(Runtime r, const std::string& container, const std::vector<std::string>& keys,
                                        bool literal) {
  std::vector<std::string> a = with_runtime(r, {"exec", container, "tmux", "send-keys", "-t", k_tmux_session});
  if (literal) {
    a.push_back("-l");
    a.push_back("--");
  }
  a.insert(a.end(), keys.begin(), keys.end());
  return a;
}

std::vector<std::string> tmux_capture_argv(Runtime r, const std::string& container) {
  return with_runtime(r, {"exec", container, "tmux", "capture-pane", "-p", "-t", k_tmux_session});
}

std::vector<std::string> list_argv(Runtime r) {
  return with_runtime(r,
                      {"ps", "-a", "--filter", std::string("label=") + k_label, "--format", "{{.Names}} {{.State}}"});
}

std::vector<std::string> gpu_holders_argv(Runtime r) {
  return with_runtime(r, {"ps", "-a", "--filter", std::string("label=") + k_gpu_label, "--format",
                          std::string("{{.Names}} {{index .Labels \"") + k_gpu_label + "\"}}"});
}

std::vector<std::string> remove_argv(Runtime r, const std::string& container) {
  if (r == Runtime::podman) {
    return {"podman", "rm", "-f", "-t", "0", container};
  }
  return {"docker", "rm", "-f", container};
}

std::vector<std::string> exists_argv(Runtime r, const std::string& container) {
  if (r == Runtime::podman) {
    return {"podman", "container", "exists", container};
  }
  return {"docker", "container", "inspect", "--format", "{{.Id}}", container};
}

std::vector<std::string> remove_image_argv(Runtime r, const std::vector<std::string>& images) {
  std::vector<std::string> a = with_runtime(r, {"rmi"});
  a.insert(a.end(), images.begin(), images.end());
  return a;
}

std::string container_name(const std::string& repo_base, const std::string& sandbox) {
  std::uint32_t h = 2166136261u; // FNV-1a
  for (unsigned char c : repo_base) {
    h = (h ^ c) * 16777619u;
  }
  char hex[9];
  std::snprintf(hex, sizeof hex, "%08x", h);
  return std::string("smcp-") + hex + "-" + sandbox;
}

} // namespace smcp::sandbox
