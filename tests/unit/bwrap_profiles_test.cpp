// bubblewrap profiles as pure pieces (sandbox/bwrap, tools/profile_runner): which profile is at
// least as strict as another, the ceiling a call cannot weaken, the launcher's argv (the order of
// its mounts, no value on it), the environment's encoding, the probe's answer, and the launcher's
// fixed program itself, run by /bin/sh with a stand-in for prlimit and bwrap that prints what bwrap
// would read from --args.
#include "mcp-server/core/tool.h"
#include "sandbox/bwrap/launcher_program.h"
#include "sandbox/bwrap/profiles.h"
#include "sandbox/exec/remote_scripts.h"
#include "sandbox/exec/run_process.h"
#include "tools/profile_runner.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <sys/mount.h>
#include <thread>
#include <unistd.h>

namespace smcp {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using sandbox::at_least_as_strict;
using sandbox::Profile;

std::ptrdiff_t index_of(const std::vector<std::string>& a, const std::string& word) {
  auto it = std::find(a.begin(), a.end(), word);
  return it == a.end() ? -1 : it - a.begin();
}

TEST(BwrapProfiles, BuiltInsAreOrderedAndEditsAreJudgedBySetting) {
  const Profile r = sandbox::restrictive_profile(), s = sandbox::standard_profile(), p = sandbox::permissive_profile();
  EXPECT_TRUE(at_least_as_strict(r, s));
  EXPECT_TRUE(at_least_as_strict(s, p));
  EXPECT_TRUE(at_least_as_strict(r, p));
  EXPECT_TRUE(at_least_as_strict(s, s));
  EXPECT_FALSE(at_least_as_strict(p, s));
  EXPECT_FALSE(at_least_as_strict(s, r));
  EXPECT_FALSE(at_least_as_strict(p, r));
  // Each setting on its own makes a profile weaker.
  auto weaker = [&](auto change) {
    Profile x = r;
    change(x);
    return !at_least_as_strict(x, r);
  };
  EXPECT_TRUE(weaker([](Profile& x) { x.network = true; }));
  EXPECT_TRUE(weaker([](Profile& x) { x.memory_mb = 0; }));
  EXPECT_TRUE(weaker([](Profile& x) { x.cpu_seconds = 61; }));
  EXPECT_TRUE(weaker([](Profile& x) { x.file_size_mb = 0; }));
  EXPECT_TRUE(weaker([](Profile& x) { x.open_files = 129; }));
  EXPECT_TRUE(weaker([](Profile& x) { x.clear_env = false; }));
  EXPECT_TRUE(weaker([](Profile& x) { x.full_etc_var = true; }));
  EXPECT_TRUE(weaker([](Profile& x) { x.cwd_writable = true; }));
  EXPECT_TRUE(weaker([](Profile& x) { x.ro_mounts = {"/srv"}; }));
  EXPECT_TRUE(weaker([](Profile& x) { x.gpu = true; }));
  EXPECT_TRUE(weaker([](Profile& x) { x.unix_sockets = true; }));
  Profile tighter = r;
  tighter.memory_mb = 256;
  EXPECT_TRUE(at_least_as_strict(tighter, r));
  // GPUs: a subset of the ceiling's devices, from the same directory.
  Profile g02 = s, g0 = s, gall = s;
  g02.gpu = g0.gpu = gall.gpu = true;
  g02.gpus = "0,2";
  g0.gpus = "0,";
  EXPECT_TRUE(at_least_as_strict(g0, g02));
  EXPECT_FALSE(at_least_as_strict(g02, g0));
  EXPECT_TRUE(at_least_as_strict(g02, gall));
  EXPECT_FALSE(at_least_as_strict(gall, g02));
}

sandbox::ProfileSettings settings_with_ceiling(const std::string& ceiling) {
  sandbox::ProfileSettings s = sandbox::default_profile_settings();
  s.default_profile = ceiling;
  Profile ci = sandbox::standard_profile();
  ci.name = "ci";
  s.profiles["ci"] = ci;
  Profile tight = sandbox::restrictive_profile();
  tight.name = "tight";
  tight.cpu_seconds = 10;
  s.profiles["tight"] = tight;
  return s;
}

TEST(BwrapProfiles, TheConfiguredProfileIsACeiling) {
  tools::ProfileRunner none(settings_with_ceiling(""));
  EXPECT_EQ(none.resolve("", "local"), nullptr);
  EXPECT_EQ(none.resolve("permissive", "local")->name, "permissive");

  tools::ProfileRunner r(settings_with_ceiling("restrictive"));
  EXPECT_EQ(r.resolve("", "local")->name, "restrictive");
  EXPECT_EQ(r.resolve("restrictive", "local")->name, "restrictive");
  EXPECT_EQ(r.resolve("tight", "local")->name, "tight");
  for (const char* weaker : {"standard", "permissive", "ci"}) {
    try {
      r.resolve(weaker, "local");
      ADD_FAILURE() << weaker << " was allowed";
    } catch (const mcp::ToolError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("'restrictive'"), std::string::npos) << what;
      EXPECT_NE(what.find("allowed_profiles"), std::string::npos) << what;
      EXPECT_NE(what.find("SANDBOX_DEFAULT_PROFILE"), std::string::npos) << what;
    }
  }
  EXPECT_THROW(r.resolve("no-such", "local"), mcp::InvalidArgument);

