#include "tests/support/local_shell_executor.h"

#include "sandbox/exec/spawn.h"

#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <mutex>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

extern char** environ;

namespace smcp::testing {

namespace {

class ShellCall final : public exec::RemoteCall, public std::enable_shared_from_this<ShellCall> {
public:
  explicit ShellCall(exec::RemoteCommand command) : m_command(std::move(command)) {
    m_cancel_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  }
  ~ShellCall() override { ::close(m_cancel_fd); }

  void launch() {
    int in[2], out[2], err[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
      finish_error("pipe failed");
      return;
    }
    exec::SpawnSetup setup(/*new_session=*/true);
    setup.dup_to(in[0], 0).dup_to(out[1], 1).dup_to(err[1], 2);
    std::string exec = m_command.exec;
    char sh[] = "/bin/sh";
    char dash_c[] = "-c";
    char* argv[] = {sh, dash_c, exec.data(), nullptr};
    pid_t pid = 0;
    int rc = setup.spawn(pid, "/bin/sh", argv, environ);
    ::close(in[0]);
    ::close(out[1]);
    ::close(err[1]);
    if (rc != 0) {
      ::close(in[1]);
      ::close(out[0]);
      ::close(err[0]);
      finish_error(std::string("posix_spawn: ") + std::strerror(rc));
      return;
    }
    std::thread([self = shared_from_this(), pid, in_fd = in[1], out_fd = out[0], err_fd = err[0]] {
      self->pump(pid, in_fd, out_fd, err_fd);
    }).detach();
  }

  bool wait_until(std::chrono::steady_clock::time_point deadline, std::stop_token stop) override {
    std::unique_lock lock(m_mutex);
    return m_cv.wait_until(lock, stop, deadline, [&] { return m_done; });
  }
  void cancel() override {
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(m_cancel_fd, &one, sizeof one);
  }
  exec::RemoteResult result() override {
    std::unique_lock lock(m_mutex);
    m_cv.wait(lock, [&] { return m_done; });
    if (m_error) {
      throw exec::HostError(m_error->kind(), m_error->what()); // a fresh copy in this thread
    }
    return m_result;
  }

private:
  void finish_error(const std::string& message) {
    std::lock_guard lock(m_mutex);
    m_error = exec::HostError(exec::HostError::Kind::io, message);
    m_done = true;
    m_cv.notify_all();
  }

  void deliver(exec::Stream stream, const char* data, std::size_t n) {
    if (m_command.on_output) {
      m_command.on_output(stream, std::string_view(data, n));
    } else {
      (stream == exec::Stream::out ? m_collected.out : m_collected.err).append(data, n);
    }
  }

  void pump(pid_t pid, int in_fd, int out_fd, int err_fd) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    std::size_t written = 0;
    const std::string& input = m_command.input;
    ::fcntl(in_fd, F_SETFL, O_NONBLOCK);
    int fds[3] = {in_fd, out_fd, err_fd};
    bool cancelled = false;
    char buf[65536];
    if (input.empty()) {
      ::close(fds[0]);
      fds[0] = -1;
    }
    while (fds[1] >= 0 || fds[2] >= 0) {
      pollfd p[4];
      int idx[4];
      int n = 0;
      if (fds[0] >= 0) {
        idx[n] = 0;
        p[n++] = {fds[0], POLLOUT, 0};
      }
      for (int i = 1; i < 3; ++i) {
        if (fds[i] >= 0) {
          idx[n] = i;
          p[n++] = {fds[i], POLLIN, 0};
        }
      }
      idx[n] = 3;
      p[n++] = {m_cancel_fd, POLLIN, 0};
      if (::poll(p, static_cast<nfds_t>(n), -1) < 0) {
        continue;
      }
      for (int k = 0; k < n; ++k) {
        if (!p[k].revents) {
          continue;
        }
        int i = idx[k];
        if (i == 3) {
          cancelled = true;
        } else if (i == 0) {
          ssize_t w = ::write(fds[0], input.data() + written, input.size() - written);
          if (w > 0) {
            written += static_cast<std::size_t>(w);
          }
          if ((w < 0 && errno != EAGAIN) || written >= input.size()) {
            ::close(fds[0]);
            fds[0] = -1;
          }
        } else {
          ssize_t r = ::read(fds[i], buf, sizeof buf);
          if (r > 0) {
            deliver(i == 1 ? exec::Stream::out : exec::Stream::err, buf, static_cast<std::size_t>(r));
          } else if (r == 0 || errno != EINTR) {
            ::close(fds[i]);
            fds[i] = -1;
          }
        }
      }
      if (cancelled) {
        break;
      }
    }
    for (int fd : fds) {
      if (fd >= 0) {
        ::close(fd);
      }
    }
    int status = 0;
    bool reaped = false;
    if (cancelled) {
      // Like a closed channel: the caller stops waiting; the process is reaped in the background.
      std::thread([pid] {
        int st = 0;
        ::waitpid(pid, &st, 0);
      }).detach();
    } else {
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      reaped = true;
    }
    std::lock_guard lock(m_mutex);
    m_result = std::move(m_collected);
    if (cancelled) {
      m_error = exec::HostError(exec::HostError::Kind::io, "cancelled");
    } else if (reaped && WIFSIGNALED(status)) {
      m_result.exit_signal = WTERMSIG(status);
    } else if (reaped) {
      m_result.exit_status = WEXITSTATUS(status);
    }
    m_done = true;
    m_cv.notify_all();
  }

  exec::RemoteCommand m_command;
  int m_cancel_fd = -1;
  exec::RemoteResult m_collected;
  std::mutex m_mutex;
  std::condition_variable_any m_cv;
  bool m_done = false;
  std::optional<exec::HostError> m_error;
  exec::RemoteResult m_result;
};

} // namespace

std::shared_ptr<exec::RemoteCall> LocalShellExecutor::start(exec::RemoteCommand command) {
  ++m_calls;
  auto call = std::make_shared<ShellCall>(std::move(command));
  call->launch();
  return call;
}

} // namespace smcp::testing
