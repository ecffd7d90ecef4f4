#include "sandbox/exec/run_process.h"

#include "sandbox/exec/spawn.h"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
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
  const auto deadline = Clock::now() + timeout;
  int fds[2] = {out_pipe[0], err_pipe[0]};
  std::string* sinks[2] = {&result.out, &result.err};
  bool killed = false;
  char buf[16384];
  while (fds[0] >= 0 || fds[1] >= 0) {
    pollfd p[2];
    int n = 0, map[2];
    for (int i = 0; i < 2; ++i) {
      if (fds[i] >= 0) {
        map[n] = i;
        p[n++] = {fds[i], POLLIN, 0};
      }
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      ::kill(pid, SIGKILL);
      killed = true;
      break;
    }
    int pr = ::poll(p, static_cast<nfds_t>(n), static_cast<int>(std::min<long long>(left, 1000)));
    if (pr < 0 && errno != EINTR) {
      break;
    }
    for (int i = 0; i < n; ++i) {
      if (!p[i].revents) {
        continue;
      }
      ssize_t r = ::read(p[i].fd, buf, sizeof buf);
      if (r > 0) {
        sinks[map[i]]->append(buf, static_cast<std::size_t>(r));
      } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
        ::close(fds[map[i]]);
        fds[map[i]] = -1;
      }
    }
  }
  for (int fd : fds) {
    if (fd >= 0) {
      ::close(fd);
    }
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
