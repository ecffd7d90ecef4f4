#include "mcp-server/store/state_store.h"

#include "mcp-server/base/sqlite/sqlite.h"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstdint>
#include <chrono>
#include <mutex>
#include <thread>
#include <stdexcept>

namespace smcp::state {

namespace {

constexpr int k_schema_version = 1;

constexpr const char* k_schema = R"sql(
CREATE TABLE IF NOT EXISTS jobs (
  id TEXT PRIMARY KEY,
  host TEXT NOT NULL,
  command TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT '',
  cwd TEXT NOT NULL DEFAULT '',
  status TEXT NOT NULL,
  exit_code INTEGER,
  signal INTEGER,
  job_dir TEXT NOT NULL DEFAULT '',
  pid INTEGER NOT NULL DEFAULT 0,
  spill_path TEXT NOT NULL DEFAULT '',
  cursor INTEGER NOT NULL DEFAULT 0,
  durable INTEGER NOT NULL DEFAULT 0,
  started_at_ms INTEGER NOT NULL,
  ended_at_ms INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_started ON jobs(started_at_ms);
CREATE TABLE IF NOT EXISTS sandboxes (
  name TEXT PRIMARY KEY,
  branch TEXT,
  container_id TEXT,
  slurm_job_id TEXT,
  work_dir TEXT,
  ccr_mode INTEGER DEFAULT 0,
  created_at TEXT DEFAULT (datetime('now')),
  updated_at TEXT DEFAULT (datetime('now'))
);
CREATE TABLE IF NOT EXISTS audit (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  at_ms INTEGER NOT NULL,
  host TEXT NOT NULL,
  kind TEXT NOT NULL,
  command TEXT NOT NULL,
  detail TEXT NOT NULL DEFAULT ''
);
)sql";

using sql::Statement;

// Throws the error for a failed SQLite call: StoreFull (with the path and what to do) when the disk
// is full, std::runtime_error with SQLite's message otherwise.
[[noreturn]] void fail(const sql::Failure& f) {
  if (f.what == "open") {
    throw std::runtime_error("cannot open state database " + f.path + ": " + f.message);
  }
  if (f.disk_full()) {
    const std::string& path = f.path;
    const std::string dir = path.substr(0, path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/'));
    throw StoreFull("disk full: cannot write the state database " + path + " (" + f.message +
                    "). Free some space on its filesystem (`df " + (dir.empty() ? "." : dir) +
                    "`; a few MB is enough), e.g. by removing ended jobs (remote_bash_kill {remove: true}) or "
                    "large files; reading jobs and files keeps working meanwhile.");
  }
  throw std::runtime_error("sqlite " + f.what + " failed on " + f.path + ": " + f.message);
}

constexpr const char* k_job_columns =
    "id, host, command, description, cwd, status, exit_code, signal, job_dir, pid, spill_path, cursor, durable, "
    "started_at_ms, ended_at_ms";

JobRecord read_job(const Statement& s) {
  JobRecord j;
  j.id = s.text(0);
  j.host = s.text(1);
  j.command = s.text(2);
  j.description = s.text(3);
  j.cwd = s.text(4);
  j.status = s.text(5);
  j.exit_code = s.opt_int(6);
  j.signal = s.opt_int(7);
  j.job_dir = s.text(8);
  j.pid = static_cast<long>(s.int64(9));
  j.spill_path = s.text(10);
  j.cursor = static_cast<std::uint64_t>(s.int64(11));
  j.durable = s.int64(12) != 0;
  j.started_at_ms = s.int64(13);
  j.ended_at_ms = s.int64(14);
  return j;
}

SandboxRecord read_sandbox(const Statement& s) {
  SandboxRecord r;
  r.name = s.text(0);
  r.branch = s.text(1);
  r.container_id = s.text(2);
  r.slurm_job_id = s.text(3);
  r.work_dir = s.text(4);
  r.ccr_mode = s.int64(5) != 0;
  r.created_at = s.text(6);
  r.updated_at = s.text(7);
  return r;
}

AuditEvent read_audit(const Statement& s) {
  return {s.int64(0), s.text(1), s.text(2), s.text(3), s.text(4)};
}

const std::string k_select_jobs = std::string("SELECT ") + k_job_columns + " FROM jobs ";
constexpr const char* k_select_sandboxes =
    "SELECT name, branch, container_id, slurm_job_id, work_dir, ccr_mode, created_at, updated_at FROM sandboxes ";

class SqliteStateStore final : public StateStore {
public:
  explicit SqliteStateStore(const std::string& path) {
    try {
      open(path, false);
    } catch (const StoreFull& e) {
      // A full disk: the WAL index (state.db-shm) cannot be created. With exclusive locking SQLite
      // keeps that index in memory, so an existing database opens and serves reads; writes fail
      // with StoreFull until space is freed. (No other process can open the database meanwhile.)
      m_db.reset();
      spdlog::warn("{}", e.what());
      open(path, true);
      spdlog::warn("state database {} opened in exclusive mode because the disk is full", path);
    }
  }

  void put_job(const JobRecord& j) override {
    execute("INSERT OR REPLACE INTO jobs (" + std::string(k_job_columns) + ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            j.id, j.host, j.command, j.description, j.cwd, j.status, j.exit_code, j.signal, j.job_dir,
            static_cast<std::int64_t>(j.pid), j.spill_path, static_cast<std::int64_t>(j.cursor),
            std::int64_t{j.durable}, j.started_at_ms, j.ended_at_ms);
  }

  std::optional<JobRecord> get_job(const std::string& id) override {
    return first(query(k_select_jobs + "WHERE id = ?", read_job, id));
  }

  std::vector<JobRecord> list_jobs(std::size_t limit) override {
    return query(k_select_jobs + "ORDER BY started_at_ms DESC, id LIMIT ?", read_job, static_cast<std::int64_t>(limit));
  }

  void set_job_cursor(const std::string& id, std::uint64_t cursor) override {
    execute("UPDATE jobs SET cursor = MAX(cursor, ?) WHERE id = ?", static_cast<std::int64_t>(cursor), id);
  }

  void delete_job(const std::string& id) override { execute("DELETE FROM jobs WHERE id = ?", id); }

  void put_sandbox(const SandboxRecord& r) override {
    execute("INSERT INTO sandboxes (name, branch, container_id, slurm_job_id, work_dir, ccr_mode, created_at, "
            "updated_at) VALUES (?,?,?,?,?,?, COALESCE(NULLIF(?, ''), datetime('now')), datetime('now')) "
            "ON CONFLICT(name) DO UPDATE SET branch=excluded.branch, container_id=excluded.container_id, "
            "slurm_job_id=excluded.slurm_job_id, work_dir=excluded.work_dir, ccr_mode=excluded.ccr_mode, "
            "updated_at=datetime('now')",
            r.name, r.branch, r.container_id, r.slurm_job_id, r.work_dir, std::int64_t{r.ccr_mode}, r.created_at);
  }

  std::optional<SandboxRecord> get_sandbox(const std::string& name) override {
    return first(query(k_select_sandboxes + std::string("WHERE name = ?"), read_sandbox, name));
  }

  std::vector<SandboxRecord> list_sandboxes() override {
    return query(k_select_sandboxes + std::string("ORDER BY created_at, name"), read_sandbox);
  }

  void delete_sandbox(const std::string& name) override { execute("DELETE FROM sandboxes WHERE name = ?", name); }

  void audit(const AuditEvent& e) override {
    execute("INSERT INTO audit (at_ms, host, kind, command, detail) VALUES (?,?,?,?,?)", e.at_ms, e.host, e.kind,
            e.command, e.detail);
  }

  std::vector<AuditEvent> recent_audit(std::size_t limit) override {
    return query("SELECT at_ms, host, kind, command, detail FROM audit ORDER BY seq DESC LIMIT ?", read_audit,
                 static_cast<std::int64_t>(limit));
  }

private:
  void open(const std::string& path, bool exclusive) {
    m_db = std::make_unique<sql::Database>(path, std::chrono::milliseconds(5000), fail);
    if (exclusive) {
      m_db->exec("PRAGMA locking_mode=EXCLUSIVE");
    }
    // Two processes opening a new database at once (two `sandbox-mcp new` in a fresh state
    // directory): the journal change needs a lock SQLite does not wait for. Wait for it here.
    m_db->exec_when_free("PRAGMA journal_mode=WAL");
    m_db->exec("PRAGMA synchronous=NORMAL");
    m_db->exec("PRAGMA foreign_keys=ON");
    std::int64_t version = 0;
    {
      // Finalized before BEGIN: a statement left open is a read transaction, and in WAL mode it
      // keeps BEGIN IMMEDIATE busy for ever once another process has written (two CLIs at once).
      Statement v(*m_db, "PRAGMA user_version");
      v.step();
      version = v.int64(0);
    }
    if (version > k_schema_version) {
      throw std::runtime_error("state database " + path + " was written by a newer sandbox-mcp (schema " +
                               std::to_string(version) + "); upgrade sandbox-mcp or use another --state-dir");
    }
    if (version == k_schema_version) {
      return; // up to date: nothing to write (a full disk must not keep the server from starting)
    }
    sql::Transaction schema(*m_db);
    m_db->exec(k_schema);
    m_db->exec("PRAGMA user_version = " + std::to_string(k_schema_version));
    schema.commit();
  }

  // One statement with `args` bound, under the lock.
  template <typename... Args> void execute(const std::string& sql, const Args&... args) {
    std::lock_guard lock(m_mutex);
    Statement s(*m_db, sql);
    s.bind_all(args...);
    s.step();
  }

  // The rows of a query with `args` bound, each made by `read`.
  template <typename Row, typename... Args>
  std::vector<Row> query(const std::string& sql, Row (*read)(const Statement&), const Args&... args) {
    std::lock_guard lock(m_mutex);
    Statement s(*m_db, sql);
    s.bind_all(args...);
    std::vector<Row> rows;
    while (s.step()) {
      rows.push_back(read(s));
    }
    return rows;
  }

  template <typename Row> static std::optional<Row> first(std::vector<Row> rows) {
    if (rows.empty()) {
      return std::nullopt;
    }
    return std::move(rows.front());
  }

  std::unique_ptr<sql::Database> m_db;
  std::mutex m_mutex;
};

} // namespace

std::unique_ptr<StateStore> open_sqlite_store(const std::string& path) {
  return std::make_unique<SqliteStateStore>(path);
}

} // namespace smcp::state
