#include "sandbox/exec/local/foreground.h"

#include "sandbox/exec/event_loop.h"
#include "sandbox/exec/fd.h"
#include "sandbox/exec/local/command.h"
#include "sandbox/exec/local/supervisor.h"
#include "sandbox/exec/pipe_reader.h"
#include "sandbox/exec/process_tree.h"
#include "sandbox/exec/signal_safe.h"
#include "sandbox/exec/spawn.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <fcntl.h>
#include <optional>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace smcp::exec {

namespace {

using Clock = std::chrono::steady_clock;

// Everything the foreground supervisor needs, prepared before fork.
struct ForegroundPlan {
  const char* program;
  char* const* argv;
  char* const* envp;
  int out_w, err_w;
  int ctl_r; // the server holds the write end: EOF (closed, or the server died) = end the tree now
  int rep_w; // records for the server: "exit N" / "signal N", "left K NAMES", then "gone" / "survived"
  long grace_ms;
  SpawnSetup* setup; // how the command starts: default signals, no mask, cwd, fds 0-2 only
};

// Names what the command left running ("left K NAMES") on the report pipe.
void report_leftovers(int rep) {
  char text[512];
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
  char text[64];

  // posix_spawn (vfork-like, prepared by the server before fork) rather than a second fork: no
  // copy of the server's page tables on the path of every command.
  pid_t job = -1;
  if (int rc = plan.setup->spawn(job, plan.program, plan.argv, plan.envp); rc != 0) {
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
    if (wait_for(ctl, sfd, sfd >= 0 ? -1 : 50)) {
      char c;
      if (::read(ctl, &c, 1) <= 0) {
        break; // end the tree now
      }
    }
  }
  bool gone = true;
  if (children) {
    if (done) {
      report_leftovers(rep); // left behind by a command that ended: named in the server's answer
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

// What the supervisor reported on its pipe.
struct Reports {
  std::optional<int> status; // how the command ended (a wait status), as its supervisor saw it
  std::optional<Clock::time_point> ended_at;
  bool gone = false;      // "gone": nothing of the tree remains
  bool survivors = false; // "survived": something outlived SIGKILL
  int leftovers = 0;
  std::string leftover_names;

  void parse(std::string_view data) {
    m_buf.append(data);
    for (auto nl = m_buf.find('\n'); nl != std::string::npos; nl = m_buf.find('\n')) {
      std::string line = m_buf.substr(0, nl);
      m_buf.erase(0, nl + 1);
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
        gone = true;
      } else if (line == "survived") {
        survivors = true;
      }
    }
  }

private:
  std::string m_buf;
};

// The server's side of a foreground run: the command's output goes to the sink as it arrives, the
// supervisor's reports are collected, and the control pipe is closed when the tree is to be ended.
class Follower {
public:
  Follower(OutputSink& sink, Clock::time_point deadline) : m_sink(sink), m_deadline(deadline) {}

  // Returns when the supervisor is done and the output pipes are drained (or quiet).
  void run(UniqueFd out_r, UniqueFd err_r, UniqueFd rep_r, UniqueFd ctl_w, const std::stop_token& stop);

  Reports reports;
  bool timed_out = false;
  bool cancelled = false;

private:
  static constexpr auto quiet = std::chrono::milliseconds(100);
  static constexpr auto drain_limit = std::chrono::seconds(1);

  OutputSink& m_sink;
  const Clock::time_point m_deadline;
  Clock::time_point m_last_output = Clock::now();
  std::optional<Clock::time_point> m_rep_closed_at;
};

void Follower::run(UniqueFd out_r, UniqueFd err_r, UniqueFd rep_r, UniqueFd ctl_w, const std::stop_token& stop) {
  EventLoop loop;
  auto to_sink = [this](Stream stream) {
    return [this, stream](std::string_view data) {
      m_last_output = Clock::now();
      m_sink.on_output(stream, data);
    };
  };
  PipeReader out(loop, std::move(out_r), to_sink(Stream::out));
  PipeReader err(loop, std::move(err_r), to_sink(Stream::err));
  PipeReader rep(
      loop, std::move(rep_r), [this](std::string_view data) { reports.parse(data); },
      [this] {
        m_rep_closed_at = Clock::now();
        m_last_output = std::max(m_last_output, *m_rep_closed_at); // take what is still in the pipes
      });
  std::stop_callback on_stop(stop, [&loop] { loop.post([] {}); }); // wakes run_until to see the stop
  for (;;) {
    const auto now = Clock::now();
    const auto& ended_at = reports.ended_at;
    const bool drained = !out.open() && !err.open();
    // The control pipe closes when the tree is to be ended: on timeout or cancellation, or once
    // the command ended and its output was drained (what it left behind is ended then).
    if (!rep.open()) {
      ctl_w.reset(); // the supervisor is gone
    }
    if (ctl_w) {
      if (!ended_at && now >= m_deadline) {
        timed_out = true;
        ctl_w.reset();
      } else if (!ended_at && stop.stop_requested()) {
        cancelled = true;
        ctl_w.reset();
      } else if (ended_at && (drained || now - m_last_output >= quiet || now - *ended_at >= drain_limit)) {
        ctl_w.reset();
      }
    }
    if (!rep.open()) {
      // The supervisor is done: read what is still in the pipes, briefly.
      if (drained || now - m_last_output >= quiet || now - *m_rep_closed_at >= drain_limit) {
        break;
      }
    }
    auto wake_at = now + std::chrono::seconds(1);
    if (ctl_w && !ended_at) {
      wake_at = std::min(wake_at, m_deadline);
    } else if (ctl_w || !rep.open()) {
      wake_at = std::min(wake_at, m_last_output + quiet);
    }
    loop.run_until(wake_at);
  }
}

ExitInfo exit_info(const Reports& reports) {
  ExitInfo info;
  if (!reports.status) {
    info.signal = SIGKILL; // the supervisor itself was killed before it could report
  } else if (WIFEXITED(*reports.status)) {
    info.exit_code = WEXITSTATUS(*reports.status);
  } else if (WIFSIGNALED(*reports.status)) {
    info.signal = WTERMSIG(*reports.status);
  }
  info.leftovers = reports.leftovers;
  info.leftover_names = reports.leftover_names;
  return info;
}

} // namespace

ExitInfo run_foreground(const CommandSpec& spec, const LocalHostOptions& options, OutputSink& sink,
                        const std::stop_token& stop) {
  check_cwd(spec.cwd);
  Pipe out = make_pipe(), err = make_pipe(), ctl = make_pipe(), rep = make_pipe();
  LocalCommand command(spec, options.shell);
  SpawnSetup setup(/*new_session=*/false); // the supervisor leads the session
  if (!spec.cwd.empty()) {
    setup.chdir(spec.cwd);
  }
  setup.close_from(3);
  ForegroundPlan plan{command.program.c_str(),
                      command.argv.get(),
                      command.envp.get(),
                      out.write.get(),
                      err.write.get(),
                      ctl.read.get(),
                      rep.write.get(),
                      static_cast<long>(options.kill_grace.count()),
                      &setup};
  const pid_t supervisor = ::fork();
  if (supervisor < 0) {
    throw HostError(HostError::Kind::io, "fork: " + errno_text(errno));
  }
  if (supervisor == 0) {
    supervise_foreground(plan);
  }
  out.write.reset();
  err.write.reset();
  ctl.read.reset();
  rep.write.reset();

  const auto deadline = spec.timeout.count() > 0 ? Clock::now() + spec.timeout : Clock::time_point::max();
  Follower follower(sink, deadline);
  follower.run(std::move(out.read), std::move(err.read), std::move(rep.read), std::move(ctl.write), stop);
  int sup_status = 0;
  while (::waitpid(supervisor, &sup_status, 0) < 0 && errno == EINTR) {
  }

  ExitInfo info = exit_info(follower.reports);
  info.timed_out = follower.timed_out;
  info.cancelled = follower.cancelled;
  if (follower.reports.survivors) {
    info.tree_verified = false;
    info.tree_note = "some processes of the command survived SIGKILL";
    spdlog::warn("local: some processes of `{}` survived SIGKILL", spec.command.substr(0, 80));
  } else if (!follower.reports.gone) {
    // The supervisor was killed from outside: end what is left of the command's session.
    end_session(supervisor, SIGTERM, options.kill_grace);
    info.tree_verified = false;
    info.tree_note = "the command's supervisor was killed from outside; processes that left the command's session "
                     "cannot be tracked";
  }
  return info;
}

} // namespace smcp::exec
