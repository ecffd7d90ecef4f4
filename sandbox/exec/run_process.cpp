#include "sandbox/exec/run_process.h"

#include "sandbox/exec/event_loop.h"
#include "sandbox/exec/fd.h"
#include "sandbox/exec/pipe_reader.h"
#include "sandbox/exec/spawn.h"

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
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
  Pipe out, err;
  if (!open_pipe(out) || !open_pipe(err)) {
    result.err = std::strerror(errno);
    return result;
  }
  SpawnSetup setup(/*new_session=*/false);
  setup.stdin_from_null().dup_to(out.write.get(), 1).dup_to(err.write.get(), 2);
  CStrings args(argv);
  pid_t pid = 0;
  int rc = setup.spawn(pid, argv[0].c_str(), args.get(), environ, /*search_path=*/true);
  out.write.reset();
  err.write.reset();
  if (rc != 0) {
    result.err = "cannot run " + argv[0] + ": " + std::strerror(rc);
    return result;
  }
  // Reads both pipes to their end, or kills the program at the deadline.
  const auto deadline = Clock::now() + timeout;
  bool killed = false;
  {
    EventLoop loop;
    PipeReader out_reader(loop, std::move(out.read), [&](std::string_view d) { result.out.append(d); });
    PipeReader err_reader(loop, std::move(err.read), [&](std::string_view d) { result.err.append(d); });
    while (out_reader.open() || err_reader.open()) {
      if (Clock::now() >= deadline) {
        ::kill(pid, SIGKILL);
        killed = true;
        break;
      }
      loop.run_until(deadline);
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
