#include "sandbox/exec/local/jobs.h"

#include "sandbox/exec/fd.h"
#include "sandbox/exec/local/command.h"
#include "sandbox/exec/local/job_supervisor.h"
#include "sandbox/exec/proc_stat.h"
#include "sandbox/exec/process_tree.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <fcntl.h>
#include <filesystem>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace smcp::exec {

namespace {

// In the environment of every durable job's command: finds its processes after its supervisor is gone.
constexpr const char* k_job_marker = "SANDBOX_MCP_JOB";

// A one-line record file of the job (boot_id, starttime), without its newline.
std::string read_record(const std::string& path) {
  std::string text = read_small_file(path);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) {
    text.pop_back();
  }
  return text;
}

void write_record(const std::string& path, const std::string& text) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  std::string line = text + "\n";
  write_all(fd.get(), line.data(), line.size());
}

std::string boot_id() {
  return read_record("/proc/sys/kernel/random/boot_id");
}

// When the process started (clock ticks since boot). With the boot id it tells a live supervisor
// from an unrelated process that got the same pid later.
std::string start_time_of(pid_t pid) {
  ProcStat st;
  return read_proc_stat(pid, st) ? std::to_string(st.start_time) : std::string();
}

bool parse_status(const std::string& text, JobState& state) {
  int value = 0;
  if (std::sscanf(text.c_str(), "exit %d", &value) == 1) {
    state.phase = JobState::Phase::exited;
    state.exit_code = value;
  } else if (std::sscanf(text.c_str(), "signal %d", &value) == 1) {
    state.phase = JobState::Phase::signaled;
    state.signal = value;
  } else {
    return false;
  }
  // "output-error ERRNO WRITTEN LOST": the output file could not be written (disk full).
  if (auto at = text.find("\noutput-error "); at != std::string::npos) {
    unsigned long long written = 0, lost = 0;
    if (std::sscanf(text.c_str() + at + 1, "output-error %d %llu %llu", &value, &written, &lost) == 3) {
      state.output_errno = value;
      state.output_written = written;
      state.output_lost = lost;
    }
  }
  return true;
}

// job.pid is the job's live supervisor (not a process that got its pid later).
bool is_supervisor(const JobRef& job) {
  const std::string recorded_start = read_record(job.dir + "/starttime");
  const auto pid = static_cast<pid_t>(job.pid);
  ProcStat st;
  return job.pid > 0 && read_record(job.dir + "/boot_id") == boot_id() && read_proc_stat(pid, st) && st.live() &&
         st.sid == pid && (recorded_start.empty() || std::to_string(st.start_time) == recorded_start);
}

// Every live process of the job but its supervisor.
std::vector<pid_t> job_processes(const JobRef& job) {
  std::vector<pid_t> out;
  const std::string recorded_boot = read_record(job.dir + "/boot_id");
  if (job.pid <= 0 || (!recorded_boot.empty() && recorded_boot != boot_id())) {
    return out; // the host rebooted since: nothing of the job can be running
  }
  const auto sid = static_cast<pid_t>(job.pid);
  const bool supervised = is_supervisor(job);
  if (supervised) {
    out = descendants(sid); // complete: the supervisor is a child subreaper
  }
  // A session id is not reused while any process still has it: unless the job's pid now leads
  // another session, the members of the job's session are the job's.
  ProcStat st;
  if (supervised || !(read_proc_stat(sid, st) && st.live())) {
    for (pid_t p : session_members(sid, sid)) {
      if (std::find(out.begin(), out.end(), p) == out.end()) {
        out.push_back(p);
      }
    }
  }
  for (pid_t p : processes_with_env(std::string(k_job_marker) + "=" + job.id)) {
    if (std::find(out.begin(), out.end(), p) == out.end()) {
      out.push_back(p);
    }
  }
  return out;
}

JobState job_state(const LocalHostOptions& options, const JobRef& job) {
  JobState state;
  if (parse_status(read_small_file(job.dir + "/status"), state)) {
    return state;
  }
  if (is_supervisor(job)) {
    return state; // running
  }
  // The supervisor may have written the status just now.
  if (parse_status(read_small_file(job.dir + "/status"), state)) {
    return state;
  }
  // The supervisor is gone without a status (killed from outside): the job cannot be followed
  // any more (its output went to the supervisor), so whatever still runs of it is ended.
  state.phase = JobState::Phase::vanished;
  auto left = job_processes(job);
  if (!left.empty()) {
    bool gone = end_processes([&] { return job_processes(job); }, SIGTERM, options.kill_grace);
    state.note = "the job's supervisor was killed from outside, so its output and exit status could no longer be "
                 "recorded; " +
                 std::to_string(left.size()) +
                 (left.size() == 1 ? " process of the job that was still running "
                                   : " processes of the job that were still running ") +
                 (gone ? (left.size() == 1 ? "was ended" : "were ended") : "could not all be ended");
    spdlog::warn("local: job {}: {}", job.id, state.note);
  }
  return state;
}

