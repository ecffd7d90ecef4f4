// helper.pl itself where hosts differ (issue 23), run here with perl as the server runs it: the run
// directory is $XDG_RUNTIME_DIR's first; a read-only or full home passes to /tmp with the reason of
// each refusal (errno included); a /tmp/sandbox-mcp-UID made first by someone else is not a denial
// of service; a helper in another pid namespace with the same home leaves this one's socket alone;
// a helper that cannot fork says so on the stream. The mounts are made in private mount
// namespaces (`unshare -m`) that end with the helper: nothing leaks.
#include "tests/support/helper_process.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace smcp::exec {
namespace {

namespace fs = std::filesystem;
using testing::LocalHelper;

// `sh -c SCRIPT HOME perl...`: the script sees the home as $0 and ends with `exec "$@"`.
std::vector<std::string> in_mount_namespace(const std::string& script, const std::string& home) {
  return {"unshare", "-m", "--propagation", "private", "sh", "-c", script + " && exec \"$@\"", home};
}

class HelperScriptFaults : public ::testing::Test {
protected:
  void SetUp() override {
    if (std::system("perl -e 1 >/dev/null 2>&1") != 0) {
      GTEST_SKIP() << "no perl";
    }
    if (::geteuid() != 0 || std::system("unshare -m true >/dev/null 2>&1") != 0) {
      GTEST_SKIP() << "needs root and mount namespaces";
    }
    char tmpl[] = "/tmp/smf-XXXXXX";
    base = ::mkdtemp(tmpl);
    ::chmod(base.c_str(), 0755);
    home = base + "/h";
    fs::create_directory(home);
    fs::permissions(home, fs::perms::owner_all, fs::perm_options::replace);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(base, ec);
  }
  std::string run_dir() const { return home + "/.local/state/sandbox-mcp/run"; }
  static bool ready(const LocalHelper& h) { return h.answer().rfind("ready ", 0) == 0; }
  static std::string dir_of(const LocalHelper& h) { return fs::path(h.socket()).parent_path(); }

