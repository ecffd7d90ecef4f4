// The container backend's steps: the runtime and the image on the host, the GPUs it offers, the
// container run (with its undo), the GPU race, tmux; the states `ps` lists, entering the
// container (starting it when stopped), and rm of the container (after its id label is checked).
#include "sandbox/container/container_backend.h"

#include "sandbox/container/container_executor.h"
#include "sandbox/container/run_spec.h"
#include "sandbox/gpu/gpus.h"
#include "sandbox/host_commands.h"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <thread>

namespace smcp::sandbox {

namespace {

using Kind = SandboxError::Kind;
constexpr auto k_quick = k_quick_step;

// What the sandbox asks for and what its host offers (one probe, one `ps`).
struct GpuPlan {
  GpuRequest request;
  HostGpus host;
  std::vector<int> offered;        // what can be given: numbered CDI devices, else /dev/nvidiaN
  std::vector<std::string> labels; // "0,2[/shared]" of every container on the host holding GPUs of our kind
};

GpuPlan plan_gpus(const Creation& c, const ManagerOptions& options) {
  GpuPlan plan;
  plan.request = gpus_asked(c.request, options.default_gpus);
  if (!plan.request.any()) {
    return plan;
  }
  c.say("looking for GPUs on " + c.request.host);
  exec::RemoteExecutor& x = *c.x;
  plan.host = parse_gpu_probe(
      run_argv(x, {"sh", "-c", gpu_probe_script(options.cdi_kind, c.rt.runtime == Runtime::docker)}, k_quick).out);
  for (const auto& name : plan.host.cdi_devices) {
    if (!name.empty() && name.find_first_not_of("0123456789") == std::string::npos && name.size() < 5) {
      plan.offered.push_back(std::stoi(name));
    }
  }
  if (plan.offered.empty()) {
    plan.offered = plan.host.devices;
  }
  // Containers of other repositories (their registries are elsewhere) say what they hold in a label.
  plan.labels = gpu_labels_of_kind(run_argv(x, gpu_holders_argv(c.rt.runtime), k_quick).out, options.cdi_kind);
  return plan;
}

// Runs inside the registry's transaction: the GPUs no other sandbox on the host holds.
SandboxRegistry::Allocate gpu_allocator(const GpuPlan& plan, Runtime runtime, const std::string& cdi_kind) {
  return [plan, runtime, cdi_kind](SandboxRow& mine, const std::vector<SandboxRow>& others) {
    std::vector<int> exclusive, shared;
    for (const auto& label : plan.labels) {
      const bool is_shared = label.size() > 7 && label.substr(label.size() - 7) == "/shared";
      for (int d : split_indices(is_shared ? label.substr(0, label.size() - 7) : label)) {
        (is_shared ? shared : exclusive).push_back(d);
      }
    }
    for (const auto& o : others) {
      if (o.host == mine.host && o.name != mine.name) {
        for (int d : split_indices(o.gpus)) {
          (o.gpu_shared ? shared : exclusive).push_back(d);
        }
      }
    }
    auto got = allocate_gpus(plan.request, plan.offered, exclusive, shared, mine.host);
    gpu_run_args(runtime, got, plan.host, cdi_kind, mine.host); // throws when they cannot be given
    mine.gpus = join_indices(got);
    mine.gpu_shared = plan.request.shared;
  };
}

SandboxState container_state(const std::string& text) {
  if (text == "missing") {
    return {SandboxState::Kind::missing, text};
  }
  return {text == "running" ? SandboxState::Kind::running : SandboxState::Kind::stopped, text};
}

class ContainerBackend final : public SandboxBackend {
public:
  explicit ContainerBackend(BackendEnv& env) : m_env(env) {}

  void check(Creation& c) override {
    c.say("checking podman/docker on " + c.request.host);
    c.rt = m_env.runtime_on(c.request.host, *c.x);
    const GpuPlan gpus = plan_gpus(c, m_env.options());
    if (!run_argv(*c.x, image_exists_argv(c.rt.runtime, c.row.image), k_quick).ok()) {
      throw SandboxError(Kind::missing, "image " + c.row.image + " is not on " + c.request.host +
                                            ": build it with `sandbox-mcp image build`" +
                                            (c.request.host == "local" ? "" : " on " + c.request.host) +
                                            " (or name another image with `image`)");
    }
    c.gpu_host = gpus.host;
    if (gpus.request.any()) {
      c.allocate = gpu_allocator(gpus, c.rt.runtime, m_env.options().cdi_kind);
    }
  }

  void start(Creation& c) override;

  std::vector<std::string> runtime_argv(const SandboxRow&, std::vector<std::string> argv) const override {
    return argv;
  }

  std::shared_ptr<exec::RemoteExecutor> executor(const SandboxRow& row, std::shared_ptr<exec::RemoteExecutor> host,
                                                 exec::ScriptHostOptions&) override {
    return std::make_shared<ContainerExecutor>(std::move(host), parse_runtime(row.runtime), row.container_id, row.host);
  }

