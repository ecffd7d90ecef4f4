#include "sandbox/exec/local/supervisor.h"

#include "sandbox/exec/signal_safe.h"

#include <csignal>
#include <initializer_list>
#include <poll.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

namespace smcp::exec {

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

bool wait_for(int fd, int sfd, int timeout_ms) {
  pollfd fds[2] = {{fd, POLLIN, 0}, {sfd, POLLIN, 0}};
  if (::poll(fds, 2, timeout_ms) <= 0) {
    return false;
  }
  if (fds[1].revents & POLLIN) {
    signalfd_siginfo si;
    while (::read(sfd, &si, sizeof si) > 0) {
    }
  }
  return (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0;
}

std::size_t status_record(char* text, int wait_status) {
  std::size_t len;
  if (WIFSIGNALED(wait_status)) {
    len = append_text(text, 0, "signal ");
    len += format_int(text + len, WTERMSIG(wait_status));
  } else {
    len = append_text(text, 0, "exit ");
    len += format_int(text + len, WEXITSTATUS(wait_status));
  }
  text[len++] = '\n';
  return len;
}

} // namespace smcp::exec
