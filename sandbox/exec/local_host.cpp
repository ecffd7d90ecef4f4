#include "sandbox/exec/local_host.h"

#include "sandbox/exec/process_tree.h"
#include "sandbox/exec/spawn.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sstream>
#include <thread>
#include <unistd.h>

extern char** environ;

namespace smcp::exec {

namespace {

using Clock = std::chrono::steady_clock;

// In the environment of every durable job's command: finds its processes after its supervisor is gone.
constexpr const char* k_job_marker = "SANDBOX_MCP_JOB";

class Fd {
public:
  Fd() = default;
  explicit Fd(int fd) : m_fd(fd) {}
  ~Fd() { reset(); }
  Fd(Fd&& o) noexcept : m_fd(o.release()) {}
  Fd& operator=(Fd&& o) noexcept {
    reset(o.release());
    return *this;
  }
  int get() const { return m_fd; }
  int release() { return std::exchange(m_fd, -1); }
  void reset(int fd = -1) {
    if (m_fd >= 0) {
      ::close(m_fd);
    }
    m_fd = fd;
  }
  explicit operator bool() const { return m_fd >= 0; }

private:
  int m_fd = -1;
};

std::string errno_text(int err) {
  return std::strerror(err);
}

// argv/envp arrays that stay valid for the duration of a spawn.
class CStrings {
public:
  explicit CStrings(std::vector<std::string> items) : m_items(std::move(items)) {
    for (auto& s : m_items) {
      m_ptrs.push_back(s.data());
    }
    m_ptrs.push_back(nullptr);
  }
  char* const* get() { return m_ptrs.data(); }

private:
  std::vector<std::string> m_items;
  std::vector<char*> m_ptrs;
};

std::vector<std::string> build_env(const std::vector<std::pair<std::string, std::string>>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string_view entry(*e);
    auto eq = entry.find('=');
    std::string_view key = entry.substr(0, eq);
    bool overridden = std::any_of(extra.begin(), extra.end(), [&](const auto& kv) { return kv.first == key; });
    if (!overridden) {
      env.emplace_back(entry);
    }
  }
  for (const auto& [k, v] : extra) {
    env.push_back(k + "=" + v);
  }
  return env;
}

void check_cwd(const std::string& cwd) {
  if (cwd.empty()) {
    return;
  }
  struct stat st {};
  if (::stat(cwd.c_str(), &st) != 0) {
    throw HostError(HostError::Kind::invalid,
                    "working directory " + cwd + " does not exist (" + errno_text(errno) + ")");
  }
  if (!S_ISDIR(st.st_mode)) {
    throw HostError(HostError::Kind::invalid, "working directory " + cwd + " is not a directory");
  }
}

// Returns 0, or the errno of the write that failed; `done` (if given) counts the bytes written.
int write_all(int fd, const char* p, std::size_t n, std::uint64_t* done = nullptr) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) {
        continue;
      }
      return errno;
    }
    p += w;
    n -= static_cast<std::size_t>(w);
    if (done) {
      *done += static_cast<std::uint64_t>(w);
    }
  }
  return 0;
}

// Async-signal-safe integer formatting (used between fork and exec/_exit).
std::size_t format_int(char* buf, long value) {
  char tmp[24];
  std::size_t n = 0;
  bool neg = value < 0;
  unsigned long v = neg ? static_cast<unsigned long>(-value) : static_cast<unsigned long>(value);
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v);
  std::size_t out = 0;
  if (neg) {
    buf[out++] = '-';
  }
  while (n) {
    buf[out++] = tmp[--n];
  }
  return out;
}

// Writes `text` to `path` atomically (tmp + rename); async-signal-safe.
void write_file_atomic(const char* tmp, const char* path, const char* text, std::size_t n) {
  int fd = ::open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    return;
  }
  write_all(fd, text, n);
  ::fsync(fd);
  ::close(fd);
  ::rename(tmp, path);
}

// The supervisor's status file is written into space reserved when the job starts (status.tmp is
// created with this many bytes), so a job that fills the disk still records how it ended.
constexpr std::size_t k_status_reserve = 128;

void reserve_status(const char* tmp) {
  char blank[k_status_reserve];
  std::memset(blank, '\n', sizeof blank);
  int fd = ::open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd >= 0) {
    write_all(fd, blank, sizeof blank);
    ::close(fd);
  }
}

// Overwrites the reserved status.tmp in place (no new blocks needed), then renames it; async-signal-safe.
void write_status(const char* tmp, const char* path, const char* text, std::size_t n) {
  int fd = ::open(tmp, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return;
  }
  while (::pwrite(fd, text, n, 0) < 0 && errno == EINTR) {
  }
  [[maybe_unused]] int rc = ::ftruncate(fd, static_cast<off_t>(n));
  ::fsync(fd);
  ::close(fd);
  ::rename(tmp, path);
}

std::string read_small_file(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    return {};
  }
  char buf[256];
  ssize_t n = ::read(fd.get(), buf, sizeof buf);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

std::string boot_id() {
  std::string id = read_small_file("/proc/sys/kernel/random/boot_id");
  while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) {
    id.pop_back();
  }
  return id;
}

// Field 22 of /proc/PID/stat: when the process started (clock ticks since boot). With the boot
// id it tells a live supervisor from an unrelated process that got the same pid later.
std::string start_time_of(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  std::string stat = read_small_file(path);
  auto close_paren = stat.rfind(')');
  if (close_paren == std::string::npos) {
    return {};
  }
  std::istringstream fields(stat.substr(close_paren + 2));
  std::string field;
  for (int i = 3; i <= 22 && fields >> field; ++i) {
    if (i == 22) {
      return field;
    }
  }
  return {};
}