  // allowed_profiles, and a host's own ceiling and list.
  sandbox::ProfileSettings s = settings_with_ceiling("restrictive");
  s.allowed = {"ci"};
  s.host_default["gpu1"] = "standard";
  s.host_allowed["gpu1"] = {"permissive"};
  tools::ProfileRunner a(s);
  EXPECT_EQ(a.resolve("ci", "local")->name, "ci");
  EXPECT_THROW(a.resolve("permissive", "local"), mcp::ToolError);
  EXPECT_EQ(a.resolve("", "gpu1")->name, "standard");
  EXPECT_EQ(a.resolve("permissive", "gpu1")->name, "permissive");
  EXPECT_EQ(a.resolve("restrictive", "gpu1")->name, "restrictive");
  EXPECT_EQ(a.resolve("ci", "gpu1")->name, "ci") << "a copy of standard is as strict on every setting";
  s.host_default["gpu2"] = "tight";
  tools::ProfileRunner b(s);
  try {
    b.resolve("restrictive", "gpu2"); // looser than tight's 10 s of CPU time
    ADD_FAILURE() << "restrictive was allowed under tight";
  } catch (const mcp::ToolError& e) {
    EXPECT_NE(std::string(e.what()).find("hosts[].profile for gpu2"), std::string::npos) << e.what();
  }
}

