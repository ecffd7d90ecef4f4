#include "mcp-server/base/sqlite/sqlite.h"

#include <sqlite3.h>

#include <cerrno>
#include <thread>

namespace smcp::sql {

bool Failure::disk_full() const {
  return (code & 0xff) == SQLITE_FULL ||
         ((code & 0xff) == SQLITE_IOERR && (system_errno == ENOSPC || system_errno == EDQUOT));
}

bool Failure::busy() const {
  return (code & 0xff) == SQLITE_BUSY;
}

Database::Database(const std::string& path, std::chrono::milliseconds busy_timeout, Thrower thrower)
    : m_path(path), m_thrower(std::move(thrower)) {
  const int rc =
      sqlite3_open_v2(path.c_str(), &m_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    Failure f{"open", rc, 0, m_db ? sqlite3_errmsg(m_db) : "out of memory", path};
    sqlite3_close(m_db);
    m_db = nullptr;
    m_thrower(f);
    throw std::logic_error("sql::Thrower returned"); // never reached: a Thrower throws
  }
  sqlite3_busy_timeout(m_db, static_cast<int>(busy_timeout.count()));
}

Database::~Database() {
  sqlite3_close(m_db);
}

void Database::fail(const std::string& what, int code) const {
  Failure f{what, code, sqlite3_system_errno(m_db), sqlite3_errmsg(m_db), m_path.empty() ? ":memory:" : m_path};
  m_thrower(f);
  throw std::logic_error("sql::Thrower returned"); // never reached: a Thrower throws
}

void Database::exec(const std::string& sql) {
  char* error = nullptr;
  if (const int rc = sqlite3_exec(m_db, sql.c_str(), nullptr, nullptr, &error); rc != SQLITE_OK) {
    sqlite3_free(error);
    fail("'" + sql.substr(0, 40) + "'", rc);
  }
}

void Database::exec_when_free(const std::string& sql) {
  for (int attempt = 0;; ++attempt) {
    char* error = nullptr;
    const int rc = sqlite3_exec(m_db, sql.c_str(), nullptr, nullptr, &error);
    sqlite3_free(error);
    if (rc == SQLITE_OK) {
      return;
    }
    if ((rc & 0xff) != SQLITE_BUSY || attempt >= 100) {
      fail("'" + sql.substr(0, 40) + "'", rc);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

void Database::exec_quietly(const char* sql) noexcept {
  sqlite3_exec(m_db, sql, nullptr, nullptr, nullptr);
}

int Database::changes() const {
  return sqlite3_changes(m_db);
}

Statement::Statement(const Database& db, const std::string& sql) : m_db(db) {
  if (const int rc = sqlite3_prepare_v2(db.handle(), sql.c_str(), -1, &m_stmt, nullptr); rc != SQLITE_OK) {
    db.fail("prepare", rc);
  }
}

Statement::~Statement() {
  sqlite3_finalize(m_stmt);
}

Statement& Statement::bind(int i, const std::string& v) {
  sqlite3_bind_text(m_stmt, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  return *this;
}

Statement& Statement::bind(int i, std::int64_t v) {
  sqlite3_bind_int64(m_stmt, i, v);
  return *this;
}

Statement& Statement::bind(int i, std::optional<int> v) {
  if (v) {
    sqlite3_bind_int64(m_stmt, i, *v);
  } else {
    sqlite3_bind_null(m_stmt, i);
  }
  return *this;
}

bool Statement::step() {
  const int rc = sqlite3_step(m_stmt);
  if (rc == SQLITE_ROW) {
    return true;
  }
  if (rc != SQLITE_DONE) {
    m_db.fail("step", rc);
  }
  return false;
}

std::string Statement::text(int col) const {
  auto p = sqlite3_column_text(m_stmt, col);
  return p ? std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(sqlite3_column_bytes(m_stmt, col)))
           : std::string();
}

std::int64_t Statement::int64(int col) const {
  return sqlite3_column_int64(m_stmt, col);
}

std::optional<int> Statement::opt_int(int col) const {
  if (sqlite3_column_type(m_stmt, col) == SQLITE_NULL) {
    return std::nullopt;
  }
  return static_cast<int>(sqlite3_column_int64(m_stmt, col));
}

Transaction::Transaction(Database& db, bool wait) : m_db(db) {
  if (wait) {
    db.exec_when_free("BEGIN IMMEDIATE");
  } else {
    db.exec("BEGIN IMMEDIATE");
  }
}

Transaction::~Transaction() {
  if (!m_done) {
    m_db.exec_quietly("ROLLBACK");
  }
}

void Transaction::commit() {
  m_db.exec("COMMIT");
  m_done = true;
}

} // namespace smcp::sql