pid_t session_of(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  std::string stat = read_small_file(path);
  auto close_paren = stat.rfind(')');
  if (close_paren == std::string::npos) {
    return -1;
  }
  char state = '?';
  int ppid = 0, pgrp = 0, session = 0;
  if (std::sscanf(stat.c_str() + close_paren + 2, "%c %d %d %d", &state, &ppid, &pgrp, &session) != 4 || state == 'Z' ||
      state == 'X') {
    return -1;
  }
  return session;
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

ExitInfo exit_info_from(int status) {
  ExitInfo info;
  if (WIFEXITED(status)) {
    info.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    info.signal = WTERMSIG(status);
  }
  return info;
}

class LocalHost final : public Host {
public:
  explicit LocalHost(LocalHostOptions options) : m_options(std::move(options)) {}

  std::string name() const override { return m_options.name; }
  std::string jobs_root() const override { return m_options.jobs_root; }
  HostStatus status() const override {
    HostStatus s;
    s.name = m_options.name;
    s.kind = "local";
    return s;
  }

  ExitInfo run(const CommandSpec& spec, OutputSink& sink, std::stop_token stop) override;
  JobRef start_job(const CommandSpec& spec, const std::string& job_id, const std::string& job_dir) override;
  JobChunk read_job(const JobRef& job, std::uint64_t offset, std::size_t max_bytes) override;
  bool kill_job(const JobRef& job, int signal, std::chrono::milliseconds grace, std::string* detail) override;
  void remove_job(const JobRef& job) override;
  FileWindow read_file(const FileReadRequest& request) override {
    return read_file_window(request, m_options.count_lines_below);
  }

private:
  JobState job_state(const JobRef& job);
  bool is_supervisor(const JobRef& job);               // job.pid is the job's live supervisor
  std::vector<pid_t> job_processes(const JobRef& job); // every live process of the job but its supervisor

  LocalHostOptions m_options;
};

// Everything the supervisor needs, prepared before fork: after it only async-signal-safe calls.
struct SupervisorPlan {
  const char* output;
  const char* status;
  const char* status_tmp;
  const char* pid_file;
  const char* pid_tmp;
  const char* cwd; // null: inherit
  const char* shell;
  char* const* argv;
  char* const* envp;
  std::uint64_t output_cap;
  int report_fd; // receives the supervisor's pid
  long grace_ms; // TERM -> KILL for processes the command leaves behind
};

std::size_t append_text(char* buf, std::size_t at, const char* text) {
  while (*text) {
    buf[at++] = *text++;
  }
  return at;
}

// Everything the foreground supervisor needs, prepared before fork.
struct ForegroundPlan {
  const char* shell;
  char* const* argv;
  char* const* envp;
  int out_w, err_w;
  int ctl_r; // the server holds the write end: EOF (closed, or the server died) = end the tree now
  int rep_w; // records for the server: "exit N" / "signal N", "left K NAMES", then "gone" / "survived"
  long grace_ms;
  SpawnSetup* setup; // how the command starts: default signals, no mask, cwd, fds 0-2 only
};

void reset_signals_for_command() {
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) {
      ::sigaction(sig, &dfl, nullptr);
    }
  }
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
}

// Supervisors ignore the signals meant for their command, and take SIGCHLD through a signalfd.
int supervisor_signals() {
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  for (int sig : {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGPIPE, SIGUSR1, SIGUSR2, SIGALRM, SIGTSTP, SIGTTIN, SIGTTOU}) {
    ::sigaction(sig, &ignore, nullptr);
  }
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  ::sigaction(SIGCHLD, &dfl, nullptr); // never SIG_IGN: children would be reaped without a status
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  ::sigprocmask(SIG_SETMASK, &chld, nullptr);
  return ::signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
}

void drain_signalfd(int fd) {
  signalfd_siginfo si;
  while (::read(fd, &si, sizeof si) > 0) {
  }
}

std::size_t status_record(char* text, int st) {
  std::size_t len;
  if (WIFSIGNALED(st)) {
    len = append_text(text, 0, "signal ");
    len += format_int(text + len, WTERMSIG(st));
  } else {
    len = append_text(text, 0, "exit ");
    len += format_int(text + len, WEXITSTATUS(st));
  }
  text[len++] = '\n';
  return len;
}

