#include "sandbox/exec/local/job_supervisor.h"

#include "sandbox/exec/fd.h"
#include "sandbox/exec/local/supervisor.h"
#include "sandbox/exec/process_tree.h"
#include "sandbox/exec/signal_safe.h"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

namespace smcp::exec {

namespace {

// Writes `text` to `path` atomically (tmp + rename).
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

// The status file is written into space reserved when the job starts (status.tmp is created with
// this many bytes), so a job that fills the disk still records how it ended.
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

// Overwrites the reserved status.tmp in place (no new blocks needed), then renames it.
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

// Forks the command with stdout and stderr on `target`.
pid_t start_command(const SupervisorPlan& plan, int target) {
  pid_t job = ::fork();
  if (job == 0) {
    reset_signals_for_command();
    ::dup2(target, 1);
    ::dup2(target, 2);
    ::syscall(SYS_close_range, 3, ~0U, 0);
    if (plan.cwd && ::chdir(plan.cwd) != 0) {
      static const char msg[] = "sandbox-mcp: cannot change to the working directory\n";
      write_all(2, msg, sizeof msg - 1);
      ::_exit(126);
    }
    ::execve(plan.program, plan.argv, plan.envp);
    static const char msg[] = "sandbox-mcp: cannot execute the shell\n";
    write_all(2, msg, sizeof msg - 1);
    ::_exit(127);
  }
  return job;
}

// Copies the command's output to the output file up to the cap, counting what is discarded after
// it and what a failed write (disk full) lost.
struct OutputCopy {
  int out;
  std::uint64_t cap;
  int write_error = 0;          // errno of the first failed write to the output file
  std::uint64_t write_lost = 0; // output bytes not written after it
  std::uint64_t written = 0, discarded = 0;

  void copy(const char* buf, std::size_t got) {
    std::uint64_t room = written < cap ? cap - written : 0;
    std::size_t keep = static_cast<std::size_t>(std::min<std::uint64_t>(room, got));
    if (keep > 0) {
      // A failed write ends the output file; the status says where and how much was lost.
      std::uint64_t done = 0;
      if (write_error == 0) {
        write_error = write_all(out, buf, keep, &done);
      }
      written += keep; // counted against the cap whether it could be written or not
      write_lost += keep - done;
    }
    if (keep < got) {
      if (discarded == 0 && write_error == 0) {
        char text[128];
        std::size_t m = append_text(text, 0, "\n[sandbox-mcp: output cap of ");
        m += format_int(text + m, static_cast<long>(cap));
        m = append_text(text, m, " bytes reached; further output is discarded]\n");
        write_all(out, text, m);
      }
      discarded += got - keep;
    }
  }

  void note_discarded() {
    if (discarded > 0 && write_error == 0) {
      char text[128];
      std::size_t m = append_text(text, 0, "[sandbox-mcp: ");
      m += format_int(text + m, static_cast<long>(discarded));
      m = append_text(text, m, " bytes of output were discarded after the cap]\n");
      write_all(out, text, m);
    }
  }
};

// Copies the pipe to the output until the command was reaped, then what is already in the pipe.
// Processes it left behind that write later get EPIPE, and are ended: the job is over.
void follow_output(int pipe_r, int sfd, OutputCopy& copy, pid_t job, int* st, bool* reaped) {
  static char buf[64 * 1024];
  bool open_pipe = true;
  while (!*reaped) {
    if (wait_for(open_pipe ? pipe_r : -1, sfd, sfd >= 0 ? -1 : 100)) {
      ssize_t got = ::read(pipe_r, buf, sizeof buf);
      if (got > 0) {
        copy.copy(buf, static_cast<std::size_t>(got));
      } else if (got == 0) {
        open_pipe = false;
      }
    }
    reap_children(job, st, reaped);
  }
  ::fcntl(pipe_r, F_SETFL, O_NONBLOCK);
  for (;;) {
    ssize_t got = ::read(pipe_r, buf, sizeof buf);
    if (got <= 0) {
      break;
    }
    copy.copy(buf, static_cast<std::size_t>(got));
  }
  copy.note_discarded();
}

// A job is its whole tree: what the command left running is ended with it, and said so in the
// output. What is ending anyway (a kill reached the whole tree) gets a moment first, so it is not named.
void end_leftovers(int out, int sfd, long grace_ms, pid_t job, int* st, bool* reaped) {
  for (int i = 0; i < 50 && reap_children(job, st, reaped); ++i) {
    wait_for(-1, sfd, 2);
  }
  if (!reap_children(job, st, reaped)) {
    return;
  }
  char names[200];
  std::size_t names_len = 0;
  std::size_t k = describe_descendants(names, sizeof names, &names_len);
  int signalled = 0;
  bool gone = end_subtree(SIGTERM, grace_ms, job, st, reaped, &signalled);
  if (k > 0) {
    char text[512];
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

// "exit N" / "signal N", and "output-error ERRNO WRITTEN LOST" when the output file could not be written.
std::size_t final_status(char* text, int st, const OutputCopy& copy) {
  std::size_t len = status_record(text, st);
  if (copy.write_error != 0) {
    len = append_text(text, len, "output-error ");
    len += format_int(text + len, copy.write_error);
    text[len++] = ' ';
    len += format_int(text + len, static_cast<long>(copy.written - copy.write_lost));
    text[len++] = ' ';
    len += format_int(text + len, static_cast<long>(copy.write_lost + copy.discarded));
    text[len++] = '\n';
  }
  return len;
}

} // namespace

// Leader of the job's session, it runs the command with stdout and stderr on a pipe, copies the
// output to <dir>/output up to the cap (then keeps draining, counting what it discards), and
// writes <dir>/status when the command ends.
void supervise_job(const SupervisorPlan& plan) {
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
  OutputCopy copy{::open(plan.output, O_WRONLY | O_APPEND | O_CLOEXEC), plan.output_cap};
  pid_t job = start_command(plan, have_pipe ? pipe_fds[1] : copy.out);
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
  if (have_pipe) {
    ::close(pipe_fds[1]);
    follow_output(pipe_fds[0], sfd, copy, job, &st, &reaped);
    ::close(pipe_fds[0]);
  }
  while (!reaped) {
    if (!reap_children(job, &st, &reaped)) {
      break;
    }
    if (!reaped) {
      wait_for(-1, sfd, sfd >= 0 ? -1 : 100);
    }
  }
  end_leftovers(copy.out, sfd, plan.grace_ms, job, &st, &reaped);
  write_status(plan.status_tmp, plan.status, text, final_status(text, st, copy));
  ::_exit(0);
}

} // namespace smcp::exec
