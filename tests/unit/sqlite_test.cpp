// base/sqlite: statements, bindings, columns, the transaction that rolls back unless committed, and
// failures handed to the user's Thrower.
#include "mcp-server/base/sqlite/sqlite.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <stdexcept>
#include <unistd.h>

namespace smcp::sql {
namespace {

struct Thrown : std::runtime_error {
  explicit Thrown(const Failure& f) : std::runtime_error(f.what + ": " + f.message), failure(f) {}
  Failure failure;
};

class SqliteTest : public ::testing::Test {
protected:
  void SetUp() override {
    char tmpl[] = "/tmp/smcp-sqlite-unit-XXXXXX";
    dir = ::mkdtemp(tmpl);
    db = std::make_unique<Database>(dir + "/t.db", std::chrono::seconds(1), [](const Failure& f) { throw Thrown(f); });
    db->exec("CREATE TABLE t (k TEXT PRIMARY KEY, n INTEGER, o INTEGER)");
  }
  void TearDown() override {
    db.reset();
    std::filesystem::remove_all(dir);
  }
  int count() {
    Statement s(*db, "SELECT COUNT(*) FROM t");
    s.step();
    return s.integer(0);
  }
  std::string dir;
  std::unique_ptr<Database> db;
};

TEST_F(SqliteTest, BindsAndReadsColumns) {
  Statement(*db, "INSERT INTO t VALUES (?, ?, ?)")
      .bind_all(std::string("a"), std::int64_t{7}, std::optional<int>{})
      .step();
  Statement s(*db, "SELECT k, n, o FROM t WHERE k = ?");
  ASSERT_TRUE(s.bind(1, "a").step());
  EXPECT_EQ(s.text(0), "a");
  EXPECT_EQ(s.int64(1), 7);
  EXPECT_FALSE(s.opt_int(2));
  EXPECT_FALSE(s.step());
  Statement(*db, "UPDATE t SET n = 8").step();
  EXPECT_EQ(db->changes(), 1);
}

TEST_F(SqliteTest, ATransactionRollsBackUnlessCommitted) {
  {
    Transaction t(*db);
    Statement(*db, "INSERT INTO t (k) VALUES ('x')").step();
  }
  EXPECT_EQ(count(), 0);
  {
    Transaction t(*db);
    Statement(*db, "INSERT INTO t (k) VALUES ('y')").step();
    t.commit();
  }
  EXPECT_EQ(count(), 1);
}

TEST_F(SqliteTest, FailuresGoThroughTheThrower) {
  try {
    Statement(*db, "SELECT nothing FROM nowhere");
    FAIL();
  } catch (const Thrown& e) {
    EXPECT_EQ(e.failure.what, "prepare");
    EXPECT_EQ(e.failure.path, dir + "/t.db");
    EXPECT_FALSE(e.failure.disk_full());
  }
  Statement(*db, "INSERT INTO t (k) VALUES ('z')").step();
  EXPECT_THROW(Statement(*db, "INSERT INTO t (k) VALUES ('z')").step(), Thrown); // the primary key
  EXPECT_THROW(Database("/nonexistent-dir/x.db", std::chrono::seconds(1), [](const Failure& f) { throw Thrown(f); }),
               Thrown);
}

} // namespace
} // namespace smcp::sql
