// Durable server state (one SQLite database): background jobs, sandboxes, and an audit log of every
// command run. StateStore is the seam; SqliteStateStore is its SQLite implementation (over base/sqlite).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace smcp::state {

struct JobRecord {
  std::string id;   // bash_id
  std::string host; // host name as the tools know it ("local", an ssh alias)
  std::string command;
  std::string description;
  std::string cwd;
  std::string status; // running | exited | killed | unreachable
  std::optional<int> exit_code;
  std::optional<int> signal;
  std::string job_dir;      // durable jobs: the job's directory on the host
  long pid = 0;             // durable jobs: process group / session leader on the host
  std::string spill_path;   // attached jobs: the server-side file holding the full output
  std::uint64_t cursor = 0; // bytes of output already returned by remote_bash_output
  bool durable = false;     // runs detached from the server (survives restarts)
  std::int64_t started_at_ms = 0;
  std::int64_t ended_at_ms = 0; // 0 while running
};

// A row of the sandboxes table (its columns match the databases the sandbox manager CLI writes).
struct SandboxRecord {
  std::string name;
  std::string branch;
  std::string container_id;
  std::string slurm_job_id;
  std::string work_dir;
  bool ccr_mode = false;
  std::string created_at;
  std::string updated_at;
};

struct AuditEvent {
  std::int64_t at_ms = 0;
  std::string host;
  std::string kind;    // "run" | "job" | "kill" | "read" | ...
  std::string command; // or path, or job id
  std::string detail;  // exit status, error, ...
};

// A write failed because the disk (or the user's quota) is full. The message says so and names the
// database; reads keep working, and writes work again once space is freed.
class StoreFull : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

// Writes throw StoreFull when the disk is full, std::runtime_error for other failures.
class StateStore {
public:
  virtual ~StateStore() = default;

  virtual void put_job(const JobRecord& job) = 0; // insert or replace
  virtual std::optional<JobRecord> get_job(const std::string& id) = 0;
  virtual std::vector<JobRecord> list_jobs(std::size_t limit) = 0; // newest first
  // Moves the saved read position forward only (a smaller value than the saved one is ignored).
  virtual void set_job_cursor(const std::string& id, std::uint64_t cursor) = 0;
  virtual void delete_job(const std::string& id) = 0;

  // The sandbox manager's records (`sandbox-mcp new/ls/rm/attach/reset`, whose backends are not
  // built yet): the sandboxes table is part of the schema, so its reader and writer live here
  // with it; only tests call them until the manager is built.
  virtual void put_sandbox(const SandboxRecord& sandbox) = 0;
  virtual std::optional<SandboxRecord> get_sandbox(const std::string& name) = 0;
  virtual std::vector<SandboxRecord> list_sandboxes() = 0;
  virtual void delete_sandbox(const std::string& name) = 0;

  virtual void audit(const AuditEvent& event) = 0;
  // The audit log's reader, newest first. The server only writes the log (for people who inspect
  // the database); tests read it back to check what a command recorded.
  virtual std::vector<AuditEvent> recent_audit(std::size_t limit) = 0;
};

// Opens (creating or migrating) the database at `path`; ":memory:" for tests. On a full disk an
// existing database still opens (for reading; writes throw StoreFull until space is freed).
// Throws std::runtime_error with the path and SQLite's message when it cannot.
std::unique_ptr<StateStore> open_sqlite_store(const std::string& path);

} // namespace smcp::state
