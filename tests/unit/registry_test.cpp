// The sandbox registry (sandbox/registry.cpp): names, the original manager's table read and extended,
// rows acted on by their id only, the journal on network filesystems.
#include "mcp-server/base/sqlite/sqlite.h"
#include "sandbox/registry.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <stdexcept>
#include <unistd.h>

namespace smcp::sandbox {
namespace {

TEST(SandboxNames, RejectPathsShellAndGitTrouble) {
  for (const char* bad : {"", "../x", "a/b", "-rf", "a b", "a;rm", "$(x)", "a..b", "x.lock", "x.", ".x",
                          "0123456789012345678901234567890123456789012345678901234567890123"}) {
    EXPECT_THROW(check_name(bad), SandboxError) << bad;
  }
  EXPECT_THROW(check_name(std::string("a\0b", 3)), SandboxError);
  for (const char* good : {"exp1", "cnt_3", "a.b-c_d", "X"}) {
    EXPECT_NO_THROW(check_name(good)) << good;
  }
  // sandbox/ and sandbox-rescue/ are where sandboxes' work arrives: a branch there would shadow it.
  for (const char* bad :
       {"-b", "a b", "a..b", "a~1", "x.lock", "/a", "a/", "a:b", "a\\b", "sandbox/v1/main", "sandbox-rescue/x"}) {
    EXPECT_THROW(check_branch(bad), SandboxError) << bad;
  }
  EXPECT_NO_THROW(check_branch("feature/x-1"));
}

TEST(SandboxRegistryTest, AddsOurColumnsToTheOriginalTable) {
  char tmpl[] = "/tmp/smcp-reg-XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  const std::string path = dir + "/.sandbox_db.sqlite";
  {
    sql::Database db(path, std::chrono::seconds(1), [](const sql::Failure& f) { throw std::runtime_error(f.message); });
    db.exec("CREATE TABLE sandboxes (name TEXT PRIMARY KEY, branch TEXT, container_id TEXT, slurm_job_id "
            "TEXT, work_dir TEXT, ccr_mode INTEGER DEFAULT 0, created_at TEXT, updated_at TEXT);"
            "INSERT INTO sandboxes VALUES ('old', 'main', 'abc', NULL, '/w', 1, '2025-01-01 00:00:00', "
            "'2025-01-01 00:00:00');");
  }
  auto reg = SandboxRegistry::open(path);
  auto old = reg->get("old");
  ASSERT_TRUE(old);
  EXPECT_EQ(old->host, "local");
  EXPECT_EQ(old->phase, Phase::ready);
  EXPECT_TRUE(old->ccr_mode);
  SandboxRow row;
  row.name = "new1";
  row.host = "gpu1";
  reg->reserve(row);
  EXPECT_EQ(reg->get("new1")->phase, Phase::creating);
  EXPECT_EQ(reg->list().size(), 2u);
  std::filesystem::remove_all(dir);
}

TEST(SandboxRegistryIdTest, RemovingARowNeverRemovesALaterOneOfTheSameName) {
  char tmpl[] = "/tmp/smcp-regid-XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  auto reg = SandboxRegistry::open(dir + "/r.sqlite");
  SandboxRow row;
  row.name = "x";
  SandboxRow first = reg->reserve(row);
  EXPECT_EQ(first.uid.size(), 32u);
  reg->remove(first);
  SandboxRow second = reg->reserve(row); // rm + new by the same name while the first `new` unwinds
  EXPECT_NE(first.uid, second.uid);
  reg->remove(first); // the first new's undo
  EXPECT_TRUE(reg->get("x"));
  first.phase = Phase::ready;
  EXPECT_THROW(reg->update(first), SandboxError);
  EXPECT_EQ(reg->get("x")->uid, second.uid);
  std::filesystem::remove_all(dir);
}

TEST(SandboxRegistryIdTest, NetworkFilesystemsGetTheRollbackJournal) {
  EXPECT_TRUE(is_network_filesystem(0x6969));      // NFS
  EXPECT_TRUE(is_network_filesystem(0x0BD00BD0));  // Lustre
  EXPECT_TRUE(is_network_filesystem(0x47504653));  // GPFS
  EXPECT_FALSE(is_network_filesystem(0xEF53));     // ext4
  EXPECT_FALSE(is_network_filesystem(0x01021994)); // tmpfs
  EXPECT_STREQ(journal_mode_for("/tmp/x.sqlite"), "WAL");
}

} // namespace
} // namespace smcp::sandbox
