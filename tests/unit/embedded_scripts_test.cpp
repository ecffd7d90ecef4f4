// The programs ScriptHost sends to a host pass their interpreter's syntax check: every file of
// sandbox/exec/scripts/ as embedded in the binary (sh -n, and bash -n in POSIX mode when bash is
// installed, for .sh; perl -c for .pl; the installed awk for .awk), and the programs as the
// builders assemble them, with values that need quoting.
#include "sandbox/exec/remote_scripts.h"
#include "sandbox/exec/run_process.h"
#include "sandbox/exec/scripts/embedded.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <unistd.h>

namespace smcp::exec {
namespace {

using namespace std::chrono_literals;

bool installed(const std::string& path) {
  return ::access(path.c_str(), X_OK) == 0;
}

// Writes `text` to a file and runs `checker... FILE [more...]`; returns what went wrong, empty
// when the check passed.
std::string check(const std::vector<std::string>& checker, std::string_view text,
                  const std::vector<std::string>& more = {}) {
  auto file = std::filesystem::temp_directory_path() / ("smcp-syntax-" + std::to_string(::getpid()));
  std::ofstream(file, std::ios::binary) << text;
  std::vector<std::string> argv = checker;
  argv.push_back(file.string());
  argv.insert(argv.end(), more.begin(), more.end());
  ProcessResult r = run_process(argv, 30s);
  std::filesystem::remove(file);
  return r.status == 0 ? std::string() : argv[0] + " (status " + std::to_string(r.status) + "): " + r.out + r.err;
}

void check_sh(std::string_view text, const std::string& what) {
  EXPECT_EQ(check({"/bin/sh", "-n"}, text), "") << what;
  if (installed("/bin/bash")) {
    EXPECT_EQ(check({"/bin/bash", "--posix", "-n"}, text), "") << what;
  }
}

void check_perl(std::string_view text, const std::string& what) {
  if (!installed("/usr/bin/perl")) {
    GTEST_SKIP() << "perl is not installed";
  }
  EXPECT_EQ(check({"/usr/bin/perl", "-c"}, text), "") << what;
}

TEST(EmbeddedScripts, EveryFilePassesItsSyntaxCheck) {
  std::set<std::string> names;
  for (const auto& script : scripts::all()) {
    const std::string name(script.name);
    names.insert(name);
    if (name.ends_with(".sh")) {
      check_sh(script.text, name);
    } else if (name.ends_with(".pl")) {
      check_perl(script.text, name);
    } else if (name.ends_with(".awk")) {
      // awk parses the whole program before it runs; without input only BEGIN and END run.
      EXPECT_EQ(check({"awk", "-f"}, script.text, {"/dev/null"}), "") << name;
    } else {
      ADD_FAILURE() << "no syntax check for " << name;
    }
  }
  for (const char* expected : {"probe.sh", "foreground_supervisor.pl", "foreground_supervisor.sh", "job_start.pl",
                               "job_start.sh", "job_read.sh", "kill_tree.sh", "file_window.sh", "file_window.awk"}) {
    EXPECT_TRUE(names.contains(expected)) << expected << " is not embedded";
  }
}

// The prologues the builders write before the embedded parts: quoted values must keep the
// programs whole.
CommandSpec nasty_spec() {
  CommandSpec spec;
  spec.command = "echo 'it''s' \"$HOME\" `id` \\\n; exit 3";
  spec.cwd = "/tmp/it's a $dir";
  spec.env = {{"V1", "a'b \"c\" $(id) `x` \\"}, {"V2", "line\nbreak"}};
  spec.timeout = 10s;
  return spec;
}

TEST(EmbeddedScripts, AssembledProgramsPassTheirSyntaxCheck) {
  const CommandSpec spec = nasty_spec();
  check_sh(foreground_script(spec, "/bin/bash", "n0nce", "").input, "foreground (sh)");
  check_sh(job_start_script(spec, "/tmp/jobs/j'1", "/bin/bash", "").input, "job start (sh)");
  check_sh(job_read_script(JobRef{"j'1", "/tmp/jobs/j'1", 42}, 0, 4096), "job read");
  check_sh(kill_session_script(42, 42, 15, 500ms, "/tmp/jobs/j'1", job_marker("j'1")), "kill");
  check_sh(remove_job_script("/tmp/jobs/j'1"), "remove job");
  FileReadRequest req;
  req.path = "/tmp/it's a $file";
  req.offset = -20;
  check_sh(file_window_script(req, 4096), "file window");
  check_sh(probe_script(), "probe");
  check_perl(foreground_script(spec, "/bin/bash", "n0nce", "/usr/bin/perl").input, "foreground (perl)");
  check_perl(job_start_script(spec, "/tmp/jobs/j'1", "/bin/bash", "/usr/bin/perl").input, "job start (perl)");
}

} // namespace
} // namespace smcp::exec
