#include "sandbox/registry.h"

#include "mcp-server/base/sqlite/sqlite.h"

#include <sys/stat.h>
#include <sys/statfs.h>

#include <cctype>
#include <fstream>
#include <chrono>
#include <mutex>
#include <thread>
#include <set>
#include <string_view>

namespace smcp::sandbox {

namespace {

// 128 random bits as hex: a row's identity, written beside the sandbox where only the manager
// writes (the worktrees directory) and on its container, so a row is acted on only when what it
// names is really the sandbox this row made.
std::string random_uid() {
  unsigned char bytes[16] = {};
  std::ifstream urandom("/dev/urandom", std::ios::binary);
  if (!urandom.read(reinterpret_cast<char*>(bytes), sizeof bytes)) {
    throw SandboxError(SandboxError::Kind::failed, "cannot read /dev/urandom for a sandbox id");
  }
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char b : bytes) {
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

} // namespace

const char* phase_name(Phase phase) {
  switch (phase) {
  case Phase::creating:
    return "creating";
  case Phase::ready:
    return "ready";
  case Phase::removing:
    return "removing";
  }
  return "creating";
}

Phase parse_phase(const std::string& text) {
  if (text.empty() || text == "ready") {
    return Phase::ready;
  }
  return text == "removing" ? Phase::removing : Phase::creating;
}

const char* journal_mode_for(const std::string& path) {
  std::string dir = path.substr(0, path.rfind('/'));
  struct statfs fs {};
  if (::statfs(dir.empty() ? "/" : dir.c_str(), &fs) != 0) {
    return "WAL";
  }
  return is_network_filesystem(static_cast<unsigned long>(fs.f_type)) ? "DELETE" : "WAL";
}

bool is_network_filesystem(unsigned long magic) {
  switch (magic) {
  case 0x6969:     // NFS
  case 0x517B:     // SMB
  case 0xFF534D42: // CIFS
  case 0xFE534D42: // SMB2
  case 0x0BD00BD0: // Lustre
  case 0x47504653: // GPFS
  case 0x00C36400: // Ceph
  case 0x01021997: // 9p
  case 0x65735546: // FUSE (sshfs, ...)
  case 0x013111A8: // IBRIX
  case 0x19830326: // BeeGFS (fhgfs)
  case 0xAAD7AAEA: // PanFS
    return true;
  default:
    return false;
  }
}

namespace {

// The original manager's table; our columns are added below, so an older database keeps working.
constexpr const char* k_schema = R"sql(
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
)sql";

constexpr const char* k_added_columns[][2] = {
    {"host", "TEXT DEFAULT 'local'"},    {"runtime", "TEXT DEFAULT ''"},      {"image", "TEXT DEFAULT ''"},
    {"repo_base", "TEXT DEFAULT ''"},    {"phase", "TEXT DEFAULT 'ready'"},   {"wrapper", "TEXT DEFAULT ''"},
    {"gpus", "TEXT DEFAULT ''"},         {"gpu_shared", "INTEGER DEFAULT 0"}, {"uid", "TEXT DEFAULT ''"},
    {"own_branch", "INTEGER DEFAULT 0"},
};

constexpr const char* k_columns =
    "name, branch, container_id, slurm_job_id, work_dir, ccr_mode, created_at, "
    "updated_at, host, runtime, image, repo_base, phase, wrapper, gpus, gpu_shared, uid, own_branch";

using sql::Statement;

[[noreturn]] void fail(const sql::Failure& f) {
  if (f.what == "open") {
    throw SandboxError(SandboxError::Kind::failed, "cannot open the sandbox registry " + f.path + ": " + f.message);
  }
  const bool call = f.what == "prepare" || f.what == "step";
  throw SandboxError(SandboxError::Kind::failed,
                     "sandbox registry " + f.path + ": " + (call ? f.what + ": " : std::string()) + f.message);
}

SandboxRow read_row(const Statement& s) {
  SandboxRow r;
  r.name = s.text(0);
  r.branch = s.text(1);
  r.container_id = s.text(2);
  r.slurm_job_id = s.text(3);
  r.work_dir = s.text(4);
  r.ccr_mode = s.integer(5) != 0;
  r.created_at = s.text(6);
  r.updated_at = s.text(7);
  r.host = s.text(8).empty() ? "local" : s.text(8);
  r.runtime = s.text(9);
  r.image = s.text(10);
  r.repo_base = s.text(11);
  r.phase = parse_phase(s.text(12));
  r.wrapper = s.text(13);
  r.gpus = s.text(14);
  r.gpu_shared = s.integer(15) != 0;
  r.uid = s.text(16);
  r.own_branch = s.integer(17) != 0;
  return r;
}

class SqliteRegistry final : public SandboxRegistry {
public:
  explicit SqliteRegistry(std::string path) : m_path(std::move(path)) {
    struct stat st {};
    if (::lstat(m_path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
      throw SandboxError(SandboxError::Kind::failed,
                         "the sandbox registry " + m_path + " is not a regular file (a link?): refusing to open it");
    }
    // The CLI and a server may write at the same time: wait for each other's locks.
    m_db = std::make_unique<sql::Database>(m_path, std::chrono::milliseconds(10000), fail);
    // WAL needs shared memory that network filesystems do not give (NFS, Lustre, GPFS: the Slurm
    // layout): there the classic rollback journal, whose locks work over NFS.
    // Two `new` at once on a fresh registry: the journal change needs a lock SQLite does not wait for.
    m_db->exec_when_free(std::string("PRAGMA journal_mode=") + journal_mode_for(m_path));
    m_db->exec(k_schema);
    std::set<std::string> have;
    {
      Statement info(*m_db, "PRAGMA table_info(sandboxes)");
      while (info.step()) {
        have.insert(info.text(1));
      }
    }
    for (const auto& column : k_added_columns) {
      if (!have.count(column[0])) {
        m_db->exec(std::string("ALTER TABLE sandboxes ADD COLUMN ") + column[0] + " " + column[1]);
      }
    }
  }

  SandboxRow reserve(SandboxRow row, const Allocate& allocate) override {
    std::lock_guard lock(m_mutex);
    sql::Transaction transaction(*m_db, /*wait=*/false);
    {
      if (allocate) {
        // Inside the transaction: no other `new` can take the same devices meanwhile.
        std::vector<SandboxRow> others;
        Statement all(*m_db, std::string("SELECT ") + k_columns + " FROM sandboxes");
        while (all.step()) {
          others.push_back(read_row(all));
        }
        allocate(row, others);
      }
      if (row.name.empty()) {
        std::set<std::string> taken;
        Statement names(*m_db, "SELECT name FROM sandboxes WHERE name LIKE 'cnt\\_%' ESCAPE '\\'");
        while (names.step()) {
          taken.insert(names.text(0));
        }
        for (int n = 1;; ++n) {
          if (!taken.count("cnt_" + std::to_string(n))) {
            row.name = "cnt_" + std::to_string(n);
            break;
          }
        }
      } else {
        Statement find(*m_db, "SELECT phase, host FROM sandboxes WHERE name = ?");
        if (find.bind(1, row.name).step()) {
          throw SandboxError(SandboxError::Kind::exists,
                             "a sandbox named '" + row.name + "' already exists (on " + find.text(1) +
                                 "); pick another name or remove it first (sandbox_rm / `sandbox-mcp rm -n " +
                                 row.name + "`)");
        }
      }
      row.phase = Phase::creating;
      row.uid = random_uid();
      Statement insert(*m_db, "INSERT INTO sandboxes (name, branch, container_id, slurm_job_id, work_dir, ccr_mode, "
                              "host, runtime, image, repo_base, phase, wrapper, gpus, gpu_shared, uid, created_at, "
                              "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, datetime('now'), "
                              "datetime('now'))");
      bind_fields(insert, row);
      insert.bind(15, row.uid);
      insert.step();
      transaction.commit();
    }
    return *get_locked(row.name);
  }

  void update(const SandboxRow& row) override {
    std::lock_guard lock(m_mutex);
    Statement s(*m_db,
                "UPDATE sandboxes SET branch = ?2, container_id = ?3, slurm_job_id = ?4, work_dir = ?5, "
                "ccr_mode = ?6, host = ?7, runtime = ?8, image = ?9, repo_base = ?10, phase = ?11, wrapper = ?12, "
                "gpus = ?13, gpu_shared = ?14, own_branch = ?16, updated_at = datetime('now') WHERE name = ?1 AND "
                "uid = ?15");
    s.bind(1, row.name);
    bind_fields(s, row, 2);
    s.bind(15, row.uid);
    s.bind(16, row.own_branch ? 1 : 0);
    s.step();
    if (m_db->changes() == 0) {
      throw SandboxError(SandboxError::Kind::not_found,
                         "sandbox '" + row.name +
                             "' was removed while it was being changed (sandbox_rm during sandbox_new?)");
    }
  }

  std::optional<SandboxRow> get(const std::string& name) override {
    std::lock_guard lock(m_mutex);
    return get_locked(name);
  }

  std::vector<SandboxRow> list() override {
    std::lock_guard lock(m_mutex);
    std::vector<SandboxRow> rows;
    Statement s(*m_db, (std::string("SELECT ") + k_columns + " FROM sandboxes ORDER BY created_at, name").c_str());
    while (s.step()) {
      rows.push_back(read_row(s));
    }
    return rows;
  }

  void remove(const SandboxRow& row) override {
    std::lock_guard lock(m_mutex);
    Statement s(*m_db, "DELETE FROM sandboxes WHERE name = ? AND uid = ?");
    s.bind(1, row.name).bind(2, row.uid).step();
  }

  std::string path() const override { return m_path; }

private:
  // Binds every field but name, created_at and updated_at from `first` on, in k_columns' order.
  void bind_fields(Statement& s, const SandboxRow& r, int first = 1) {
    if (first == 1) {
      s.bind(1, r.name);
      first = 2;
    }
    s.bind(first, r.branch)
        .bind(first + 1, r.container_id)
        .bind(first + 2, r.slurm_job_id)
        .bind(first + 3, r.work_dir)
        .bind(first + 4, r.ccr_mode ? 1 : 0)
        .bind(first + 5, r.host)
        .bind(first + 6, r.runtime)
        .bind(first + 7, r.image)
        .bind(first + 8, r.repo_base)
        .bind(first + 9, std::string(phase_name(r.phase)))
        .bind(first + 10, r.wrapper)
        .bind(first + 11, r.gpus)
        .bind(first + 12, r.gpu_shared ? 1 : 0);
  }

  std::optional<SandboxRow> get_locked(const std::string& name) {
    Statement s(*m_db, std::string("SELECT ") + k_columns + " FROM sandboxes WHERE name = ?");
    if (s.bind(1, name).step()) {
      return read_row(s);
    }
    return std::nullopt;
  }

  std::string m_path;
  std::unique_ptr<sql::Database> m_db;
  std::mutex m_mutex;
};

} // namespace

std::unique_ptr<SandboxRegistry> SandboxRegistry::open(const std::string& path) {
  return std::make_unique<SqliteRegistry>(path);
}

void check_name(const std::string& name) {
  auto bad = [&](const std::string& why) {
    throw SandboxError(SandboxError::Kind::invalid,
                       "invalid sandbox name '" + name + "': " + why +
                           " (use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit)");
  };
  if (name.empty() || name.size() > 63) {
    bad(name.empty() ? "it is empty" : "it is longer than 63 characters");
  }
  if (!std::isalnum(static_cast<unsigned char>(name[0]))) {
    bad("it must start with a letter or digit");
  }
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
      bad(c == '/' ? "'/' is not allowed"
                   : std::string("character ") +
                         (std::isprint(static_cast<unsigned char>(c))
                              ? std::string("'") + c + "'"
                              : "code " + std::to_string(static_cast<unsigned char>(c))) +
                         " is not allowed");
    }
  }
  if (name.find("..") != std::string::npos || name.back() == '.' ||
      (name.size() >= 5 && name.compare(name.size() - 5, 5, ".lock") == 0)) {
    bad("'..', a final '.' and a final '.lock' are not allowed");
  }
}

