// The SQLite wrapper both databases use (mcp-server/store's state database, sandbox/'s registry):
// a connection opened read-write with a busy timeout, statements with their bindings and columns,
// waiting out the locks SQLite does not wait for, and a transaction that rolls back unless
// committed. Each user turns a failure into its own error (a Thrower), so the wrapper knows nothing
// of either; sqlite3.h is included only by sqlite.cpp.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

struct sqlite3;
struct sqlite3_stmt;

namespace smcp::sql {

// One SQLite call that failed.
struct Failure {
  std::string what; // "open", "prepare", "step", or the start of the statement run
  int code = 0;     // SQLite's (extended) result code
  int system_errno = 0;
  std::string message; // SQLite's
  std::string path;    // the database file (":memory:" for none)
  bool disk_full() const;
  bool busy() const;
};
// Throws the user's error for a failure; it must throw (the wrapper never goes on after it).
using Thrower = std::function<void(const Failure&)>;

class Database {
public:
  // Opens `path` read-write (created when missing) for use from several threads, with SQLite
  // waiting up to `busy_timeout` for another connection's lock. Throws through `thrower`.
  Database(const std::string& path, std::chrono::milliseconds busy_timeout, Thrower thrower);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // Runs `sql` (one or more statements, no results).
  void exec(const std::string& sql);
  // The same, waiting (up to ~5 s) while another connection holds a lock SQLite does not wait
  // for: a journal mode change or BEGIN IMMEDIATE on a database another process opens too.
  void exec_when_free(const std::string& sql);
  // Best effort (ROLLBACK after a failure): errors are ignored.
  void exec_quietly(const char* sql) noexcept;
  // The rows the last INSERT, UPDATE or DELETE changed.
  int changes() const;
  const std::string& path() const { return m_path; }

  [[noreturn]] void fail(const std::string& what, int code) const;
  sqlite3* handle() const { return m_db; }

private:
  sqlite3* m_db = nullptr;
  std::string m_path;
  Thrower m_thrower;
};

class Statement {
public:
  Statement(const Database& db, const std::string& sql);
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& bind(int i, const std::string& v);
  Statement& bind(int i, const char* v) { return bind(i, std::string(v)); }
  Statement& bind(int i, std::int64_t v);
  Statement& bind(int i, int v) { return bind(i, std::int64_t{v}); }
  Statement& bind(int i, std::optional<int> v); // NULL when empty
  // Binds `args` to ?1, ?2, ... in order.
  template <typename... Args> Statement& bind_all(const Args&... args) {
    int i = 0;
    (bind(++i, args), ...);
    return *this;
  }
  // Returns true while a row is available.
  bool step();
  std::string text(int col) const; // "" for NULL
  std::int64_t int64(int col) const;
  int integer(int col) const { return static_cast<int>(int64(col)); }
  std::optional<int> opt_int(int col) const; // empty for NULL

private:
  const Database& m_db;
  sqlite3_stmt* m_stmt = nullptr;
};

// BEGIN IMMEDIATE (waiting as exec_when_free does, or not: `wait`); ROLLBACK when it goes out of
// scope without commit().
class Transaction {
public:
  explicit Transaction(Database& db, bool wait = true);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  void commit();

private:
  Database& m_db;
  bool m_done = false;
};

} // namespace smcp::sql