TEST(BwrapProfiles, TheLauncherCarriesNoValueAndMountsInOrder) {
  Profile p = sandbox::restrictive_profile();
  sandbox::HostSupport host;
  host.fd_binds = true;
  host.setpriv = "/usr/bin/setpriv";
  auto a = sandbox::profile_launcher(p, "bwrap", "/tmp/w/exec-1", true, host, {"/state/jobs"});
  EXPECT_EQ(a[0], "/usr/bin/setpriv");
  EXPECT_EQ(a[4], "/bin/sh");
  EXPECT_EQ(a[6], sandbox::k_launcher_program);
  EXPECT_EQ(std::vector<std::string>(a.begin() + 8, a.begin() + 14),
            (std::vector<std::string>{"/tmp/w", "/tmp/w/exec-1", "ro",
                                      sandbox::octal_escape(sandbox::unix_socket_filter()), "/state/jobs", "--"}));
  EXPECT_EQ(a[index_of(a, "--seccomp") + 1], "5") << "every built-in keeps the command off Unix sockets";
  EXPECT_LT(index_of(a, "--seccomp"), index_of(a, "--die-with-parent"));
  EXPECT_EQ(index_of(a, "--setenv") < index_of(a, "--args"), true) << "the fixed variables, then the call's";
  EXPECT_LT(index_of(a, "--tmpfs"), index_of(a, "--args"));
  EXPECT_LT(index_of(a, "/work"), index_of(a, "--args"));
  EXPECT_LT(index_of(a, "--args"), index_of(a, "--proc"));
  EXPECT_LT(index_of(a, "--args"), index_of(a, "--dev"));
  EXPECT_NE(index_of(a, "--unshare-pid"), -1);
  EXPECT_EQ(a.back(), "--");
  // In a container that masks /proc: its /proc read-only, no new PID namespace, an own user one.
  host.bind_proc = true;
  a = sandbox::profile_launcher(p, "bwrap", "/tmp/w/exec-1", false, host);
  EXPECT_EQ(index_of(a, "--proc"), -1);
  EXPECT_EQ(index_of(a, "--unshare-pid"), -1);
  EXPECT_NE(index_of(a, "--unshare-user"), -1);
  EXPECT_EQ(a[index_of(a, "/proc") - 1], "--ro-bind");
  EXPECT_EQ(a[10], "none");
  // A profile that keeps Unix sockets has no filter at all.
  p.unix_sockets = true;
  a = sandbox::profile_launcher(p, "bwrap", "/tmp/w/exec-1", false, host);
  EXPECT_EQ(a[11], "-");
  EXPECT_EQ(index_of(a, "--seccomp"), -1);
}

TEST(BwrapProfiles, TheEnvironmentIsEncodedForTheLauncherOnly) {
  EXPECT_EQ(sandbox::encode_env({{"A", "x y"}, {"B_2", ""}, {"C", "a\\c%\n"}}),
            "A=x\\0040y B_2= C=a\\0134c\\0045\\0012");
  EXPECT_EQ(sandbox::encode_env({{"P", "/usr/bin:/bin,a+b@c-d_e.f"}}), "P=/usr/bin:/bin,a+b@c-d_e.f");
  EXPECT_THROW(sandbox::encode_env({{"A-B", "x"}}), std::invalid_argument);
  EXPECT_THROW(sandbox::encode_env({{"1A", "x"}}), std::invalid_argument);
  EXPECT_THROW(sandbox::encode_env({{"", "x"}}), std::invalid_argument);
  EXPECT_THROW(sandbox::encode_env({{"A", std::string("a\0b", 3)}}), std::invalid_argument);
}

TEST(BwrapProfiles, TheProbeAnswerAndTheAdviceNeverToUnmaskProc) {
  auto h = sandbox::parse_probe("proc=bind fd=1 setpriv=/usr/bin/setpriv\n");
  EXPECT_TRUE(h.bind_proc);
  EXPECT_TRUE(h.fd_binds);
  EXPECT_EQ(h.setpriv, "/usr/bin/setpriv");
  EXPECT_FALSE(h.seccomp) << "an old answer without seccomp=1";
  h = sandbox::parse_probe("proc=new fd=0 setpriv= seccomp=1 arch=aarch64\n");
  EXPECT_FALSE(h.bind_proc);
  EXPECT_FALSE(h.fd_binds);
  EXPECT_EQ(h.setpriv, "");
  EXPECT_TRUE(h.seccomp);
  EXPECT_EQ(h.arch, "aarch64");
  h = sandbox::parse_probe("proc=new fd=1 setpriv= seccomp=0 arch=riscv64\n");
  h.seccomp_error = "seccomp: bwrap: Unknown option --seccomp\n";
  const std::string no_filter = sandbox::seccomp_problem(h, "h");
  EXPECT_NE(no_filter.find("riscv64"), std::string::npos) << no_filter;
  EXPECT_NE(no_filter.find("Unknown option --seccomp"), std::string::npos) << no_filter;
  EXPECT_NE(no_filter.find("is not run"), std::string::npos) << no_filter;
  const std::string advice =
      sandbox::bwrap_problem(1, "bwrap: Can't mount proc on /newroot/proc: Operation not permitted", "h");
  EXPECT_NE(advice.find("Do not unmask /proc"), std::string::npos) << advice;
  EXPECT_EQ(advice.find("needs `--security-opt"), std::string::npos) << advice;
  EXPECT_NE(sandbox::bwrap_problem(126, "", "h").find("prlimit"), std::string::npos);
}