void check_image(const std::string& image) {
  bool ok = !image.empty() && image.size() <= 255 && std::isalnum(static_cast<unsigned char>(image[0]));
  for (char c : image) {
    ok = ok &&
         (std::isalnum(static_cast<unsigned char>(c)) || std::string_view("._/:@-").find(c) != std::string_view::npos);
  }
  if (!ok) {
    throw SandboxError(SandboxError::Kind::invalid,
                       "invalid image '" + image +
                           "': use a reference like localhost/sandbox-mcp:latest (letters, "
                           "digits and . _ / : @ -, starting with a letter or digit)",
                       "image");
  }
}

void check_repo_path(const std::string& path) {
  if (path.empty() || path[0] != '/' || path.find_first_of(std::string("\n\0", 2)) != std::string::npos) {
    throw SandboxError(SandboxError::Kind::invalid,
                       "invalid repo_base '" + path + "': give the repository's absolute path on its host",
                       "repo_base");
  }
}

void check_branch(const std::string& branch) {
  auto bad = [&](const std::string& why) {
    throw SandboxError(SandboxError::Kind::invalid, "invalid branch name '" + branch + "': " + why, "branch");
  };
  if (branch.empty() || branch.size() > 200) {
    bad(branch.empty() ? "it is empty" : "it is longer than 200 characters");
  }
  if (branch[0] == '-' || branch[0] == '/' || branch.back() == '/' || branch.back() == '.') {
    bad("it may not start with '-' or '/' or end with '/' or '.'");
  }
  for (char c : branch) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f || c == ' ' || c == '~' || c == '^' || c == ':' || c == '?' || c == '*' || c == '[' ||
        c == '\\') {
      bad("spaces, control characters and ~ ^ : ? * [ \\ are not allowed");
    }
  }
  if (branch.rfind("sandbox/", 0) == 0 || branch.rfind("sandbox-rescue/", 0) == 0) {
    bad("names under sandbox/ and sandbox-rescue/ are where sandboxes' work arrives");
  }
  if (branch.find("..") != std::string::npos || branch.find("@{") != std::string::npos ||
      branch.find("//") != std::string::npos || branch.find("/.") != std::string::npos || branch == "@" ||
      (branch.size() >= 5 && branch.compare(branch.size() - 5, 5, ".lock") == 0)) {
    bad("'..', '@{', '//', a component starting with '.' and a final '.lock' are not allowed");
  }
}

} // namespace smcp::sandbox
