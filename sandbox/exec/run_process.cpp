#include "sandbox/exec/run_process.h"

#include "sandbox/exec/event_loop.h"
#include "sandbox/exec/spawn.h"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <functional>
#include <memory>
#include <pwd.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace smcp::exec {

using Clock = std::chrono::steady_clock;

std::string local_home() {
  if (const char* h = std::getenv("HOME"); h && *h) {
    return h;
  }
  if (passwd* pw = ::getpwuid(::getuid())) {
    return pw->pw_dir;
  }
  return "/";
}

ProcessResult run_process(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  ProcessResult result;
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    result.err = std::strerror(errno);
    return result;
  }
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    result.err = std::strerror(errno);
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    return result;
  }
  SpawnSetup setup(/*new_session=*/false);
  setup.stdin_from_null().dup_to(out_pipe[1], 1).dup_to(err_pipe[1], 2);
  std::vector<char*> args;
  for (const auto& a : argv) {
    args.push_back(const_cast<char*>(a.c_str()));
  }
  args.push_back(nullptr);
  pid_t pid = 0;
  int rc = setup.spawn(pid, argv[0].c_str(), args.data(), environ, /*search_path=*/true);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (rc != 0) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    result.err = "cannot run " + argv[0] + ": " + std::strerror(rc);
    return result;
  }
  // Reads both pipes to their end, or kills the program at the deadline.
  const auto deadline = Clock::now() + timeout;
  EventLoop loop;
  struct Stream {
    int fd;
    std::string* sink;
    std::unique_ptr<EventLoop::Watch> watch;
  };
  Stream streams[2] = {{out_pipe[0], &result.out, nullptr}, {err_pipe[0], &result.err, nullptr}};
  int open_streams = 2;
  std::function<void(Stream&)> arm = [&](Stream& s) {
    s.watch->on_readable([&](bool) {
      char buf[16384];
      ssize_t r = ::read(s.fd, buf, sizeof buf);
      if (r > 0) {
        s.sink->append(buf, static_cast<std::size_t>(r));
        arm(s);
      } else if (r < 0 && (errno == EINTR || errno == EAGAIN)) {
        arm(s);
      } else {
        --open_streams; // end of file or an error: this stream is done
      }
    });
  };
  for (auto& s : streams) {
    s.watch = std::make_unique<EventLoop::Watch>(loop, s.fd);
    arm(s);
  }
  bool killed = false;
  while (open_streams > 0) {
    if (Clock::now() >= deadline) {
      ::kill(pid, SIGKILL);
      killed = true;
      break;
    }
    loop.run_until(deadline);
  }
  for (auto& s : streams) {
    s.watch.reset();
    ::close(s.fd);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.status = !killed && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (killed) {
    result.err += "\n(timed out)";
  }
  return result;
}

} // namespace smcp::exec