  void read_states(const std::vector<SandboxInfo*>& infos) override;

  std::vector<std::string> attach_argv(const SandboxRow& row) const override {
    return sandbox::attach_argv(parse_runtime(row.runtime), row.container_id);
  }

  std::optional<std::vector<std::string>> enter(const SandboxRow& row, exec::RemoteExecutor& x, bool may_start,
                                                std::string& why) override;

  bool never_ran(const SandboxRow&, exec::RemoteExecutor&) override { return false; }

  void remove(const SandboxRow& row, exec::RemoteExecutor& x, RemoveResult& result) override;

  std::string kept_by_reset(const SandboxRow&) const override { return {}; }

private:
  std::string unstick_podman(exec::RemoteExecutor& x, const std::string& container);

  BackendEnv& m_env;
};

// The steps after the worktree, each registering its undo right after it.
void ContainerBackend::start(Creation& c) {
  exec::RemoteExecutor& x = *c.x;
  SandboxRow& row = c.row;
  const HostRuntime rt = c.rt;
  const ManagerOptions& options = m_env.options();
  RunSpec spec = run_spec(row, rt, c.objects, existing_mounts(x, options.container, MountSet::host));
  spec.device_args = gpu_run_args(rt.runtime, split_indices(row.gpus), c.gpu_host, options.cdi_kind, row.host);
  spec.gpus = row.gpus;
  spec.gpu_shared = row.gpu_shared;
  spec.gpu_kind = options.cdi_kind;
  std::string env_file;
  for (const auto& name : options.container.env_allow) {
    const char* value = std::getenv(name.c_str());
    if (value && std::string(value).find('\n') == std::string::npos) {
      env_file += name + "=" + value + "\n";
    }
  }
  spec.has_env_file = !env_file.empty();
  auto opts = container_options(options.container, row, c.request);
  c.say("sandbox " + row.name + ": starting its container");
  // The name is ours (the row reserves it): a container by that name is a leftover of a `new` that
  // died half-way, and a failed run can leave one behind too.
  run_argv(x, remove_argv(rt.runtime, spec.container), k_quick);
  c.undo.push_back([&x, rt, container = spec.container] { run_argv(x, remove_argv(rt.runtime, container), k_quick); });
  CommandOutcome run = run_argv(x, container_run_argv(rt.runtime, opts, spec), options.step_timeout, env_file);
  if (!run.ok()) {
    step_failed(std::string(runtime_name(rt.runtime)) + " run failed on " + row.host + ": " + run.message());
  }
  row.container_id = spec.container;
  m_env.registry().update(row);
  if (!row.gpus.empty()) {
    // Another registry may have chosen the same GPUs meanwhile: the container created first keeps them.
    const std::vector<std::string> ids = lines_of(run_argv(x, gpu_holder_ids_argv(rt.runtime), k_quick).out);
    if (!ids.empty()) {
      const std::string lost = gpu_race_loser(
          spec.container, run_argv(x, gpu_holders_created_argv(rt.runtime, ids), k_quick).out, options.cdi_kind);
      if (!lost.empty()) {
        throw SandboxError(Kind::exists,
                           lost + ": this sandbox was not made; ask again (it will get other GPUs, or "
                                  "say that none are free)",
                           "gpus");
      }
    }
  }

  c.say("sandbox " + row.name + ": starting tmux");
  CommandOutcome tmux = run_argv(x, tmux_new_argv(rt.runtime, spec.container), k_quick);
  if (!tmux.ok()) {
    step_failed("tmux could not start in the container (is tmux in image " + row.image + "?): " + tmux.message());
  }
  c.state = container_state("running");
}

// One listing per host: every container of ours with its state.
void ContainerBackend::read_states(const std::vector<SandboxInfo*>& infos) {
  std::map<std::string, std::map<std::string, std::string>> states;
  std::map<std::string, std::string> host_errors;
  for (const SandboxInfo* info : infos) {
    const SandboxRow& row = info->row;
    if (states.count(row.host) || host_errors.count(row.host) || row.runtime.empty()) {
      continue;
    }
    try {
      auto x = m_env.executor_of(row.host);
      CommandOutcome o = run_argv(*x, list_argv(parse_runtime(row.runtime)), k_quick);
      if (!o.ok()) {
        host_errors[row.host] = row.runtime + " ps failed on " + row.host + ": " + o.message();
        continue;
      }
      auto& m = states[row.host];
      for (const auto& line : lines_of(o.out)) {
        auto space = line.find(' ');
        if (space != std::string::npos) {
          // podman prints the status ("Up 3 minutes", "Exited (137) 2 seconds ago"), docker the state.
          std::string state = line.substr(space + 1);
          state = state.substr(0, state.find(' '));
          std::transform(state.begin(), state.end(), state.begin(), [](unsigned char c) { return std::tolower(c); });
          m[line.substr(0, space)] = state == "up" ? "running" : state;
        }
      }
    } catch (const std::exception& e) {
      host_errors[row.host] = e.what();
    }
  }
  for (SandboxInfo* info : infos) {
    const SandboxRow& row = info->row;
    if (auto err = host_errors.find(row.host); err != host_errors.end()) {
      info->state = SandboxState{};
      info->note = err->second;
      continue;
    }
    const auto& m = states[row.host];
    auto it = m.find(row.container_id);
    info->state = container_state(it == m.end() ? "missing" : it->second);
    if (info->state.kind == SandboxState::Kind::missing) {
      info->note = "its container is gone; sandbox_rm removes its directory and the row (after keeping its work)";
    }
  }
}

std::optional<std::vector<std::string>> ContainerBackend::enter(const SandboxRow& row, exec::RemoteExecutor& x,
                                                                bool may_start, std::string& why) {
  const Runtime rt = parse_runtime(row.runtime);
  // One question: the container's id label and whether it runs ("ID true").
  CommandOutcome label = run_argv(x, id_and_running_argv(rt, row.container_id), k_quick);
  const std::string answer = trim(label.out);
  if (label.ok() && answer.substr(0, answer.find(' ')) != row.uid) {
    why = "container " + row.container_id + " is not this sandbox's (its id label differs)";
    return std::vector<std::string>{};
  }
  if (label.ok()) {
    if (answer.size() < 5 || answer.compare(answer.size() - 5, 5, " true") != 0) {
      if (!may_start) {
        why = "its container is not running";
        return std::vector<std::string>{};
      }
      if (CommandOutcome st = run_argv(x, start_argv(rt, row.container_id), k_quick); !st.ok()) {
        why = "its container does not start: " + st.message();
        return std::vector<std::string>{};
      }
    }
    return exec_argv(rt, row.container_id, {});
  }
  if (!may_start) {
    why = "its container is gone";
    return std::vector<std::string>{};
  }
  return std::nullopt;
}

std::string ContainerBackend::unstick_podman(exec::RemoteExecutor& x, const std::string& container) {
  const std::string id =
      trim(run_argv(x, {"podman", "container", "inspect", "--format", "{{.Id}}", container}, k_quick).out);
  if (id.size() != 64 || id.find_first_not_of("0123456789abcdef") != std::string::npos) {
    return "podman could not stop container " + container + " and its id is unknown";
  }
  CommandOutcome killed = run_argv(x, {"pkill", "-KILL", "-f", "--", "conmon .*-c " + id + " "}, k_quick);
  return "podman could not stop container " + container + " (a stuck exec session); its conmon processes were " +
         (killed.ok() ? "killed" : "not found (" + killed.message() + ")");
}

void ContainerBackend::remove(const SandboxRow& row, exec::RemoteExecutor& x, RemoveResult& result) {
  if (row.runtime.empty()) {
    return;
  }
  const std::string container = container_name(row.repo_base, row.name);
  const Runtime rt = parse_runtime(row.runtime);
  CommandOutcome label = run_argv(x, id_label_argv(rt, container), k_quick);
  if (label.status == 127) {
    throw SandboxError(Kind::missing, row.runtime + " is not installed on " + row.host +
                                          " any more; cannot remove container " + container +
                                          " (install it, then rm again)");
  } else if (label.ok() && trim(label.out) != row.uid) {
    result.notes.push_back("container " + container + " is not this sandbox's (its id label differs): left alone");
  } else if (label.ok()) {
    CommandOutcome o = run_argv(x, remove_argv(rt, container), k_quick);
    // A mount namespace made while the container ran (another container, a bwrap) can hold its
    // shm mount for a moment: "device or resource busy". Try again a few times.
    for (int attempt = 0; attempt < 5 && !o.ok() && mentions(o.message(), "resource busy"); ++attempt) {
      std::this_thread::sleep_for(std::chrono::seconds(1));
      o = run_argv(x, remove_argv(rt, container), k_quick);
    }
    if (!o.ok() && rt == Runtime::podman &&
        (mentions(o.message(), "did not die") || mentions(o.message(), "could not be stopped"))) {
      // An exec session's conmon blocked on its terminal keeps an unreaped process podman waits
      // for in vain: end the container's conmons, then remove again.
      result.notes.push_back(unstick_podman(x, container));
      o = run_argv(x, remove_argv(rt, container), k_quick);
    }
    if (!o.ok() && !mentions(o.message(), "no such container") && !mentions(o.message(), "no container with")) {
      step_failed("cannot remove container " + container + " on " + row.host + ": " + o.message() +
                  " (the sandbox is kept; try again)");
    }
  } else if (!row.container_id.empty()) {
    result.notes.push_back("container " + container + " was already gone");
  }
}

} // namespace

std::unique_ptr<SandboxBackend> make_container_backend(BackendEnv& env) {
  return std::make_unique<ContainerBackend>(env);
}

} // namespace smcp::sandbox
