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
  if (!s.uid.empty()) {
    a.push_back("--label");
    a.push_back(std::string(k_id_label) + "=" + s.uid);
  }
  // setuid files the agent makes (in its workspace or anywhere) never raise a privilege.
  a.push_back("--security-opt=no-new-privileges");
  // The agent is the configured user whatever the image says (an image without USER would make it
  // root: under docker without userns-remap, host root).
  a.push_back("--user=" + std::to_string(o.user_uid) + ":" + std::to_string(o.user_gid));
  for (auto& w : userns_args(r, o, s)) {
    a.push_back(w);
  }
  for (auto& w : volume_args(r, s)) {
    a.push_back(w);
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
    if (!s.gpu_kind.empty()) {
      a.push_back("--label");
      a.push_back(std::string(k_gpu_kind_label) + "=" + s.gpu_kind);
    }
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

std::vector<std::string> userns_args(Runtime r, const ContainerOptions& o, const RunSpec& s) {
  if (r == Runtime::podman && s.userns) {
    const std::string base = std::to_string(o.userns_base);
    return {"--uidmap=0:" + base + ":65536", "--gidmap=0:" + base + ":65536"};
  }
  if (r == Runtime::podman && s.keep_id) {
    return {"--userns=keep-id"};
  }
  return {};
}

std::vector<std::string> volume_args(Runtime r, const RunSpec& s) {
  // podman takes nosuid/nodev/noexec on a bind mount; docker's -v does not (its containers run
  // with no-new-privileges, which makes setuid bits inert all the same).
  const bool podman = r == Runtime::podman;
  std::vector<std::string> a = {"--volume", s.work_dir + ":" + k_workspace + (podman ? ":rw,nosuid,nodev" : "")};
  if (!s.objects.empty()) {
    a.push_back("--volume");
    a.push_back(s.objects + ":" + s.objects + (podman ? ":ro,nosuid,nodev,noexec" : ":ro"));
  }
  for (const auto& m : s.mounts) {
    a.push_back("--volume");
    a.push_back(m.source + ":" + m.target +
                (podman ? (m.read_only ? ":ro,nosuid,nodev" : ":rw,nosuid,nodev") : (m.read_only ? ":ro" : "")));
  }
  return a;
}

std::vector<std::string> id_label_argv(Runtime r, const std::string& container) {
  return with_runtime(r, {"container", "inspect", "--format",
                          std::string("{{index .Config.Labels \"") + k_id_label + "\"}}", container});
}

std::vector<std::string> id_and_running_argv(Runtime r, const std::string& container) {
  return with_runtime(r,
                      {"container", "inspect", "--format",
                       std::string("{{index .Config.Labels \"") + k_id_label + "\"}} {{.State.Running}}", container});
}

std::vector<std::string> start_argv(Runtime r, const std::string& container) {
  return with_runtime(r, {"start", container});
}

std::vector<std::string> exec_argv(Runtime r, const std::string& container, const std::vector<std::string>& argv) {
  std::vector<std::string> a = with_runtime(r, {"exec", "-i", "--workdir", k_workspace, container});
  a.insert(a.end(), argv.begin(), argv.end());
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
  // docker's `ps` has .Labels as one string and a .Label function; podman's has the map.
  auto label = [r](const char* key) {
    return r == Runtime::docker ? std::string("{{.Label \"") + key + "\"}}"
                                : std::string("{{index .Labels \"") + key + "\"}}";
  };
  return with_runtime(r, {"ps", "-a", "--filter", std::string("label=") + k_gpu_label, "--format",
                          "{{.Names}}|" + label(k_gpu_label) + "|" + label(k_gpu_kind_label)});
}

std::vector<std::string> gpu_holder_ids_argv(Runtime r) {
  return with_runtime(r, {"ps", "-aq", "--filter", std::string("label=") + k_gpu_label});
}

std::vector<std::string> gpu_holders_created_argv(Runtime r, const std::vector<std::string>& ids) {
  std::vector<std::string> a =
      with_runtime(r, {"container", "inspect", "--format",
                       std::string("{{.Name}}|{{index .Config.Labels \"") + k_gpu_label +
                           "\"}}|{{.Created}}|{{index .Config.Labels \"" + k_gpu_kind_label + "\"}}"});
  a.insert(a.end(), ids.begin(), ids.end());
  return a;
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
