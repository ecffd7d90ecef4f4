// The state directory through the real `sandbox-mcp serve`: it is resolved once at start, so
// re-pointing a symbolic link on its path afterwards moves no job or spill file; and a path that
// someone else could redirect (a link or directory of another user, a link in a directory others
// can write without the sticky bit) is refused with a message saying why.
#include "tests/support/stdio_client.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace smcp {
namespace {

namespace fs = std::filesystem;
using bench::StdioClient;
using nlohmann::json;

constexpr uid_t k_nobody = 65534;

class StateDirTest : public ::testing::Test {
protected:
  void SetUp() override {
    char tmpl[] = "/tmp/smcp-statedir.XXXXXX";
    base = ::mkdtemp(tmpl);
    base = fs::canonical(base).string();
    fs::create_directory(base + "/a");
    fs::create_directory(base + "/b");
    fs::permissions(base + "/a", fs::perms::owner_all);
    fs::permissions(base + "/b", fs::perms::owner_all);
  }
  void TearDown() override { fs::remove_all(base); }

  // Runs `serve --state-dir DIR` with no input: 0 when it served (and left at end of input),
  // otherwise its exit code; `log` gets its stderr.
  static int serve_once(const std::string& dir, std::string& log) {
    std::string cmd = std::string(SMCP_BINARY) + " serve --state-dir '" + dir + "' < /dev/null 2>&1";
    FILE* p = ::popen(cmd.c_str(), "r");
    if (!p) {
      return -1;
    }
    char buf[512];
    while (std::fgets(buf, sizeof buf, p)) {
      log += buf;
    }
    int status = ::pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
  }

  std::string base;
};

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.rfind(prefix, 0) == 0;
}

TEST_F(StateDirTest, RepointingTheLinkAfterStartMovesNoFile) {
  const std::string link = base + "/state";
  fs::create_directory_symlink(base + "/a", link);
  StdioClient client(SMCP_BINARY, {"serve", "--state-dir", link, "--log-level", "warn"});
  // Someone re-points the link once the server runs.
  fs::remove(link);
  fs::create_directory_symlink(base + "/b", link);

  json job = client.call("remote_bash", {{"command", "echo durable"}, {"run_in_background", true}});
  json big = client.call("remote_bash", {{"command", "head -c 100000 /dev/zero | tr '\\0' x"}});
  ASSERT_EQ(big["truncated"], true);
  json listed = client.call("remote_bash_list", json::object());
  ASSERT_EQ(listed["jobs"].size(), 2u) << listed.dump();
  for (const auto& j : listed["jobs"]) {
    const std::string file = j["output_file"];
    EXPECT_TRUE(starts_with(file, base + "/a/")) << file << " is not in the directory the server started with";
  }
  EXPECT_TRUE(starts_with(big["full_output"].get<std::string>(), base + "/a/spill/")) << big.dump();
  EXPECT_TRUE(fs::is_empty(base + "/b")) << "files landed in the directory the link points to now";
}

TEST_F(StateDirTest, ALinkInADirectoryOthersCanWriteIsRefused) {
  fs::create_directory(base + "/shared");
  fs::permissions(base + "/shared", fs::perms::all); // 0777 without the sticky bit
  fs::create_directory_symlink(base + "/a", base + "/shared/state");
  std::string log;
  EXPECT_NE(serve_once(base + "/shared/state", log), 0) << log;
  EXPECT_NE(log.find("can be written by other users"), std::string::npos) << log;
  EXPECT_TRUE(fs::is_empty(base + "/a")) << "nothing may be created through the link";
}

TEST_F(StateDirTest, OwnLinkInAStickyDirectoryIsFollowedOnceAndUsed) {
  fs::create_directory(base + "/tmp");
  fs::permissions(base + "/tmp", fs::perms::all | fs::perms::sticky_bit); // like /tmp
  fs::create_directory_symlink(base + "/a", base + "/tmp/state");
  std::string log;
  EXPECT_EQ(serve_once(base + "/tmp/state", log), 0) << log;
  EXPECT_TRUE(fs::exists(base + "/a/state.db")) << log;
}

TEST_F(StateDirTest, LinksAndDirectoriesOfAnotherUserAreRefused) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "needs root to give files to another user";
  }
  // A link owned by nobody, in a directory of ours.
  fs::create_directory_symlink(base + "/a", base + "/state");
  ASSERT_EQ(::lchown((base + "/state").c_str(), k_nobody, k_nobody), 0);
  std::string log;
  EXPECT_NE(serve_once(base + "/state", log), 0) << log;
  EXPECT_NE(log.find(base + "/state is a symbolic link owned by another user (uid 65534)"), std::string::npos) << log;
  EXPECT_TRUE(fs::is_empty(base + "/a"));

  // The same in a sticky directory: nobody may replace their own link there.
  fs::create_directory(base + "/tmp");
  fs::permissions(base + "/tmp", fs::perms::all | fs::perms::sticky_bit);
  fs::create_directory_symlink(base + "/a", base + "/tmp/state");
  ASSERT_EQ(::lchown((base + "/tmp/state").c_str(), k_nobody, k_nobody), 0);
  log.clear();
  EXPECT_NE(serve_once(base + "/tmp/state", log), 0) << log;
  EXPECT_NE(log.find("/tmp/state is a symbolic link owned by another user (uid 65534)"), std::string::npos) << log;

  // Our directory inside a directory of nobody's: they could rename it and put theirs there.
  fs::create_directories(base + "/theirs/state");
  fs::permissions(base + "/theirs/state", fs::perms::owner_all);
  ASSERT_EQ(::chown((base + "/theirs").c_str(), k_nobody, k_nobody), 0);
  log.clear();
  EXPECT_NE(serve_once(base + "/theirs/state", log), 0) << log;
  EXPECT_NE(log.find(base + "/theirs belongs to another user"), std::string::npos) << log;
  EXPECT_TRUE(fs::is_empty(base + "/theirs/state"));
}

} // namespace
} // namespace smcp