// Forks a middle process that starts the supervisor and leaves at once, so the server reaps it now
// and the supervisor is adopted by init (it must not depend on the server's lifetime). Returns the
// supervisor's pid, as it reports it on `report`.
pid_t start_supervisor(const SupervisorPlan& plan, Pipe& report, const std::string& job_dir) {
  pid_t middle = ::fork();
  if (middle < 0) {
    throw HostError(HostError::Kind::io, "fork: " + errno_text(errno));
  }
  if (middle == 0) {
    pid_t supervisor = ::fork();
    if (supervisor == 0) {
      supervise_job(plan);
    }
    ::_exit(supervisor < 0 ? 1 : 0);
  }
  report.write.reset();
  int st = 0;
  while (::waitpid(middle, &st, 0) < 0 && errno == EINTR) {
  }
  pid_t supervisor = 0;
  std::size_t got = 0;
  while (got < sizeof supervisor) {
    ssize_t n = ::read(report.read.get(), reinterpret_cast<char*>(&supervisor) + got, sizeof supervisor - got);
    if (n > 0) {
      got += static_cast<std::size_t>(n);
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  if (got != sizeof supervisor) {
    throw HostError(HostError::Kind::io, "the job supervisor did not start (see " + job_dir + ")");
  }
  return supervisor;
}

} // namespace

JobRef start_local_job(const LocalHostOptions& options, const CommandSpec& spec, const std::string& job_id,
                       const std::string& job_dir) {
  check_cwd(spec.cwd);
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(job_dir).parent_path(), ec);
  if (::mkdir(job_dir.c_str(), 0700) != 0) {
    throw HostError(HostError::Kind::io, "cannot create job directory " + job_dir + ": " + errno_text(errno));
  }
  write_record(job_dir + "/command", spec.command);
  write_record(job_dir + "/boot_id", boot_id());
  const std::string output = job_dir + "/output";
  const std::string status = job_dir + "/status";
  const std::string status_tmp = job_dir + "/status.tmp";
  const std::string pid_file = job_dir + "/pid";
  const std::string pid_tmp = job_dir + "/pid.tmp";
  // The marker finds the job's processes even after its supervisor was killed and they left its session.
  LocalCommand command(spec, options.shell, {{k_job_marker, job_id}});
  if (!UniqueFd(::open(output.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600))) {
    throw HostError(HostError::Kind::io, "cannot create " + output + ": " + errno_text(errno));
  }
  Pipe report = make_pipe();
  SupervisorPlan plan{output.c_str(),          status.c_str(),     status_tmp.c_str(),
                      pid_file.c_str(),        pid_tmp.c_str(),    spec.cwd.empty() ? nullptr : spec.cwd.c_str(),
                      command.program.c_str(), command.argv.get(), command.envp.get(),
                      options.job_output_cap,  report.write.get(), static_cast<long>(options.kill_grace.count())};
  const pid_t supervisor = start_supervisor(plan, report, job_dir);
  if (std::string started = start_time_of(supervisor); !started.empty()) {
    write_record(job_dir + "/starttime", started);
  }
  return JobRef{job_id, job_dir, static_cast<long>(supervisor)};
}

JobChunk read_local_job(const LocalHostOptions& options, const JobRef& job, std::uint64_t offset,
                        std::size_t max_bytes) {
  struct stat dir_st {};
  if (::stat(job.dir.c_str(), &dir_st) != 0) {
    throw HostError(HostError::Kind::not_found, "job directory " + job.dir + " is gone");
  }
  JobChunk chunk;
  chunk.state = job_state(options, job);
  UniqueFd fd(::open((job.dir + "/output").c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    throw HostError(HostError::Kind::not_found, "job output " + job.dir + "/output: " + errno_text(errno));
  }
  struct stat st {};
  ::fstat(fd.get(), &st);
  const auto size = static_cast<std::uint64_t>(st.st_size);
  chunk.size = size;
  std::uint64_t from = std::max<std::uint64_t>(offset, size > max_bytes ? size - max_bytes : 0);
  chunk.offset = std::min(from, size);
  if (from < size) {
    chunk.data.resize(static_cast<std::size_t>(size - from));
    std::size_t got = 0;
    while (got < chunk.data.size()) {
      ssize_t n = ::pread(fd.get(), chunk.data.data() + got, chunk.data.size() - got, static_cast<off_t>(from + got));
      if (n <= 0) {
        if (n < 0 && errno == EINTR) {
          continue;
        }
        break;
      }
      got += static_cast<std::size_t>(n);
    }
    chunk.data.resize(got);
  }
  return chunk;
}

bool kill_local_job(const LocalHostOptions& options, const JobRef& job, int signal, std::chrono::milliseconds grace) {
  if (job.pid <= 0) {
    return false;
  }
  // The supervisor is spared: it records how the job ended. An ended job is checked as well:
  // processes that outlived it are found by session and marker (job_processes guards against a
  // reused pid).
  job_state(options, job);
  return end_processes([&] { return job_processes(job); }, signal, grace);
}

void remove_local_job(const LocalHostOptions& options, const JobRef& job) {
  if (job_state(options, job).phase == JobState::Phase::running) {
    throw HostError(HostError::Kind::invalid, "job " + job.id + " is still running; kill it first");
  }
  std::error_code ec;
  std::filesystem::remove_all(job.dir, ec);
  if (ec) {
    throw HostError(HostError::Kind::io, "cannot remove " + job.dir + ": " + ec.message());
  }
}

} // namespace smcp::exec
