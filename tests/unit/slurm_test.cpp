// The Slurm backend's command lines (sandbox/slurm/slurm.h), their scripts run by a real /bin/sh:
// what each srun/sbatch exports, where the wrapper is searched when it runs (never a row's path, never
// the current directory), the marker that ties a job to its row, and the no-follow removal of the
// job's output.
#include "sandbox/container/runtime.h"
#include "sandbox/exec/run_process.h"
#include "sandbox/slurm/slurm.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sys/stat.h>

namespace smcp::sandbox {
namespace {

using namespace std::chrono_literals;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;
namespace fs = std::filesystem;

// The value of the first word starting with `prefix` ("--export="), or "" when none does.
std::string option(const std::vector<std::string>& argv, const std::string& prefix) {
  for (const auto& w : argv) {
    if (w.rfind(prefix, 0) == 0) {
      return w.substr(prefix.size());
    }
  }
  return "";
}

class SlurmScripts : public ::testing::Test {
protected:
  void SetUp() override {
    char tmpl[] = "/tmp/smcp-slurm-unit-XXXXXX";
    dir = ::mkdtemp(tmpl);
  }
  void TearDown() override { fs::remove_all(dir); }

  // An executable at `path` that prints TAG and its arguments.
  void program(const std::string& path, const std::string& tag) {
    fs::create_directories(fs::path(path).parent_path());
    std::ofstream(path) << "#!/bin/sh\necho " << tag << " \"$@\"\n";
    fs::permissions(path, fs::perms::owner_all);
  }
  // `argv` run by a real sh in `cwd` with PATH set to `path`.
  exec::ProcessResult run_in(const std::string& cwd, const std::string& path, const std::vector<std::string>& argv) {
    std::vector<std::string> a = {"/bin/sh", "-c", "cd \"$1\" && p=$2 && shift 2 && exec env PATH=\"$p\" \"$@\"",
                                  "sh",      cwd,  path};
    if (argv[0] == "sh") { // find_wrapper_argv's program, by the PATH of the caller
      a.push_back("/bin/sh");
      a.insert(a.end(), argv.begin() + 1, argv.end());
    } else {
      a.insert(a.end(), argv.begin(), argv.end());
    }
    return exec::run_process(a, 30s);
  }