// The launcher's program, run by /bin/sh: prlimit and bwrap are stand-ins that print what bwrap
// would read from --args 8 and whether the launcher's variable reached them.
class LauncherProgram : public ::testing::Test {
protected:
  void SetUp() override {
    char tmpl[] = "/tmp/smcp-launcher-XXXXXX";
    dir = ::mkdtemp(tmpl);
    home = dir + "/home";
    fs::create_directories(home + "/.ssh");
    fs::create_directories(home + "/proj");
    fs::create_directories(dir + "/bin");
    std::ofstream(dir + "/bin/fakebwrap") << "#!/bin/sh\n"
                                          << "echo \"env:${SMCP_PROFILE_ENV-unset}\"\n"
                                          << "tr '\\0' '|' <&8; echo\n";
    fs::permissions(dir + "/bin/fakebwrap", fs::perms::owner_all);
  }
  void TearDown() override { fs::remove_all(dir); }

  // Runs the launcher in `cwd` (empty: none) with `encoded` as the call's environment.
  exec::ProcessResult launch(const std::string& cwd, const std::string& encoded, const std::string& shell = "/bin/sh") {
    std::vector<std::string> argv = {"env", "-i", "PATH=/usr/bin:/bin", "HOME=" + home};
    if (!encoded.empty()) {
      argv.push_back(std::string(sandbox::k_env_variable) + "=" + encoded);
    }
    argv.insert(argv.end(), {shell, "-c", "cd \"$1\" && shift && exec \"$@\"", "sh", cwd.empty() ? "/" : cwd, shell,
                             "-c", sandbox::k_launcher_program, "sh", dir + "/work", dir + "/work/exec-1",
                             cwd.empty() ? "none" : "ro", "-", dir + "/state", "--", dir + "/bin/fakebwrap"});
    return exec::run_process(argv, 30s);
  }

  std::string dir, home;
};

TEST_F(LauncherProgram, HandsTheCwdAndEnvironmentToBwrapThroughAFileAndCleansUp) {
  for (const char* shell : {"/bin/sh", "/bin/bash", "/bin/dash"}) {
    if (!fs::exists(shell)) {
      continue;
    }
    auto r = launch(home + "/proj", sandbox::encode_env({{"SECRET", "v-123 $(x) `y` \\c %s\n'\"é"}, {"E", ""}}), shell);
    EXPECT_EQ(r.status, 0) << shell << r.err;
    EXPECT_EQ(r.out, "env:unset\n--ro-bind-fd|7|" + home + "/proj|--chdir|" + home +
                         "/proj|--setenv|SECRET|v-123 $(x) `y` \\c %s\n'\"é|--setenv|E||\n")
        << shell;
    EXPECT_FALSE(fs::exists(dir + "/work/exec-1")) << "deleted when the command ended";
    EXPECT_EQ(fs::status(dir + "/work").permissions() & fs::perms::all, fs::perms::owner_all);
    r = launch("", "");
    EXPECT_EQ(r.out, "env:unset\n--chdir|/work|\n") << shell << r.err;
  }
  // A name the launcher would not take (a host must never hand one over, but it checks).
  auto r = launch("", "A-B=x");
  EXPECT_EQ(r.status, 125);
  EXPECT_NE(r.err.find("not [A-Za-z_]"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir + "/work/exec-1"));
}

