// The sandbox registry: the original sandbox manager's SQLite table (`.sandbox_db.sqlite` under the
// repository base), with the same columns plus `host` and what the manager needs to find a sandbox
// again after a restart (runtime, image, repository, phase). The CLI and a running server share it:
// WAL mode, a busy timeout, and names reserved by an INSERT inside an immediate transaction, so
// two `new` calls can never take the same name.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace smcp::sandbox {

// A failure the tools and the CLI explain; `kind` decides how (invalid: a JSON-RPC -32602).
class SandboxError : public std::runtime_error {
public:
  enum class Kind {
    invalid,   // a bad name, branch or option: the caller must change the request
    exists,    // the name is taken
    not_found, // no such sandbox
    missing,   // a tool the backend needs is not installed (podman, git, tmux, an image)
    failed,    // a step failed on the host
    has_work,  // rm/reset: the sandbox holds work no branch has (force keeps it, then removes)
  };
  // `field`: the request field an invalid one is about ("branch", "gpus"; empty: the name).
  SandboxError(Kind kind, const std::string& message, std::string field = {})
      : std::runtime_error(message), m_kind(kind), m_field(std::move(field)) {}
  Kind kind() const { return m_kind; }
  const std::string& field() const { return m_field; }

private:
  Kind m_kind;
  std::string m_field;
};

// Where a sandbox is in its life, as the registry's `phase` column stores it (text: the original
// manager's table had no such column, and its rows read as ready).
enum class Phase {
  creating, // `new` is under way, or died half-way (`rm` finishes the job)
  ready,
  removing,
};
const char* phase_name(Phase phase);
// "" (a row of the original manager) is ready; an unknown word reads as creating (half-made).
Phase parse_phase(const std::string& text);

struct SandboxRow {
  std::string name;
  std::string branch;
  std::string container_id; // the container's name (the runtime accepts it wherever an id goes)
  std::string slurm_job_id;
  std::string work_dir; // the worktree, on `host`
  bool ccr_mode = false;
  std::string created_at; // "YYYY-MM-DD HH:MM:SS" UTC, as the original wrote it
  std::string updated_at;
  std::string host = "local";
  std::string runtime; // podman | docker
  std::string image;
  std::string repo_base; // the repository the worktree belongs to, on `host`
  std::string wrapper;   // Slurm: the podman-srun wrapper's path on `host`
  Phase phase = Phase::creating;
  std::string gpus;        // the GPU indices it holds on `host` ("0,2"; "" none)
  bool gpu_shared = false; // other sandboxes asking for shared GPUs may use them too
  bool own_branch = false; // `new` made the branch: sync fast-forwards it (a branch that was there is the human's)
  // 32 hex digits given by reserve(): this row's identity. The container carries it as a label
  // and the worktrees directory as a file, and nothing destructive runs unless they match, so a
  // registry replaced or edited behind our back cannot aim rm at anything else; update() and
  // remove() touch only the row with this id (not a later sandbox of the same name).
  std::string uid;
  // Neither a container nor a job is recorded (a `new` that died before it made either).
  bool records_nothing() const { return container_id.empty() && slurm_job_id.empty(); }
};

class SandboxRegistry {
public:
  // Opens (creating if needed) the database; adds our columns to an original manager's table.
  // Throws SandboxError(failed) naming the file.
  static std::unique_ptr<SandboxRegistry> open(const std::string& path);
  virtual ~SandboxRegistry() = default;

  // Inserts `row` with phase "creating"; an empty name takes the first free cnt_N (N from 1).
  // Throws SandboxError(exists) when the name is taken. Returns the row as stored.
  // `allocate`, when set, runs inside the same transaction with every other row, and may fill in
  // the row (its GPUs): two `new` calls never take the same devices.
  using Allocate = std::function<void(SandboxRow& row, const std::vector<SandboxRow>& others)>;
  virtual SandboxRow reserve(SandboxRow row, const Allocate& allocate = {}) = 0;
  virtual void update(const SandboxRow& row) = 0; // by name and uid; sets updated_at
  virtual std::optional<SandboxRow> get(const std::string& name) = 0;
  virtual std::vector<SandboxRow> list() = 0;     // oldest first
  virtual void remove(const SandboxRow& row) = 0; // by name and uid: never a later row of that name
  virtual std::string path() const = 0;
};

// The journal for a registry at `path`: WAL, or DELETE on a network filesystem (WAL's shared memory
// does not work there). By the filesystem's magic number (statfs).
const char* journal_mode_for(const std::string& path);
bool is_network_filesystem(unsigned long statfs_magic);

// Sandbox names: what the original accepted that is also safe as a container name, a directory
// name, a tmux target and a git ref component: [A-Za-z0-9][A-Za-z0-9_.-]{0,62}, no "..", not
// ending in ".lock" or ".". Throws SandboxError(invalid) saying what is wrong.
void check_name(const std::string& name);
// A branch name git accepts and that cannot be read as an option (no leading '-').
void check_branch(const std::string& branch);
// An image reference podman/docker would not read as an option: [A-Za-z0-9][A-Za-z0-9._/:@-]*.
void check_image(const std::string& image);
// A repository path: absolute (so that no command reads it as an option), without NUL or newline.
void check_repo_path(const std::string& path);

} // namespace smcp::sandbox