// The foreground supervisor: leader of the command's session and a child subreaper, so every
// descendant of the command — also those that call setsid — stays in its tree. It reports how the
// command ended; when the server closes the control pipe (the command ended and its output was
// drained, or a timeout or cancellation), or the server dies, it ends whatever remains of the
// tree and reports whether anything survived. Async-signal-safe only.
[[noreturn]] void supervise_foreground(const ForegroundPlan& plan) {
  ::setsid();
  ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  int fds[4] = {::fcntl(plan.out_w, F_DUPFD, 100), ::fcntl(plan.err_w, F_DUPFD, 100), ::fcntl(plan.ctl_r, F_DUPFD, 100),
                ::fcntl(plan.rep_w, F_DUPFD, 100)};
  int null_fd = ::open("/dev/null", O_RDWR);
  ::dup2(null_fd, 0);
  ::dup2(fds[0], 1);
  ::dup2(fds[1], 2);
  ::dup2(fds[2], 3);
  ::dup2(fds[3], 4);
  ::syscall(SYS_close_range, 5, ~0U, 0);
  const int ctl = 3, rep = 4;
  const int sfd = supervisor_signals();
  char text[512];

  // posix_spawn (vfork-like, prepared by the server before fork) rather than a second fork: no
  // copy of the server's page tables on the path of every command.
  pid_t job = -1;
  if (int rc = plan.setup->spawn(job, plan.shell, plan.argv, plan.envp); rc != 0) {
    static const char msg[] = "sandbox-mcp: cannot start the shell (or change to the working directory)\n";
    write_all(2, msg, sizeof msg - 1);
    job = -1;
  }
  // Only the command's tree may hold the output pipes: their end tells the server it is over.
  int null_out = ::open("/dev/null", O_WRONLY);
  ::dup2(null_out, 1);
  ::dup2(null_out, 2);
  if (job < 0) {
    static const char failed[] = "exit 127\ngone\n";
    write_all(rep, failed, sizeof failed - 1);
    ::_exit(0);
  }
  int st = 0;
  bool done = false, reported = false, children = true;
  for (;;) {
    children = reap_children(job, &st, &done);
    if (done && !reported) {
      write_all(rep, text, status_record(text, st));
      reported = true;
    }
    if (!children) {
      break; // the command and every process it started are gone
    }
    pollfd pfds[2] = {{ctl, POLLIN, 0}, {sfd, POLLIN, 0}};
    int n = ::poll(pfds, sfd >= 0 ? 2 : 1, sfd >= 0 ? -1 : 50);
    if (n > 0 && (pfds[1].revents & POLLIN)) {
      drain_signalfd(sfd);
    }
    if (n > 0 && (pfds[0].revents & (POLLIN | POLLHUP | POLLERR))) {
      char c;
      if (::read(ctl, &c, 1) <= 0) {
        break; // end the tree now
      }
    }
  }
  bool gone = true;
  if (children) {
    if (done) {
      // Left behind by a command that ended: name them for the server's answer.
      std::size_t len = 0;
      char names[200];
      std::size_t k = describe_descendants(names, sizeof names, &len);
      if (k > 0) {
        std::size_t m = append_text(text, 0, "left ");
        m += format_int(text + m, static_cast<long>(k));
        text[m++] = ' ';
        for (std::size_t i = 0; i < len; ++i) {
          text[m++] = names[i];
        }
        text[m++] = '\n';
        write_all(rep, text, m);
      }
    }
    int signalled = 0;
    gone = end_subtree(SIGTERM, plan.grace_ms, job, &st, &done, &signalled);
    if (done && !reported) {
      write_all(rep, text, status_record(text, st));
    }
  }
  static const char ok[] = "gone\n", bad[] = "survived\n";
  write_all(rep, gone ? ok : bad, gone ? sizeof ok - 1 : sizeof bad - 1);
  ::_exit(0);
}