TEST_F(LauncherProgram, RefusesCwdsThatShowTheSystemTheHomeOrSecrets) {
  fs::create_directories(dir + "/state/jobs");
  fs::create_directory_symlink(home + "/.ssh", dir + "/keys");
  fs::create_directories(home + "/.config/gh");
  for (const std::string& cwd : {std::string("/"), std::string("/proc"), std::string("/sys/kernel"),
                                 std::string("/etc"), std::string("/usr"), std::string("/tmp"), home, home + "/.ssh",
                                 dir + "/keys", home + "/.config/gh", dir, dir + "/state", dir + "/state/jobs"}) {
    auto r = launch(cwd, "");
    EXPECT_EQ(r.status, 125) << cwd << ": " << r.out;
    EXPECT_EQ(r.err.rfind(sandbox::k_refused_prefix, 0), 0u) << cwd << ": " << r.err;
    EXPECT_EQ(r.out, "") << cwd;
  }
  EXPECT_FALSE(fs::exists(dir + "/work")) << "nothing made for a refused cwd";
  EXPECT_EQ(launch(home + "/proj", "").status, 0);
}

// bwrap binds a cwd with what is mounted under it: a bind mount of the home or of /etc below a
// harmless-looking directory (a name with a space too) is refused like the home or /etc itself.
TEST_F(LauncherProgram, RefusesACwdWithTheHomeOrTheSystemMountedUnderIt) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "bind mounts need root";
  }
  struct Mount {
    std::string at;
    bool ok;
    Mount(const std::string& from, const std::string& to) : at(to) {
      fs::create_directories(to);
      ok = ::mount(from.c_str(), to.c_str(), nullptr, MS_BIND, nullptr) == 0;
    }
    ~Mount() {
      if (ok) {
        ::umount2(at.c_str(), MNT_DETACH);
      }
    }
  };
  Mount h(home, dir + "/alias/h");
  Mount e("/etc", dir + "/a b/etc");
  if (!h.ok || !e.ok) {
    GTEST_SKIP() << "cannot bind-mount here";
  }
  auto r = launch(dir + "/alias", "");
  EXPECT_EQ(r.status, 125) << r.out;
  EXPECT_NE(r.err.find("holds the home directory"), std::string::npos) << r.err;
  r = launch(dir + "/a b", "");
  EXPECT_EQ(r.status, 125) << r.out;
  EXPECT_NE(r.err.find("/a b/etc is inside /etc"), std::string::npos) << r.err;
  fs::create_directories(dir + "/plain");
  EXPECT_EQ(launch(dir + "/plain", "").status, 0);
}

// A profile's environment travels as one variable of the supervisor's; the durable-job supervisor
// without perl used to start as `sh -c SUPERVISOR_TEXT`, which put that variable's value (and any
// other call's env values) on its command line. It starts from a file in the job directory now.
TEST(ProfileEnvPassing, TheShJobSupervisorKeepsValuesOffCommandLines) {
  char tmpl[] = "/tmp/smcp-shjob-XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  const std::string secret = "v-shjob-" + std::to_string(::getpid());
  exec::CommandSpec spec;
  spec.command = "sleep 2; echo \"$SECRET\"";
  spec.env = {{"SECRET", secret}};
  const auto script = exec::job_start_script(spec, dir + "/job", "/bin/sh", "");
  std::ofstream(dir + "/script") << script.input;
  auto started = exec::run_process({"/bin/sh", "-c", script.exec + " < \"$1\"", "sh", dir + "/script"}, 30s);
  ASSERT_EQ(started.out.rfind("pid ", 0), 0u) << started.out << started.err;
  std::string seen;
  for (int i = 0; i < 10 && seen.empty(); ++i) {
    for (const auto& e : fs::directory_iterator("/proc")) {
      std::ifstream f(e.path() / "cmdline");
      std::string cmdline((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
      if (cmdline.find(secret) != std::string::npos) {
        seen = cmdline.substr(0, 120);
      }
    }
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(seen, "");
  EXPECT_FALSE(fs::exists(dir + "/job/supervisor")) << "deleted as the supervisor starts";
  for (int i = 0; i < 100 && !fs::exists(dir + "/job/status"); ++i) {
    std::this_thread::sleep_for(100ms);
  }
  std::ifstream out(dir + "/job/output");
  std::string text((std::istreambuf_iterator<char>(out)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, secret + "\n");
  fs::remove_all(dir);
}

} // namespace
} // namespace smcp
