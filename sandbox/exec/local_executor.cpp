#include "sandbox/exec/local_executor.h"

#include "sandbox/exec/captured_output.h"
#include "sandbox/exec/event_loop.h"
#include "sandbox/exec/fd.h"
#include "sandbox/exec/pipe_reader.h"
#include "sandbox/exec/proc_stat.h"
#include "sandbox/exec/spawn.h"

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <mutex>
#include <optional>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

extern char** environ;

namespace smcp::exec {

namespace {

// Whether a process other than `leader` (a zombie until it is reaped) is alive in group `pgrp`.
bool others_in_group(pid_t pgrp, pid_t leader) {
  DIR* d = ::opendir("/proc");
  if (!d) {
    return false;
  }
  bool found = false;
  while (dirent* e = ::readdir(d)) {
    char* end = nullptr;
    const long pid = std::strtol(e->d_name, &end, 10);
    ProcStat st;
    if (pid > 0 && *end == '\0' && pid != leader && read_proc_stat(static_cast<pid_t>(pid), st) && st.pgrp == pgrp &&
        st.live()) {
      found = true;
      break;
    }
  }
  ::closedir(d);
  return found;
}

// Ends the process group that `pid` leads: SIGTERM; SIGKILL once k_kill_grace passed with any of
// it still running. The leader is not reaped here (its caller does, last): while it is a zombie,
// its id cannot name another group.
void end_group(pid_t pid) {
  ::kill(-pid, SIGTERM);
  const auto until = std::chrono::steady_clock::now() + k_kill_grace;
  for (;;) {
    siginfo_t info{};
    const bool leader_ended =
        ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid;
    if (leader_ended && !others_in_group(pid, pid)) {
      return;
    }
    if (std::chrono::steady_clock::now() >= until) {
      ::kill(-pid, SIGKILL);
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

class LocalCall final : public exec::RemoteCall, public std::enable_shared_from_this<LocalCall> {
public:
  explicit LocalCall(exec::RemoteCommand command) : m_command(std::move(command)) {}

  void launch() {
    exec::Pipe in, out, err;
    if (!exec::open_pipe(in) || !exec::open_pipe(out) || !exec::open_pipe(err)) {
      finish_error("pipe failed");
      return;
    }
    exec::SpawnSetup setup(/*new_session=*/true);
    setup.dup_to(in.read.get(), 0).dup_to(out.write.get(), 1).dup_to(err.write.get(), 2);
    const bool direct = !m_command.argv.empty();
    exec::CStrings argv(direct ? m_command.argv : std::vector<std::string>{"/bin/sh", "-c", m_command.exec});
    pid_t pid = 0;
    int rc = setup.spawn(pid, argv.get()[0], argv.get(), environ, /*search_path=*/direct);
    in.read.reset();
    out.write.reset();
    err.write.reset();
    if (rc != 0) {
      if (direct && rc == ENOENT) {
        finish_error(m_command.argv[0] + ": command not found", HostError::Kind::not_found);
      } else {
        finish_error(std::string("posix_spawn: ") + std::strerror(rc));
      }
      return;
    }
    std::thread([self = shared_from_this(), pid, in = std::move(in.write), out = std::move(out.read),
                 err = std::move(err.read)]() mutable {
      self->pump(pid, std::move(in), std::move(out), std::move(err));
    }).detach();
  }

  bool wait_until(std::chrono::steady_clock::time_point deadline, std::stop_token stop) override {
    std::unique_lock lock(m_mutex);
    return m_cv.wait_until(lock, stop, deadline, [&] { return m_done; });
  }
  void cancel() override {
    m_cancelled = true;
    m_loop.post([] {}); // wakes the pump to see it
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
  void finish_error(const std::string& message, HostError::Kind kind = HostError::Kind::io) {
    std::lock_guard lock(m_mutex);
    m_error = exec::HostError(kind, message);
    m_done = true;
    m_cv.notify_all();
  }

  void deliver(exec::Stream stream, std::string_view data) {
    if (m_command.on_output) {
      m_command.on_output(stream, data);
    } else {
      exec::append_captured(stream == exec::Stream::out ? m_collected.out : m_collected.err, data);
    }
  }

  // Feeds the command's input to `in` as it becomes writable, then closes it (the Watch first).
  void feed(std::optional<exec::EventLoop::Watch>& watch, exec::UniqueFd& in, std::size_t& written) {
    watch->on_writable([this, &watch, &in, &written](bool) {
      const std::string& input = m_command.input;
      ssize_t w = ::write(in.get(), input.data() + written, input.size() - written);
      if (w > 0) {
        written += static_cast<std::size_t>(w);
      }
      if ((w < 0 && errno != EAGAIN) || written >= input.size()) {
        watch.reset();
        in.reset(); // end of input
      } else {
        feed(watch, in, written);
      }
    });
  }

  // Returns true when the call was cancelled before the output ended.
  bool follow(exec::UniqueFd& in, exec::UniqueFd out, exec::UniqueFd err) {
    exec::PipeReader out_reader(m_loop, std::move(out), [this](std::string_view d) { deliver(exec::Stream::out, d); });
    exec::PipeReader err_reader(m_loop, std::move(err), [this](std::string_view d) { deliver(exec::Stream::err, d); });
    std::optional<exec::EventLoop::Watch> input;
    std::size_t written = 0;
    if (m_command.input.empty()) {
      in.reset();
    } else {
      ::fcntl(in.get(), F_SETFL, O_NONBLOCK);
      input.emplace(m_loop, in.get());
      feed(input, in, written);
    }
    while (out_reader.open() || err_reader.open()) {
      if (m_cancelled) {
        return true;
      }
      m_loop.run_until(std::chrono::steady_clock::time_point::max());
    }
    return false;
  }

  void pump(pid_t pid, exec::UniqueFd in, exec::UniqueFd out, exec::UniqueFd err) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    const bool cancelled = follow(in, std::move(out), std::move(err));
    in.reset();
    if (cancelled) {
      // The command's whole group ends (a timed-out `podman exec` or `git fetch` must not run on);
      // the call ends then, and the child is reaped after (a process in D state may hold it).
      end_group(pid);
      finish(std::nullopt);
      reap(pid);
      return;
    }
    finish(reap(pid));
  }

  static int reap(pid_t pid) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return status;
  }

  // The call's end: the exit status, or "cancelled" when there is none.
  void finish(std::optional<int> status) {
    std::lock_guard lock(m_mutex);
    m_result = std::move(m_collected);
    if (!status) {
      m_error = exec::HostError(exec::HostError::Kind::io, "cancelled");
    } else if (WIFSIGNALED(*status)) {
      m_result.exit_signal = WTERMSIG(*status);
    } else {
      m_result.exit_status = WEXITSTATUS(*status);
    }
    m_done = true;
    m_cv.notify_all();
  }

  exec::RemoteCommand m_command;
  exec::EventLoop m_loop; // the pump's; cancel() posts to it from any thread
  std::atomic<bool> m_cancelled{false};
  exec::RemoteResult m_collected;
  std::mutex m_mutex;
  std::condition_variable_any m_cv;
  bool m_done = false;
  std::optional<exec::HostError> m_error;
  exec::RemoteResult m_result;
};

} // namespace

std::shared_ptr<exec::RemoteCall> LocalExecutor::start(exec::RemoteCommand command) {
  ++m_calls;
  auto call = std::make_shared<LocalCall>(std::move(command));
  call->launch();
  return call;
}

} // namespace smcp::exec