ExitInfo LocalHost::run(const CommandSpec& spec, OutputSink& sink, std::stop_token stop) {
  check_cwd(spec.cwd);
  int out_pipe[2], err_pipe[2], ctl_pipe[2], rep_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    throw HostError(HostError::Kind::io, "pipe: " + errno_text(errno));
  }
  Fd out_r(out_pipe[0]), out_w(out_pipe[1]);
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    throw HostError(HostError::Kind::io, "pipe: " + errno_text(errno));
  }
  Fd err_r(err_pipe[0]), err_w(err_pipe[1]);
  if (::pipe2(ctl_pipe, O_CLOEXEC) != 0) {
    throw HostError(HostError::Kind::io, "pipe: " + errno_text(errno));
  }
  Fd ctl_r(ctl_pipe[0]), ctl_w(ctl_pipe[1]);
  if (::pipe2(rep_pipe, O_CLOEXEC) != 0) {
    throw HostError(HostError::Kind::io, "pipe: " + errno_text(errno));
  }
  Fd rep_r(rep_pipe[0]), rep_w(rep_pipe[1]);

  CStrings argv({m_options.shell, "-c", spec.command});
  CStrings envp(build_env(spec.env));
  SpawnSetup setup(/*new_session=*/false); // the supervisor leads the session
  if (!spec.cwd.empty()) {
    setup.chdir(spec.cwd);
  }
  setup.close_from(3);
  ForegroundPlan plan{m_options.shell.c_str(),
                      argv.get(),
                      envp.get(),
                      out_w.get(),
                      err_w.get(),
                      ctl_r.get(),
                      rep_w.get(),
                      static_cast<long>(m_options.kill_grace.count()),
                      &setup};
  const pid_t supervisor = ::fork();
  if (supervisor < 0) {
    throw HostError(HostError::Kind::io, "fork: " + errno_text(errno));
  }
  if (supervisor == 0) {
    supervise_foreground(plan);
  }
  out_w.reset();
  err_w.reset();
  ctl_r.reset();
  rep_w.reset();

  Fd wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  std::stop_callback on_stop(stop, [&wake] {
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake.get(), &one, sizeof one);
  });

  const auto deadline = spec.timeout.count() > 0 ? Clock::now() + spec.timeout : Clock::time_point::max();
  bool timed_out = false, cancelled = false;
  std::optional<int> status; // how the command ended, as its supervisor saw it
  std::optional<Clock::time_point> ended_at, rep_closed_at;
  bool reported_gone = false, reported_survivors = false;
  int leftovers = 0;
  std::string leftover_names, rep_buf;
  auto last_output = Clock::now();
  char buf[64 * 1024];

  auto read_into_sink = [&](Fd& fd, Stream stream) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n > 0) {
      last_output = Clock::now();
      sink.on_output(stream, std::string_view(buf, static_cast<std::size_t>(n)));
    } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
      fd.reset();
    }
  };
  auto read_reports = [&] {
    ssize_t n = ::read(rep_r.get(), buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
      return;
    }
    if (n <= 0) {
      rep_r.reset();
      rep_closed_at = Clock::now();
      last_output = std::max(last_output, *rep_closed_at); // take what is still in the pipes
      return;
    }
    rep_buf.append(buf, static_cast<std::size_t>(n));
    for (auto nl = rep_buf.find('\n'); nl != std::string::npos; nl = rep_buf.find('\n')) {
      std::string line = rep_buf.substr(0, nl);
      rep_buf.erase(0, nl + 1);
      int value = 0;
      if (std::sscanf(line.c_str(), "exit %d", &value) == 1) {
        status = value << 8;
        ended_at = Clock::now();
      } else if (std::sscanf(line.c_str(), "signal %d", &value) == 1) {
        status = value & 0x7f;
        ended_at = Clock::now();
      } else if (std::sscanf(line.c_str(), "left %d", &value) == 1) {
        leftovers = value;
        auto sp = line.find(' ', 5);
        leftover_names = sp == std::string::npos ? std::string() : line.substr(sp + 1);
      } else if (line == "gone") {
        reported_gone = true;
      } else if (line == "survived") {
        reported_survivors = true;
      }
    }
  };

  constexpr auto quiet = std::chrono::milliseconds(100);
  constexpr auto drain_limit = std::chrono::seconds(1);
  for (;;) {
    const auto now = Clock::now();
    // The control pipe closes when the tree is to be ended: on timeout or cancellation, or once
    // the command ended and its output was drained (what it left behind is ended then).
    if (!rep_r) {
      ctl_w.reset(); // the supervisor is gone
    }
    if (ctl_w) {
      if (!ended_at && now >= deadline) {
        timed_out = true;
        ctl_w.reset();
      } else if (!ended_at && stop.stop_requested()) {
        cancelled = true;
        ctl_w.reset();
      } else if (ended_at && ((!out_r && !err_r) || now - last_output >= quiet || now - *ended_at >= drain_limit)) {
        ctl_w.reset();
      }
    }
    if (!rep_r) {
      // The supervisor is done: read what is still in the pipes, briefly.
      if ((!out_r && !err_r) || now - last_output >= quiet || now - *rep_closed_at >= drain_limit) {
        break;
      }
    }
    auto wake_at = now + std::chrono::seconds(1);
    if (ctl_w && !ended_at) {
      wake_at = std::min(wake_at, deadline);
    } else if (ctl_w || !rep_r) {
      wake_at = std::min(wake_at, last_output + quiet);
    }
    pollfd fds[4];
    nfds_t n = 0;
    int i_out = -1, i_err = -1, i_rep = -1, i_wake = -1;
    if (out_r) {
      i_out = static_cast<int>(n);
      fds[n++] = {out_r.get(), POLLIN, 0};
    }
    if (err_r) {
      i_err = static_cast<int>(n);
      fds[n++] = {err_r.get(), POLLIN, 0};
    }
    if (rep_r) {
      i_rep = static_cast<int>(n);
      fds[n++] = {rep_r.get(), POLLIN, 0};
    }
    if (ctl_w && !ended_at) {
      i_wake = static_cast<int>(n);
      fds[n++] = {wake.get(), POLLIN, 0};
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(wake_at - now).count();
    int pr = ::poll(fds, n, static_cast<int>(std::clamp<long long>(left, 0, 1000)));
    if (pr < 0 && errno != EINTR) {
      break;
    }
    if (pr <= 0) {
      continue;
    }
    if (i_out >= 0 && (fds[i_out].revents & (POLLIN | POLLHUP | POLLERR))) {
      read_into_sink(out_r, Stream::out);
    }
    if (i_err >= 0 && (fds[i_err].revents & (POLLIN | POLLHUP | POLLERR))) {
      read_into_sink(err_r, Stream::err);
    }
    if (i_rep >= 0 && (fds[i_rep].revents & (POLLIN | POLLHUP | POLLERR))) {
      read_reports();
    }
    if (i_wake >= 0 && (fds[i_wake].revents & POLLIN)) {
      std::uint64_t v;
      [[maybe_unused]] auto r = ::read(wake.get(), &v, sizeof v);
    }
  }
  ctl_w.reset();
  int sup_status = 0;
  while (::waitpid(supervisor, &sup_status, 0) < 0 && errno == EINTR) {
  }

  ExitInfo info;
  if (status) {
    info = exit_info_from(*status);
  } else {
    info.signal = SIGKILL; // the supervisor itself was killed before it could report
  }
  info.timed_out = timed_out;
  info.cancelled = cancelled;
  info.leftovers = leftovers;
  info.leftover_names = leftover_names;
  if (reported_survivors) {
    info.tree_verified = false;
    info.tree_note = "some processes of the command survived SIGKILL";
    spdlog::warn("local: some processes of `{}` survived SIGKILL", spec.command.substr(0, 80));
  } else if (!reported_gone) {
    // The supervisor was killed from outside: end what is left of the command's session.
    end_session(supervisor, SIGTERM, m_options.kill_grace);
    info.tree_verified = false;
    info.tree_note = "the command's supervisor was killed from outside; processes that left the command's session "
                     "cannot be tracked";
  }
  return info;
}

