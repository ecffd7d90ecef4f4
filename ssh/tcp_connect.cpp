// The TCP connection under a session: every address of the name in turn, each within the time
// left of the timeout.
#include "ssh/session_internal.h"

#include "sandbox/exec/event_loop.h"

#include <cerrno>
#include <cstring>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

namespace smcp::ssh {

namespace {

constexpr int k_deadline_passed = -2;

// Waits until a non-blocking connect() on `fd` finishes or `deadline` passes: 0 when connected,
// -1 with errno set when it failed, k_deadline_passed (errno ETIMEDOUT) when the time ran out.
int finish_connect(int fd, Clock::time_point deadline) {
  bool writable = false;
  if (Clock::now() < deadline) {
    exec::EventLoop loop;
    exec::EventLoop::Watch watch(loop, fd);
    watch.on_writable([&](bool) { writable = true; });
    loop.run_until(deadline);
  }
  if (!writable) {
    errno = ETIMEDOUT;
    return k_deadline_passed;
  }
  int err = 0;
  socklen_t elen = sizeof err;
  ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen);
  errno = err;
  return err == 0 ? 0 : -1;
}

} // namespace

int tcp_connect(const std::string& host, int port, std::chrono::milliseconds timeout, SetupFailure& failure) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const std::string port_text = std::to_string(port);
  int gai = ::getaddrinfo(host.c_str(), port_text.c_str(), &hints, &res);
  if (gai != 0) {
    failure = {Kind::unreachable, "cannot resolve " + host + ": " + ::gai_strerror(gai), false};
    return -1;
  }
  const auto deadline = Clock::now() + timeout;
  std::string last = "no address";
  bool timed_out = false;
  int result = -1;
  for (addrinfo* ai = res; ai && result < 0; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      last = std::strerror(errno);
      continue;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    int rc = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      rc = finish_connect(fd, deadline);
      timed_out = timed_out || rc == k_deadline_passed;
    }
    if (rc == 0) {
      result = fd;
    } else {
      last = std::strerror(errno);
      ::close(fd);
    }
  }
  ::freeaddrinfo(res);
  if (result < 0) {
    failure = {Kind::unreachable,
               "cannot connect to " + host + " port " + port_text + ": " +
                   (timed_out ? "timed out after " + std::to_string(timeout.count() / 1000) + " s" : last),
               false};
  }
  return result;
}

} // namespace smcp::ssh
