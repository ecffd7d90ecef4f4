// The command lines of the container backend, for podman and docker, as argv vectors: nothing here
// runs anything, so every line is unit-tested (tests/unit/container_runtime_test.cpp) and the
// backend (container_backend.cpp) only decides which to run, through a host's executor.
#pragma once

#include <string>
#include <vector>

namespace smcp::sandbox {

enum class Runtime { podman, docker };
const char* runtime_name(Runtime runtime);
Runtime parse_runtime(const std::string& name); // "docker" -> docker; anything else (a row's "podman") -> podman

struct Mount {
  std::string source; // on the sandbox's host
  std::string target; // in the container
  bool read_only = false;
  bool slurm = false; // also in Slurm sandboxes (the secrets rule keeps the others out of them)
};

// How containers are made, from the config file and the call (see docs/sandboxes.md).
struct ContainerOptions {
  std::string runtime = "auto"; // podman | docker | auto (podman when installed, else docker)
  std::string image = "localhost/sandbox-mcp:latest";
  std::string user_home = "/home/agent"; // the image user's home: where the seed's files are mounted
  int user_uid = 1000;                   // the image user's ids (podman maps the worktree's owner to them)
  int user_gid = 1000;
  std::vector<Mount> mounts;          // extra mounts (each only when its source exists)
  std::string cpus;                   // --cpus (e.g. "2"); empty: no limit
  std::string memory;                 // --memory (e.g. "4g"); empty: no limit
  long pids = 0;                      // --pids-limit; 0: the runtime's default
  std::vector<std::string> env_allow; // names passed from the server's environment when set there
  std::vector<std::string> run_args;  // added to `run` as they are (e.g. "--runtime", "runc")
  // Rootful podman: container ids 0..65535 are host ids userns_base.. (never a host user's, never
  // root): the agent (user_uid) is host uid userns_base + user_uid.
  long userns_base = 1879048192; // 0x70000000
};

// What `run` is given for one sandbox.
struct RunSpec {
  std::string container; // the container's name
  std::string sandbox;   // the sandbox's name (hostname, label)
  std::string repo_base;
  std::string work_dir;      // the sandbox's own clone, mounted at /workspace
  std::string objects;       // the host repository's object store (a shared clone's alternates): read-only
  std::vector<Mount> mounts; // seed and extra mounts whose source exists
  std::string uid;           // the registry row's id (label sandbox-mcp.id)
  bool ccr = false;
  bool has_env_file = false; // environment comes on stdin (--env-file /dev/stdin): values never on argv
  // Rootful podman: the container in its own user namespace at ContainerOptions::userns_base.
  bool userns = false;
  bool keep_id = false;               // rootless podman: --userns=keep-id (the owner is the image user)
  std::vector<std::string> env_names; // --env NAME: the value from podman's environment
  std::vector<std::string> command = {"sleep", "infinity"}; // the container's main process
  bool detach = true;                   // run -d; a Slurm job's payload stays in the foreground instead
  std::vector<std::string> device_args; // the sandbox's GPUs (sandbox/gpu/gpus.h: --device KIND=N / --gpus)
  std::string gpus;                     // their indices, for the label other registries read
  bool gpu_shared = false;
  std::string gpu_kind; // their CDI kind: indices of another kind are other devices
};

constexpr const char* k_tmux_session = "main";
constexpr const char* k_workspace = "/workspace";
constexpr const char* k_label = "sandbox-mcp.sandbox";           // label holding the sandbox's name
constexpr const char* k_gpu_label = "sandbox-mcp.gpus";          // "0,2" or "0,2/shared": the GPUs it holds
constexpr const char* k_id_label = "sandbox-mcp.id";             // the registry row's id
constexpr const char* k_gpu_kind_label = "sandbox-mcp.gpu_kind"; // the CDI kind of those GPUs

// Succeeds when the runtime can run containers: `podman --version` (daemonless), `docker info`
// (a docker client without a reachable engine fails it).
std::vector<std::string> version_argv(Runtime r);
std::vector<std::string> image_exists_argv(Runtime r, const std::string& image);
std::vector<std::string> rootless_argv(Runtime r); // prints true/false (podman only)
std::vector<std::string> container_run_argv(Runtime r, const ContainerOptions& o, const RunSpec& spec);
// What a human runs to attach (a tty).
std::vector<std::string> attach_argv(Runtime r, const std::string& container);
std::vector<std::string> tmux_new_argv(Runtime r, const std::string& container);
std::vector<std::string> tmux_send_argv(Runtime r, const std::string& container, const std::vector<std::string>& keys,
                                        bool literal);
std::vector<std::string> tmux_capture_argv(Runtime r, const std::string& container);
// Every container of ours: "NAME STATE" lines.
std::vector<std::string> list_argv(Runtime r);
// Every container on the host holding GPUs, whichever repository it belongs to: "NAME GPUS[/shared]".
// "NAME|GPUS[/shared]|KIND" of every container holding GPUs (KIND empty on containers made before
// the kind was labelled: the default kind).
std::vector<std::string> gpu_holders_argv(Runtime r);
// The ids of every container holding GPUs (for gpu_holders_created_argv).
std::vector<std::string> gpu_holder_ids_argv(Runtime r);
// "NAME|GPUS[/shared]|CREATED|KIND" of the containers `ids` (for gpu_race_loser).
std::vector<std::string> gpu_holders_created_argv(Runtime r, const std::vector<std::string>& ids);
std::vector<std::string> remove_argv(Runtime r, const std::string& container);
std::vector<std::string> exists_argv(Runtime r, const std::string& container); // exit 0 when it exists
// Prints the container's sandbox-mcp.id label (fails when there is no such container).
std::vector<std::string> id_label_argv(Runtime r, const std::string& container);
// Prints "ID true|false": the label and whether the container runs.
std::vector<std::string> id_and_running_argv(Runtime r, const std::string& container);
std::vector<std::string> start_argv(Runtime r, const std::string& container);
// `podman exec -i --workdir /workspace C ARGV...` (as the image user).
std::vector<std::string> exec_argv(Runtime r, const std::string& container, const std::vector<std::string>& argv);
// The id options of `run` (the user namespace), for one-off containers over a sandbox's files.
std::vector<std::string> userns_args(Runtime r, const ContainerOptions& o, const RunSpec& s);
// The --volume options of `run` for the workspace, the object store and `s.mounts`.
std::vector<std::string> volume_args(Runtime r, const RunSpec& s);
std::vector<std::string> remove_image_argv(Runtime r, const std::vector<std::string>& images);

// "smcp-<8 hex of repo_base>-<name>": sandboxes of two repositories never share a container name.
std::string container_name(const std::string& repo_base, const std::string& sandbox);

} // namespace smcp::sandbox