// The job's supervisor: leader of the job's session, it runs the command with stdout and stderr
// on a pipe, copies the output to <dir>/output up to the cap (then keeps draining, counting what
// it discards), and writes <dir>/status when the command ends. Async-signal-safe only.
[[noreturn]] void supervise(const SupervisorPlan& plan) {
  ::setsid();
  int null_fd = ::open("/dev/null", O_RDWR);
  ::dup2(null_fd, 0);
  ::dup2(null_fd, 1);
  ::dup2(null_fd, 2);
  ::dup2(plan.report_fd, 3);
  ::syscall(SYS_close_range, 4, ~0U, 0);
  // Orphans of the job's tree (also those that left its session) become our children.
  ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  const int sfd = supervisor_signals();

  int pipe_fds[2] = {-1, -1};
  bool have_pipe = ::pipe2(pipe_fds, O_CLOEXEC) == 0;
  int out = ::open(plan.output, O_WRONLY | O_APPEND | O_CLOEXEC);
  pid_t job = ::fork();
  if (job == 0) {
    reset_signals_for_command();
    int target = have_pipe ? pipe_fds[1] : out;
    ::dup2(target, 1);
    ::dup2(target, 2);
    ::syscall(SYS_close_range, 3, ~0U, 0);
    if (plan.cwd && ::chdir(plan.cwd) != 0) {
      static const char msg[] = "sandbox-mcp: cannot change to the working directory\n";
      write_all(2, msg, sizeof msg - 1);
      ::_exit(126);
    }
    ::execve(plan.shell, plan.argv, plan.envp);
    static const char msg[] = "sandbox-mcp: cannot execute the shell\n";
    write_all(2, msg, sizeof msg - 1);
    ::_exit(127);
  }
  char text[512];
  std::size_t n = format_int(text, static_cast<long>(::getpid()));
  text[n++] = '\n';
  write_file_atomic(plan.pid_tmp, plan.pid_file, text, n);
  reserve_status(plan.status_tmp);
  pid_t self = ::getpid();
  write_all(3, reinterpret_cast<const char*>(&self), sizeof self);
  ::close(3);
  if (job < 0) {
    static const char failed[] = "exit 127\n";
    write_status(plan.status_tmp, plan.status, failed, sizeof failed - 1);
    ::_exit(1);
  }

  int st = 0;
  bool reaped = false;
  int write_error = 0;          // errno of the first failed write to the output file (disk full)
  std::uint64_t write_lost = 0; // output bytes not written after it
  std::uint64_t written = 0, discarded = 0;
  if (have_pipe) {
    ::close(pipe_fds[1]);
    static char buf[64 * 1024];
    auto copy = [&](ssize_t got) {
      std::uint64_t room = written < plan.output_cap ? plan.output_cap - written : 0;
      std::size_t keep = static_cast<std::size_t>(std::min<std::uint64_t>(room, static_cast<std::uint64_t>(got)));
      if (keep > 0) {
        // A failed write (disk full) ends the output file; the status says where and how much was lost.
        std::uint64_t done = 0;
        if (write_error == 0) {
          write_error = write_all(out, buf, keep, &done);
        }
        written += keep; // counted against the cap whether it could be written or not
        write_lost += keep - done;
      }
      if (keep < static_cast<std::size_t>(got)) {
        if (discarded == 0 && write_error == 0) {
          std::size_t m = append_text(text, 0, "\n[sandbox-mcp: output cap of ");
          m += format_int(text + m, static_cast<long>(plan.output_cap));
          m = append_text(text, m, " bytes reached; further output is discarded]\n");
          write_all(out, text, m);
        }
        discarded += static_cast<std::uint64_t>(got) - keep;
      }
    };
    bool open_pipe = true;
    while (!reaped) {
      pollfd fds[2] = {{open_pipe ? pipe_fds[0] : -1, POLLIN, 0}, {sfd, POLLIN, 0}};
      int pr = ::poll(fds, 2, sfd >= 0 ? -1 : 100);
      if (pr > 0 && (fds[0].revents & (POLLIN | POLLHUP | POLLERR))) {
        ssize_t got = ::read(pipe_fds[0], buf, sizeof buf);
        if (got > 0) {
          copy(got);
        } else if (got == 0) {
          open_pipe = false;
        }
      }
      if (pr > 0 && (fds[1].revents & POLLIN)) {
        drain_signalfd(sfd);
      }
      reap_children(job, &st, &reaped);
    }
    // The command ended: take what is already in the pipe. Processes it left behind that write
    // later get EPIPE, and are ended below: the job is over.
    ::fcntl(pipe_fds[0], F_SETFL, O_NONBLOCK);
    for (;;) {
      ssize_t got = ::read(pipe_fds[0], buf, sizeof buf);
      if (got <= 0) {
        break;
      }
      copy(got);
    }
    if (discarded > 0 && write_error == 0) {
      std::size_t m = append_text(text, 0, "[sandbox-mcp: ");
      m += format_int(text + m, static_cast<long>(discarded));
      m = append_text(text, m, " bytes of output were discarded after the cap]\n");
      write_all(out, text, m);
    }
    ::close(pipe_fds[0]);
  }
  while (!reaped) {
    if (!reap_children(job, &st, &reaped)) {
      break;
    }
    if (!reaped) {
      pollfd fds[1] = {{sfd, POLLIN, 0}};
      if (::poll(fds, 1, sfd >= 0 ? -1 : 100) > 0) {
        drain_signalfd(sfd);
      }
    }
  }
  // A job is its whole tree: what the command left running is ended with it, and said so. What is
  // ending anyway (a kill reached the whole tree) gets a moment first, so it is not named.
  for (int i = 0; i < 50 && reap_children(job, &st, &reaped); ++i) {
    pollfd fds[1] = {{sfd, POLLIN, 0}};
    if (::poll(fds, 1, 2) > 0) {
      drain_signalfd(sfd);
    }
  }
  if (reap_children(job, &st, &reaped)) {
    char names[200];
    std::size_t names_len = 0;
    std::size_t k = describe_descendants(names, sizeof names, &names_len);
    int signalled = 0;
    bool gone = end_subtree(SIGTERM, plan.grace_ms, job, &st, &reaped, &signalled);
    if (k > 0) {
      std::size_t m = append_text(text, 0, "[sandbox-mcp: the command ended; ");
      m += format_int(text + m, static_cast<long>(k));
      m = append_text(text, m,
                      k == 1 ? " process it left running was ended (" : " processes it left running were ended (");
      for (std::size_t i = 0; i < names_len; ++i) {
        text[m++] = names[i];
      }
      m = append_text(text, m, gone ? ")]\n" : "); some survived SIGKILL]\n");
      write_all(out, text, m);
    }
  }
  std::size_t len = status_record(text, st);
  if (write_error != 0) {
    len = append_text(text, len, "output-error ");
    len += format_int(text + len, write_error);
    text[len++] = ' ';
    len += format_int(text + len, static_cast<long>(written - write_lost));
    text[len++] = ' ';
    len += format_int(text + len, static_cast<long>(write_lost + discarded));
    text[len++] = '\n';
  }
  write_status(plan.status_tmp, plan.status, text, len);
  ::_exit(0);
}