  std::string dir;
};

TEST(SlurmCommandLines, EveryStepExportsOnlyWhatItNeeds) {
  // A human's terminal (the CLI's attach) as much as a command: srun's default is the caller's
  // whole environment.
  auto pty = srun_podman_argv("12", "/r", {"exec", "-it", "C", "tmux", "attach-session", "-t", "main"}, true);
  EXPECT_EQ(option(pty, "--export="), "PATH,TERM");
  EXPECT_THAT(pty, Contains("--pty"));
  auto cmd = srun_podman_argv("12", "/r", {"exec", "-i", "C", "sh"});
  EXPECT_EQ(option(cmd, "--export="), "PATH");
  EXPECT_THAT(cmd, Contains("--unbuffered"));
  // The job: PATH, the GPU directory and GITHUB_TOKEN; the marker as its comment.
  SlurmOptions o;
  auto sb = sbatch_argv(o, "sandbox-a", "/r", "/r/.sandboxes/.a.slurm.out", "/r", "MARK", {"podman", "run", "I"}, true);
  EXPECT_EQ(option(sb, "--export="), "PATH,GITHUB_TOKEN,PODMAN_SRUN_GPU_DEV_DIR");
  EXPECT_EQ(option(sb, "--comment="), "MARK");
  EXPECT_EQ(option(sb, "--chdir="), "/r");
  auto no_token = sbatch_argv(o, "sandbox-a", "/r", "/o", "/r", "MARK", {"podman", "run", "I"}, false);
  EXPECT_EQ(option(no_token, "--export="), "PATH,PODMAN_SRUN_GPU_DEV_DIR");
}

TEST(SlurmCommandLines, ARowsWrapperPathIsNeverRun) {
  // The manager passes the sandbox's repository; the program srun starts is always /bin/sh with
  // the fixed search, whatever a registry says.
  auto a = srun_podman_argv("7", "/repo", {"ps"});
  const auto sh = std::find(a.begin(), a.end(), "/bin/sh");
  ASSERT_NE(sh, a.end());
  EXPECT_EQ(*(sh + 1), "-c");
  EXPECT_EQ(*(sh + 2), wrapper_argv("/repo")[2]);
  EXPECT_EQ(*(sh + 4), "/repo");
  EXPECT_EQ(*(sh + 5), ""); // no shipped copy
  EXPECT_EQ(*(sh + 6), "podman");
  auto sb = sbatch_argv({}, "sandbox-a", "/repo", "/o", "/repo", "M", {"podman", "run", "I"}, true);
  EXPECT_EQ(sb.back().rfind("--wrap=exec '/bin/sh' '-c' ", 0), 0u) << sb.back();
  EXPECT_THAT(sb.back(), HasSubstr("'podman-srun' '/repo' '' 'podman' 'run' 'I'"));
  SlurmOptions o;
  o.shipped_wrapper = "/opt/smcp/bin/podman-srun";
  sb = sbatch_argv(o, "sandbox-a", "/repo", "/o", "/repo", "M", {"podman", "run", "I"}, true);
  EXPECT_THAT(sb.back(), HasSubstr("'podman-srun' '/repo' '/opt/smcp/bin/podman-srun' 'podman' 'run' 'I'"));
  a = srun_podman_argv("7", "/repo", {"ps"}, false, "/opt/smcp/bin/podman-srun");
  EXPECT_EQ(*(std::find(a.begin(), a.end(), "/bin/sh") + 5), "/opt/smcp/bin/podman-srun");
}

TEST_F(SlurmScripts, TheWrapperIsFoundRepoFirstThenAbsolutePathEntriesOnly) {
  const std::string repo = dir + "/repo", cwd = dir + "/cwd", bin = dir + "/bin";
  program(cwd + "/podman-srun", "from-cwd");
  program(bin + "/podman-srun", "from-path");
  fs::create_directories(repo);
  fs::create_directories(repo + "/podman-srun"); // a directory is not the wrapper
  const std::string path = ":.:rel:" + bin + ":/usr/bin:/bin";
  // Nothing in the repository: PATH's absolute entries (not "", "." or "rel", the current directory).
  auto r = run_in(cwd, path, wrapper_argv(repo));
  EXPECT_EQ(r.out, "from-path\n") << r.err; // no words after the repository: none for the wrapper
  r = run_in(cwd, path, [&] {
    auto a = wrapper_argv(repo);
    a.insert(a.end(), {"podman", "exec", "a b", "*"});
    return a;
  }());
  EXPECT_EQ(r.out, "from-path podman exec a b *\n") << r.err;
  EXPECT_EQ(run_in(cwd, path, find_wrapper_argv(repo)).out, bin + "/podman-srun\n");
  // REPO/sandbox/podman-srun, then REPO/podman-srun before it.
  program(repo + "/sandbox/podman-srun", "from-repo-sandbox");
  EXPECT_EQ(run_in(cwd, path, wrapper_argv(repo)).out, "from-repo-sandbox\n");
  fs::remove(repo + "/podman-srun");
  program(repo + "/podman-srun", "from-repo");
  EXPECT_EQ(run_in(cwd, path, wrapper_argv(repo)).out, "from-repo\n");
  EXPECT_EQ(run_in(cwd, path, find_wrapper_argv(repo)).out, repo + "/podman-srun\n");
  // Found nowhere: 127 and a message; the current directory's is still not run.
  r = run_in(cwd, ":.:/usr/bin:/bin", wrapper_argv(dir + "/none"));
  EXPECT_EQ(r.status, 127);
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, HasSubstr("podman-srun not found in " + dir + "/none"));
  EXPECT_EQ(run_in(cwd, ":.:/usr/bin:/bin", find_wrapper_argv(dir + "/none")).out, "");
  // No repository: PATH only (never "/podman-srun").
  EXPECT_EQ(run_in(cwd, path, wrapper_argv("")).out, "from-path\n");
  // The copy shipped with sandbox-mcp comes last: after the repository and PATH, and only absolute.
  const std::string shipped = dir + "/opt/podman-srun";
  program(shipped, "from-shipped");
  EXPECT_EQ(run_in(cwd, path, wrapper_argv(repo, shipped)).out, "from-repo\n");
  EXPECT_EQ(run_in(cwd, path, wrapper_argv(dir + "/none", shipped)).out, "from-path\n");
  EXPECT_EQ(run_in(cwd, "/usr/bin:/bin", wrapper_argv(dir + "/none", shipped)).out, "from-shipped\n");
  EXPECT_EQ(run_in(cwd, "/usr/bin:/bin", find_wrapper_argv(dir + "/none", shipped)).out, shipped + "\n");
  program(cwd + "/rel/podman-srun", "from-relative");
  EXPECT_EQ(run_in(cwd, "/usr/bin:/bin", wrapper_argv(dir + "/none", "rel/podman-srun")).status, 127);
  r = run_in(cwd, "/usr/bin:/bin", wrapper_argv(dir + "/none", dir + "/missing"));
  EXPECT_EQ(r.status, 127);
  EXPECT_THAT(r.err, HasSubstr("PATH or " + dir + "/missing on "));
  EXPECT_THAT(r.err, HasSubstr("the node must see one of them"));
}

TEST(SlurmMarker, TiesAJobToOneRowOfOneRepositoryAndNothingElse) {
  const std::string m = slurm_marker("/home/u/repo", "0123456789abcdef0123456789abcdef");
  const std::string hash = container_name("/home/u/repo", "x").substr(5, 8);
  EXPECT_EQ(m, "sandbox-mcp repo=" + hash + " row=0123456789abcdef0123456789abcdef");
  EXPECT_NE(slurm_marker("/home/u/other", "0123456789abcdef0123456789abcdef"), m);
  EXPECT_EQ(marked_jobs_argv("sandbox-a"),
            (std::vector<std::string>{"squeue", "-h", "--me", "-n", "sandbox-a", "-o", "%i|%k"}));
  const std::string out = "11|" + m + "\n" +   // ours
                          "12|(null)\n" +      // no comment: someone else's sandbox-a
                          "13|" + m + "0\n" +  // not exactly ours
                          "14|x " + m + "\n" + // nor this
                          "15;x|" + m + "\n" + // not a job id
                          "16|" + m + "\n";    // ours too
  EXPECT_EQ(marked_jobs(out, m), (std::vector<std::string>{"11", "16"}));
  EXPECT_TRUE(marked_jobs("", m).empty());
}

TEST_F(SlurmScripts, TheJobsOutputIsRemovedOnlyWhenARegularFile) {
  const std::string target = dir + "/precious";
  std::ofstream(target) << "keep\n";
  const std::string out = dir + "/out/.a.slurm.out";
  fs::create_directories(dir + "/out");
  auto rm = [&](const std::string& path) { return exec::run_process(remove_regular_file_argv(path), 30s).status; };
  std::ofstream(out) << "job output\n";
  EXPECT_EQ(rm(out), 0);
  EXPECT_FALSE(fs::exists(out));
  EXPECT_EQ(rm(out), 0); // absent: nothing to do
  // A link is left alone (its target too); so is a directory, and anything under a linked directory.
  fs::create_symlink(target, out);
  EXPECT_EQ(rm(out), 3);
  EXPECT_TRUE(fs::is_symlink(out));
  fs::remove(out);
  fs::create_directories(out);
  EXPECT_EQ(rm(out), 3);
  EXPECT_TRUE(fs::is_directory(out));
  fs::create_symlink(dir, dir + "/linked");
  EXPECT_EQ(rm(dir + "/linked/precious"), 3);
  EXPECT_TRUE(fs::exists(target));
}

} // namespace
} // namespace smcp::sandbox