  std::string base, home;
};

TEST_F(HelperScriptFaults, XdgRuntimeDirComesFirst) {
  const std::string xdg = base + "/run-user";
  fs::create_directory(xdg);
  ::chmod(xdg.c_str(), 0700);
  LocalHelper h(home, "skip", {}, {"XDG_RUNTIME_DIR=" + xdg});
  ASSERT_TRUE(ready(h)) << h.answer();
  EXPECT_EQ(dir_of(h), xdg + "/sandbox-mcp");
  EXPECT_FALSE(fs::exists(home + "/.local")) << "nothing made in the home";
  // An unusable one (not ours to write in) passes to the home's.
  LocalHelper h2(home, "skip", {}, {"XDG_RUNTIME_DIR=/proc"});
  ASSERT_TRUE(ready(h2)) << h2.answer();
  EXPECT_EQ(dir_of(h2), run_dir());
}

TEST_F(HelperScriptFaults, AReadOnlyHomeFallsBackToTmp) {
  for (bool made_before : {false, true}) {
    if (made_before) {
      fs::create_directories(run_dir());
      ::chmod(run_dir().c_str(), 0700);
    }
    LocalHelper h(home, "snapshot",
                  in_mount_namespace("mount --bind \"$0\" \"$0\" && mount -o remount,ro,bind \"$0\"", home));
    ASSERT_TRUE(ready(h)) << made_before << ": " << h.answer();
    EXPECT_EQ(dir_of(h).rfind("/tmp/sandbox-mcp-0", 0), 0u) << h.socket();
  }
}

TEST_F(HelperScriptFaults, AFullHomeFallsBackToTmpAndEveryRefusalSaysWhy) {
  const std::string fill =
      "mount -t tmpfs -o size=256k,mode=0700 tmpfs \"$0\" && mkdir -p \"$0/.local/state/sandbox-mcp/run\" && "
      "chmod -R 0700 \"$0/.local\" && { head -c 1M /dev/zero > \"$0/fill\" 2>/dev/null; true; }";
  LocalHelper h(home, "snapshot", in_mount_namespace(fill, home));
  ASSERT_TRUE(ready(h)) << h.answer();
  EXPECT_EQ(dir_of(h).rfind("/tmp/sandbox-mcp-0", 0), 0u) << h.socket();
  // And with /tmp read-only as well: no run directory, and each reason with its errno (not "does
  // a startup file call exit?").
  LocalHelper none(home, "snapshot",
                   in_mount_namespace("mount --bind /tmp /tmp && mount -o remount,ro,bind /tmp && " + fill, home));
  EXPECT_NE(none.answer().find("failed no run directory for the helper: "), std::string::npos) << none.answer();
  EXPECT_NE(none.answer().find(run_dir() + ": No space left on device"), std::string::npos) << none.answer();
  EXPECT_NE(none.answer().find("Read-only file system"), std::string::npos) << none.answer();
  EXPECT_EQ(none.answer().find("startup file"), std::string::npos) << none.answer();
}

TEST_F(HelperScriptFaults, ATmpDirectoryMadeFirstBySomeoneElseIsNotADenialOfService) {
  // A /tmp of its own, where another user made /tmp/sandbox-mcp-0 (and a -RANDOM one) first, and
  // no home: the helper makes a fresh directory of its own.
  const std::string pre_empt = "mount -t tmpfs -o mode=1777 tmpfs /tmp && mkdir -m 0777 /tmp/sandbox-mcp-0 && "
                               "chown 65534 /tmp/sandbox-mcp-0 && mkdir -m 0700 /tmp/sandbox-mcp-0-0badf00d && "
                               "chown 65534 /tmp/sandbox-mcp-0-0badf00d";
  LocalHelper h("", "snapshot", in_mount_namespace(pre_empt, ""));
  ASSERT_TRUE(ready(h)) << h.answer();
  const std::string dir = dir_of(h);
  EXPECT_EQ(dir.rfind("/tmp/sandbox-mcp-0-", 0), 0u) << dir;
  EXPECT_NE(dir, "/tmp/sandbox-mcp-0-0badf00d");
  // A link in its place: the same.
  LocalHelper l("", "skip",
                in_mount_namespace("mount -t tmpfs -o mode=1777 tmpfs /tmp && ln -s / /tmp/sandbox-mcp-0", ""));
  ASSERT_TRUE(ready(l)) << l.answer();
  EXPECT_EQ(dir_of(l).rfind("/tmp/sandbox-mcp-0-", 0), 0u) << l.socket();
}

TEST_F(HelperScriptFaults, AHelperInAnotherPidNamespaceWithTheSameHomeLeavesThisOnesSocket) {
  LocalHelper here(home);
  ASSERT_TRUE(ready(here)) << here.answer();
  // Another host sharing the home over NFS, or a container: our pids mean nothing there.
  LocalHelper there(home, "skip", {"unshare", "--pid", "--fork", "--mount-proc"});
  ASSERT_TRUE(ready(there)) << there.answer();
  EXPECT_NE(there.host(), here.host());
  EXPECT_TRUE(fs::exists(here.socket())) << "the other namespace's helper removed this one's socket";
  EXPECT_EQ(testing::helper_request(here.socket(), here.token(), "echo here"),
            (std::vector<std::string>{"h", "a", "o:here\n", "x:exit 0"}));
  // And the other way round: a new helper here leaves the other namespace's socket (its pid, 1
  // there, is some process here too, but its name is not this host's).
  there.stop();
  LocalHelper other(home, "skip", {"unshare", "--pid", "--fork", "--mount-proc"});
  LocalHelper again(home);
  ASSERT_TRUE(ready(again)) << again.answer();
  EXPECT_TRUE(fs::exists(other.socket()));
  EXPECT_TRUE(fs::exists(here.socket()));
}

// One request as uid 65534 (the helper serves only its own uid).
std::vector<std::string> request_as_nobody(const std::string& socket, const std::string& token,
                                           const std::string& exec) {
  int p[2];
  if (::pipe(p) != 0) {
    return {"pipe"};
  }
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(p[0]);
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) {
      ::_exit(1);
    }
    std::string all;
    for (const auto& f : testing::helper_request(socket, token, exec)) {
      all += f + '\x01';
    }
    (void)!::write(p[1], all.data(), all.size());
    ::_exit(0);
  }
  ::close(p[1]);
  std::string all;
  char buf[4096];
  ssize_t r;
  while ((r = ::read(p[0], buf, sizeof buf)) > 0) {
    all.append(buf, static_cast<std::size_t>(r));
  }
  ::close(p[0]);
  int st = 0;
  ::waitpid(pid, &st, 0);
  std::vector<std::string> frames;
  for (std::size_t at = 0, end; (end = all.find('\x01', at)) != std::string::npos; at = end + 1) {
    frames.push_back(all.substr(at, end - at));
  }
  return frames;
}

TEST_F(HelperScriptFaults, AHelperThatCannotForkSaysSoOnTheStream) {
  if (std::system("setpriv --help >/dev/null 2>&1") != 0 || std::system("prlimit --help >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "no setpriv or prlimit";
  }
  // uid 65534, whose process limit is enforced (root's is not), allowed one process: the helper.
  ASSERT_EQ(::chown(home.c_str(), 65534, 65534), 0);
  LocalHelper h(home, "skip",
                {"prlimit", "--nproc=1:1", "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"});
  ASSERT_TRUE(ready(h)) << h.answer();
  for (int i = 0; i < 2; ++i) { // and it keeps listening
    EXPECT_EQ(request_as_nobody(h.socket(), h.token(), "echo hi"),
              std::vector<std::string>{"r:fork: Resource temporarily unavailable"});
  }
  EXPECT_EQ(::kill(h.pid(), 0), 0) << "the helper exited";
}

} // namespace
} // namespace smcp::exec