JobRef LocalHost::start_job(const CommandSpec& spec, const std::string& job_id, const std::string& job_dir) {
  check_cwd(spec.cwd);
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(job_dir).parent_path(), ec);
  if (::mkdir(job_dir.c_str(), 0700) != 0) {
    throw HostError(HostError::Kind::io, "cannot create job directory " + job_dir + ": " + errno_text(errno));
  }
  {
    std::string command = spec.command + "\n";
    Fd fd(::open((job_dir + "/command").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    write_all(fd.get(), command.data(), command.size());
    std::string boot = boot_id() + "\n";
    Fd bfd(::open((job_dir + "/boot_id").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    write_all(bfd.get(), boot.data(), boot.size());
  }
  const std::string output = job_dir + "/output";
  const std::string status = job_dir + "/status";
  const std::string status_tmp = job_dir + "/status.tmp";
  const std::string pid_file = job_dir + "/pid";
  const std::string pid_tmp = job_dir + "/pid.tmp";
  CStrings argv({m_options.shell, "-c", spec.command});
  // The marker finds the job's processes even after its supervisor was killed and they left its session.
  auto env = spec.env;
  env.emplace_back(k_job_marker, job_id);
  CStrings envp(build_env(env));
  {
    Fd fd(::open(output.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd) {
      throw HostError(HostError::Kind::io, "cannot create " + output + ": " + errno_text(errno));
    }
  }
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) {
    throw HostError(HostError::Kind::io, "pipe: " + errno_text(errno));
  }
  Fd report_r(report[0]), report_w(report[1]);
  SupervisorPlan plan{output.c_str(),           status.c_str(),  status_tmp.c_str(),
                      pid_file.c_str(),         pid_tmp.c_str(), spec.cwd.empty() ? nullptr : spec.cwd.c_str(),
                      m_options.shell.c_str(),  argv.get(),      envp.get(),
                      m_options.job_output_cap, report_w.get(),  static_cast<long>(m_options.kill_grace.count())};

  pid_t middle = ::fork();
  if (middle < 0) {
    throw HostError(HostError::Kind::io, "fork: " + errno_text(errno));
  }
  if (middle == 0) {
    // Middle process: start the supervisor and leave at once, so the server reaps us now and
    // the supervisor is adopted by init (it must not depend on the server's lifetime).
    pid_t supervisor = ::fork();
    if (supervisor == 0) {
      supervise(plan);
    }
    ::_exit(supervisor < 0 ? 1 : 0);
  }
  report_w.reset();
  int st = 0;
  while (::waitpid(middle, &st, 0) < 0 && errno == EINTR) {
  }
  pid_t supervisor = 0;
  std::size_t got = 0;
  while (got < sizeof supervisor) {
    ssize_t n = ::read(report_r.get(), reinterpret_cast<char*>(&supervisor) + got, sizeof supervisor - got);
    if (n > 0) {
      got += static_cast<std::size_t>(n);
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  if (got != sizeof supervisor) {
    throw HostError(HostError::Kind::io, "the job supervisor did not start (see " + job_dir + ")");
  }
  if (std::string started = start_time_of(supervisor); !started.empty()) {
    Fd fd(::open((job_dir + "/starttime").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    started += "\n";
    write_all(fd.get(), started.data(), started.size());
  }
  return JobRef{job_id, job_dir, static_cast<long>(supervisor)};
}

bool LocalHost::is_supervisor(const JobRef& job) {
  std::string recorded_boot = read_small_file(job.dir + "/boot_id");
  while (!recorded_boot.empty() && recorded_boot.back() == '\n') {
    recorded_boot.pop_back();
  }
  std::string recorded_start = read_small_file(job.dir + "/starttime");
  while (!recorded_start.empty() && recorded_start.back() == '\n') {
    recorded_start.pop_back();
  }
  const auto pid = static_cast<pid_t>(job.pid);
  return job.pid > 0 && recorded_boot == boot_id() && session_of(pid) == pid &&
         (recorded_start.empty() || start_time_of(pid) == recorded_start);
}

std::vector<pid_t> LocalHost::job_processes(const JobRef& job) {
  std::vector<pid_t> out;
  std::string recorded_boot = read_small_file(job.dir + "/boot_id");
  while (!recorded_boot.empty() && recorded_boot.back() == '\n') {
    recorded_boot.pop_back();
  }
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
  if (supervised || !process_alive(sid)) {
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

JobState LocalHost::job_state(const JobRef& job) {
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
    bool gone = end_processes([&] { return job_processes(job); }, SIGTERM, m_options.kill_grace);
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

JobChunk LocalHost::read_job(const JobRef& job, std::uint64_t offset, std::size_t max_bytes) {
  struct stat dir_st {};
  if (::stat(job.dir.c_str(), &dir_st) != 0) {
    throw HostError(HostError::Kind::not_found, "job directory " + job.dir + " is gone");
  }
  JobChunk chunk;
  chunk.state = job_state(job);
  Fd fd(::open((job.dir + "/output").c_str(), O_RDONLY | O_CLOEXEC));
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

bool LocalHost::kill_job(const JobRef& job, int signal, std::chrono::milliseconds grace, std::string*) {
  if (job.pid <= 0) {
    return false;
  }
  // The supervisor is spared: it records how the job ended. An ended job is checked as well:
  // processes that outlived it are found by session and marker (job_processes guards against a
  // reused pid).
  job_state(job);
  return end_processes([&] { return job_processes(job); }, signal, grace);
}

void LocalHost::remove_job(const JobRef& job) {
  if (job_state(job).phase == JobState::Phase::running) {
    throw HostError(HostError::Kind::invalid, "job " + job.id + " is still running; kill it first");
  }
  std::error_code ec;
  std::filesystem::remove_all(job.dir, ec);
  if (ec) {
    throw HostError(HostError::Kind::io, "cannot remove " + job.dir + ": " + ec.message());
  }
}

// ---- file windows ----

bool is_continuation(char c) {
  return (static_cast<unsigned char>(c) & 0xC0) == 0x80;
}

struct Collected {
  std::vector<std::string> lines;
  std::uint64_t end = 0; // file position after the last collected line
  bool cut = false;
  bool has_nul = false;
};

// Reads up to `limit` lines starting at file position `pos`.
Collected collect_lines(int fd, std::uint64_t pos, std::uint64_t size, const FileReadRequest& req) {
  Collected c;
  c.end = pos; // an empty window (at the end of the file) has nothing after it
  std::string current;
  std::uint64_t current_len = 0;
  std::size_t total = 0;
  char buf[64 * 1024];
  bool in_line = false;
  auto finish_line = [&](std::uint64_t end_pos) {
    if (current_len > req.max_line_bytes) {
      std::size_t keep = req.max_line_bytes;
      while (keep > 0 && keep < current.size() && is_continuation(current[keep])) {
        --keep;
      }
      current.resize(keep);
      current += " [... line cut: " + std::to_string(current_len - keep) + " more bytes]";
      c.cut = true;
    }
    total += current.size() + 8;
    c.lines.push_back(std::move(current));
    current.clear();
    current_len = 0;
    in_line = false;
    c.end = end_pos;
  };
  while (pos < size && c.lines.size() < req.limit && total < req.max_total_bytes) {
    ssize_t n = ::pread(fd, buf, std::min<std::uint64_t>(sizeof buf, size - pos), static_cast<off_t>(pos));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      break;
    }
    std::size_t i = 0;
    const auto got = static_cast<std::size_t>(n);
    while (i < got && c.lines.size() < req.limit && total < req.max_total_bytes) {
      const char* start = buf + i;
      const void* nl = std::memchr(start, '\n', got - i);
      std::size_t len = nl ? static_cast<std::size_t>(static_cast<const char*>(nl) - start) : got - i;
      if (std::memchr(start, '\0', len)) {
        c.has_nul = true;
        return c;
      }
      if (current.size() < req.max_line_bytes + 4) {
        current.append(start, std::min(len, req.max_line_bytes + 4 - current.size()));
      }
      current_len += len;
      in_line = true;
      i += len;
      if (nl) {
        ++i;
        finish_line(pos + i);
      }
    }
    pos += i;
  }
  if (in_line && pos >= size && c.lines.size() < req.limit) {
    finish_line(size); // a last line without a newline
  }
  return c;
}

std::uint64_t count_newlines(int fd, std::uint64_t from, std::uint64_t to) {
  std::uint64_t count = 0;
  char buf[256 * 1024];
  while (from < to) {
    ssize_t n = ::pread(fd, buf, std::min<std::uint64_t>(sizeof buf, to - from), static_cast<off_t>(from));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      break;
    }
    count += static_cast<std::uint64_t>(std::count(buf, buf + n, '\n'));
    from += static_cast<std::uint64_t>(n);
  }
  return count;
}

// Position where the line `back` lines from the end starts (1 = the last line), scanning
// backwards; `found` is how many lines exist from there to the end.
std::uint64_t find_tail_start(int fd, std::uint64_t size, std::uint64_t back, std::uint64_t& found) {
  found = 0;
  if (size == 0) {
    return 0;
  }
  char last = 0;
  if (::pread(fd, &last, 1, static_cast<off_t>(size - 1)) != 1) {
    last = 0;
  }
  std::uint64_t pos = last == '\n' ? size - 1 : size; // the final newline ends the last line
  char buf[64 * 1024];
  while (pos > 0) {
    std::uint64_t len = std::min<std::uint64_t>(sizeof buf, pos);
    std::uint64_t at = pos - len;
    ssize_t n = ::pread(fd, buf, len, static_cast<off_t>(at));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      break;
    }
    for (std::uint64_t i = static_cast<std::uint64_t>(n); i > 0; --i) {
      if (buf[i - 1] == '\n') {
        if (++found == back) {
          return at + i;
        }
      }
    }
    pos = at;
  }
  ++found; // the first line of the file
  return 0;
}

// Files that report no size (procfs) are read up to this much.
constexpr std::uint64_t k_unsized_file_limit = 16ull * 1024 * 1024;

} // namespace

FileWindow read_file_window(const FileReadRequest& req, std::uint64_t count_lines_below) {
  Fd fd(::open(req.path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (!fd) {
    int err = errno;
    if (err == ENOENT || err == ENOTDIR) {
      throw HostError(HostError::Kind::not_found, "no such file: " + req.path);
    }
    if (err == EACCES || err == EPERM) {
      throw HostError(HostError::Kind::refused, "permission denied: " + req.path);
    }
    throw HostError(HostError::Kind::io, "cannot open " + req.path + ": " + errno_text(err));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    throw HostError(HostError::Kind::io, "cannot stat " + req.path + ": " + errno_text(errno));
  }
  if (S_ISDIR(st.st_mode)) {
    throw HostError(HostError::Kind::invalid,
                    req.path + " is a directory; list it with remote_bash {command: \"ls -la " + req.path + "\"}");
  }
  if (!S_ISREG(st.st_mode)) {
    throw HostError(HostError::Kind::invalid, req.path + " is not a regular file (device, FIFO or socket)");
  }
  if (st.st_size == 0) {
    // procfs and friends report size 0 for files with content: copy what a read gives (bounded)
    // into memory and window that instead.
    Fd copy(::memfd_create("sandbox-mcp-window", MFD_CLOEXEC));
    char buf[64 * 1024];
    std::uint64_t total = 0;
    for (;;) {
      ssize_t n = ::read(fd.get(), buf, sizeof buf);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n <= 0 || !copy) {
        break;
      }
      write_all(copy.get(), buf, static_cast<std::size_t>(n));
      total += static_cast<std::uint64_t>(n);
      if (total >= k_unsized_file_limit) {
        break;
      }
    }
    if (copy && total > 0) {
      fd = std::move(copy);
      st.st_size = static_cast<off_t>(total);
    }
  }
  const auto size = static_cast<std::uint64_t>(st.st_size);
  {
    char head[8192];
    ssize_t n = ::pread(fd.get(), head, sizeof head, 0);
    if (n > 0 && std::memchr(head, '\0', static_cast<std::size_t>(n))) {
      throw HostError(HostError::Kind::invalid, req.path + " looks like a binary file (it contains NUL bytes); "
                                                           "inspect it with remote_bash, e.g. `xxd | head`");
    }
  }
  FileWindow w;
  std::uint64_t start_pos = 0;
  if (req.offset > 0) {
    // Skip offset-1 lines from the start.
    std::uint64_t skip = static_cast<std::uint64_t>(req.offset - 1);
    std::uint64_t pos = 0, seen = 0;
    char buf[256 * 1024];
    while (seen < skip && pos < size) {
      ssize_t n = ::pread(fd.get(), buf, std::min<std::uint64_t>(sizeof buf, size - pos), static_cast<off_t>(pos));
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n <= 0) {
        break;
      }
      const char* p = buf;
      const char* end = buf + n;
      while (seen < skip) {
        const void* nl = std::memchr(p, '\n', static_cast<std::size_t>(end - p));
        if (!nl) {
          break;
        }
        ++seen;
        p = static_cast<const char*>(nl) + 1;
      }
      pos += static_cast<std::uint64_t>(seen < skip ? n : p - buf);
    }
    if (seen < skip) {
      // Fewer lines than the offset: an empty window past the end.
      char last = '\n';
      if (size > 0) {
        if (::pread(fd.get(), &last, 1, static_cast<off_t>(size - 1)) != 1) {
          last = '\n';
        }
      }
      w.start_line = req.offset;
      w.more_before = size > 0;
      w.total_lines = static_cast<long>(seen + (last != '\n' ? 1 : 0));
      return w;
    }
    start_pos = pos;
    w.start_line = req.offset;
  } else {
    std::uint64_t found = 0;
    start_pos = find_tail_start(fd.get(), size, static_cast<std::uint64_t>(-req.offset), found);
    if (start_pos == 0 || size <= count_lines_below) {
      std::uint64_t before = start_pos == 0 ? 0 : count_newlines(fd.get(), 0, start_pos);
      w.start_line = static_cast<long>(before + 1);
      w.total_lines = static_cast<long>(before + found);
    } else {
      w.start_line = -static_cast<long>(found);
    }
  }
  Collected c = collect_lines(fd.get(), start_pos, size, req);
  if (c.has_nul) {
    throw HostError(HostError::Kind::invalid, req.path + " looks like a binary file (it contains NUL bytes)");
  }
  w.lines = std::move(c.lines);
  w.cut_lines = c.cut;
  w.more_before = start_pos > 0;
  w.more_after = c.end < size;
  if (!w.total_lines && !w.more_after && w.start_line > 0) {
    w.total_lines = w.start_line - 1 + static_cast<long>(w.lines.size());
  }
  return w;
}

std::shared_ptr<Host> make_local_host(LocalHostOptions options) {
  return std::make_shared<LocalHost>(std::move(options));
}

} // namespace smcp::exec
