// The pool's channels, stepped without blocking on the pool thread: a call's exec channel (open,
// exec, input and output, close with the exit status), and a tunnel's direct-tcpip channel, whose
// bytes are copied to and from a socketpair.
#include "ssh/pool_internal.h"

#include <libssh2.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sys/socket.h>
#include <unistd.h>

namespace smcp::ssh {

using Outcome = SshPool::Core::Outcome;

bool channel_level(int rc) {
  switch (rc) {
  case LIBSSH2_ERROR_CHANNEL_OUTOFORDER:
  case LIBSSH2_ERROR_CHANNEL_FAILURE:
  case LIBSSH2_ERROR_CHANNEL_REQUEST_DENIED:
  case LIBSSH2_ERROR_CHANNEL_UNKNOWN:
  case LIBSSH2_ERROR_CHANNEL_WINDOW_EXCEEDED:
  case LIBSSH2_ERROR_CHANNEL_PACKET_EXCEEDED:
  case LIBSSH2_ERROR_CHANNEL_CLOSED:
  case LIBSSH2_ERROR_CHANNEL_EOF_SENT:
  case LIBSSH2_ERROR_CHANNEL_WINDOW_FULL:
  case LIBSSH2_ERROR_BAD_USE:
  case LIBSSH2_ERROR_INVAL:
    return true;
  default:
    return false;
  }
}

namespace {

// The session of a call is unusable: why, for kill_connection.
Outcome session_failed(LIBSSH2_SESSION* s, const char* what, std::string& reason) {
  reason = std::string(what) + ": " + session_error(s);
  return Outcome::dead;
}

int open_channels(const Connection& c) {
  return static_cast<int>(
      std::count_if(c.calls.begin(), c.calls.end(), [](const auto& call) { return call->channel != nullptr; }));
}

void start_freeing(PoolCall& call) {
  call.state = PoolCall::State::freeing;
  call.close_started = Clock::now();
}

// A call cancelled while its open was under way: now that the channel is there, it is closed
// (finished as cancelled) instead of used.
bool cancelled_while_opening(PoolCall& call) {
  if (!call.cancel_requested) {
    return false;
  }
  call.cancel_handled = true;
  start_freeing(call);
  return true;
}

} // namespace

// ---- a call ----

Outcome SshPool::Core::step_call(PoolCall& call, bool& progress, std::string& reason) {
  if (call.cancel_requested && !call.cancel_handled) {
    if (!call.channel && call.open_pending) {
      // libssh2 (1.10) keeps a half-done open in the session, and the session's next open would
      // be handed this channel: the open is finished first, then the channel is closed (below).
    } else {
      call.cancel_handled = true;
      if (!call.channel) {
        call.finish(HostError(Kind::io, "cancelled"));
        return Outcome::done;
      }
      start_freeing(call);
      progress = true;
    }
  }
  for (;;) {
    std::optional<Outcome> out;
    switch (call.state) {
    case PoolCall::State::queued:
      return Outcome::running;
    case PoolCall::State::opening:
      out = open_call_channel(call, progress, reason);
      break;
    case PoolCall::State::starting:
      out = start_command(call, progress, reason);
      break;
    case PoolCall::State::running:
      out = exchange_io(call, progress, reason);
      break;
    case PoolCall::State::closing:
      out = close_call_channel(call, progress, reason);
      break;
    case PoolCall::State::freeing:
      return free_call_channel(call);
    }
    if (out) {
      return *out;
    }
  }
}

std::optional<Outcome> SshPool::Core::open_call_channel(PoolCall& call, bool& progress, std::string& reason) {
  Connection& c = *call.connection;
  LIBSSH2_SESSION* s = c.session;
  const std::string& socket = call.command.stream_socket;
  if (!socket.empty()) {
    return open_stream_channel(call, progress, reason);
  }
  call.channel = libssh2_channel_open_session(s);
  call.open_pending = false;
  if (!call.channel) {
    int e = libssh2_session_last_errno(s);
    if (e == LIBSSH2_ERROR_EAGAIN) {
      call.open_pending = true;
      return Outcome::running;
    }
    if (e != LIBSSH2_ERROR_CHANNEL_FAILURE) {
      return session_failed(s, "cannot open a channel", reason);
    }
    // The server refuses more channels on this session (MaxSessions): remember its limit. (A
    // channel just closed may still count on the server for a moment: never go below the most
    // channels it ever accepted at once on one session.)
    int limit = std::max({1, open_channels(c), peak_channels});
    if (limit < c.max_channels) {
      if (learned_channels != limit) {
        spdlog::info("ssh {}: the server allows {} channels per session (MaxSessions); using that", options.name,
                     limit);
      }
      c.max_channels = limit;
      learned_channels = limit;
    }
    if (++call.requeues > k_max_requeues) {
      call.finish(HostError(Kind::refused, options.name + " refused to open a channel: " + session_error(s)));
      return Outcome::done;
    }
    return Outcome::requeue;
  }
  progress = true;
  peak_channels = std::max(peak_channels, open_channels(c));
  if (cancelled_while_opening(call)) {
    return std::nullopt;
  }
  call.state = PoolCall::State::starting;
  return std::nullopt;
}

// A direct-streamlocal@openssh.com channel (RFC 4254 7.2 style, OpenSSH's PROTOCOL 2.4): sshd
// connects, as the user, to a Unix socket on the host. libssh2 1.10 has no call for it, so the
// request is built here: string socket path, string reserved, uint32 reserved.
std::optional<Outcome> SshPool::Core::open_stream_channel(PoolCall& call, bool& progress, std::string& reason) {
  LIBSSH2_SESSION* s = call.connection->session;
  const std::string& path = call.command.stream_socket;
  std::string message;
  auto put_u32 = [&message](std::uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) {
      message.push_back(static_cast<char>((v >> shift) & 0xFF));
    }
  };
  put_u32(static_cast<std::uint32_t>(path.size()));
  message += path;
  put_u32(0);
  put_u32(0);
  static constexpr char k_type[] = "direct-streamlocal@openssh.com";
  call.channel = libssh2_channel_open_ex(s, k_type, sizeof k_type - 1, LIBSSH2_CHANNEL_WINDOW_DEFAULT,
                                         LIBSSH2_CHANNEL_PACKET_DEFAULT, message.data(),
                                         static_cast<unsigned int>(message.size()));
  call.open_pending = false;
  if (!call.channel) {
    int e = libssh2_session_last_errno(s);
    if (e == LIBSSH2_ERROR_EAGAIN) {
      call.open_pending = true;
      return Outcome::running;
    }
    if (e != LIBSSH2_ERROR_CHANNEL_FAILURE) {
      return session_failed(s, "cannot open a stream channel", reason);
    }
    call.finish(HostError(Kind::refused, options.name + " refused a stream to " + path + ": " + session_error(s)));
    return Outcome::done;
  }
  call.exec_sent = true;
  progress = true;
  if (cancelled_while_opening(call)) {
    return std::nullopt;
  }
  last_latency = std::chrono::duration<double, std::milli>(Clock::now() - call.open_started).count();
  call.state = PoolCall::State::running;
  call.opened = true;
  return std::nullopt;
}

std::optional<Outcome> SshPool::Core::start_command(PoolCall& call, bool& progress, std::string& reason) {
  LIBSSH2_SESSION* s = call.connection->session;
  call.exec_sent = true;
  int rc = libssh2_channel_exec(call.channel, call.command.exec.c_str());
  if (rc == LIBSSH2_ERROR_EAGAIN) {
    return Outcome::running;
  }
  if (rc < 0 && rc != LIBSSH2_ERROR_CHANNEL_REQUEST_DENIED && !channel_level(rc)) {
    return session_failed(s, "exec request failed", reason);
  }
  progress = true;
  if (rc == LIBSSH2_ERROR_CHANNEL_REQUEST_DENIED) {
    call.finish(HostError(Kind::refused, options.name + " refused to run a command (exec request denied)"));
    start_freeing(call);
    call.cancel_handled = true;
  } else if (rc < 0) {
    call.finish(HostError(Kind::io, "exec request failed on " + options.name + ": " + session_error(s)));
    start_freeing(call);
  } else {
    last_latency = std::chrono::duration<double, std::milli>(Clock::now() - call.open_started).count();
    call.state = PoolCall::State::running;
    call.opened = true;
  }
  return std::nullopt;
}

std::optional<Outcome> SshPool::Core::exchange_io(PoolCall& call, bool& progress, std::string& reason) {
  LIBSSH2_SESSION* s = call.connection->session;
  char buf[64 * 1024];
  bool moved = false;
  for (int stream : {0, SSH_EXTENDED_DATA_STDERR}) {
    for (;;) {
      ssize_t n = libssh2_channel_read_ex(call.channel, stream, buf, sizeof buf);
      if (n > 0) {
        call.deliver(stream == 0 ? exec::Stream::out : exec::Stream::err, buf, static_cast<std::size_t>(n));
        moved = true;
        continue;
      }
      if (n == 0 || n == LIBSSH2_ERROR_EAGAIN) {
        break;
      }
      if (!channel_level(static_cast<int>(n))) {
        return session_failed(s, "reading output", reason);
      }
      break;
    }
  }
  call.take_more_input();
  const std::string& input = call.command.input;
  if (call.written < input.size()) {
    ssize_t w = libssh2_channel_write_ex(call.channel, 0, input.data() + call.written, input.size() - call.written);
    if (w > 0) {
      call.written += static_cast<std::size_t>(w);
      moved = true;
    } else if (w != LIBSSH2_ERROR_EAGAIN && w < 0) {
      if (!channel_level(static_cast<int>(w))) {
        return session_failed(s, "writing input", reason);
      }
      call.written = input.size(); // the command closed its input; stop writing
    }
  }
  if (call.written >= input.size() && !call.eof_sent && !call.command.keep_input_open) {
    int rc = libssh2_channel_send_eof(call.channel);
    if (rc == 0 || (rc < 0 && rc != LIBSSH2_ERROR_EAGAIN && channel_level(rc))) {
      call.eof_sent = true;
      moved = true;
    } else if (rc < 0 && rc != LIBSSH2_ERROR_EAGAIN) {
      return session_failed(s, "sending end of input", reason);
    }
  }
  if (moved) {
    progress = true;
  }
  if (libssh2_channel_eof(call.channel)) {
    call.state = PoolCall::State::closing;
    call.close_started = Clock::now();
    progress = true;
    return std::nullopt;
  }
  return Outcome::running;
}

std::optional<Outcome> SshPool::Core::close_call_channel(PoolCall& call, bool& progress, std::string& reason) {
  LIBSSH2_SESSION* s = call.connection->session;
  int rc = libssh2_channel_close(call.channel);
  if (rc == LIBSSH2_ERROR_EAGAIN) {
    if (Clock::now() - call.close_started > k_close_timeout) {
      call.state = PoolCall::State::freeing;
      return std::nullopt;
    }
    return Outcome::running;
  }
  if (rc < 0 && !channel_level(rc)) {
    return session_failed(s, "closing a channel", reason);
  }
  char* sig = nullptr;
  std::size_t sig_len = 0;
  libssh2_channel_get_exit_signal(call.channel, &sig, &sig_len, nullptr, nullptr, nullptr, nullptr);
  if (sig && sig_len > 0) {
    std::string name(sig, sig_len);
    call.collected.exit_signal = exec::parse_signal(name).value_or(0);
  }
  if (sig) {
    libssh2_free(s, sig);
  }
  if (!call.collected.exit_signal) {
    call.collected.exit_status = libssh2_channel_get_exit_status(call.channel);
  }
  call.state = PoolCall::State::freeing;
  progress = true;
  return std::nullopt;
}

Outcome SshPool::Core::free_call_channel(PoolCall& call) {
  int rc = libssh2_channel_free(call.channel);
  if (rc == LIBSSH2_ERROR_EAGAIN) {
    if (Clock::now() - call.close_started <= k_close_timeout) {
      return Outcome::running;
    }
    // The server never confirmed the close: leave the channel to the session's end.
    spdlog::debug("ssh {}: a channel did not close in time", options.name);
  }
  call.channel = nullptr;
  if (call.cancel_handled) {
    call.finish(HostError(Kind::io, "cancelled"));
  } else {
    call.finish(std::nullopt);
  }
  return Outcome::done;
}

// ---- a tunnel ----

void release_tunnel(JumpTunnel& t) {
  t.watch.reset(); // before the socket closes
  if (t.fd >= 0) {
    ::close(t.fd);
    t.fd = -1;
  }
  if (t.peer_fd >= 0) {
    ::close(t.peer_fd);
    t.peer_fd = -1;
  }
  t.channel = nullptr;
}

bool SshPool::Core::step_tunnel(Connection& c, JumpTunnel& t, std::string& dead_reason) {
  bool progress = false;
  if (t.state == JumpTunnel::State::opening) {
    progress = open_tunnel(c, t, dead_reason);
    if (t.state != JumpTunnel::State::open) {
      return progress;
    }
  }
  if (t.state == JumpTunnel::State::open) {
    progress = forward_to_socket(c, t, dead_reason) || progress;
    if (!dead_reason.empty()) {
      return progress;
    }
    progress = forward_to_channel(c, t, dead_reason) || progress;
    if (!dead_reason.empty()) {
      return progress;
    }
    if (t.abandon || (t.socket_eof && t.channel_eof && t.to_socket.empty() && t.to_channel.empty())) {
      t.state = JumpTunnel::State::closing;
      t.close_started = Clock::now();
      progress = true;
    }
  }
  if (t.state == JumpTunnel::State::closing) {
    progress = close_tunnel(t) || progress;
  }
  return progress;
}

bool SshPool::Core::open_tunnel(Connection& c, JumpTunnel& t, std::string& dead_reason) {
  LIBSSH2_SESSION* s = c.session;
  if (t.abandon) {
    t.state = JumpTunnel::State::done;
    return true;
  }
  t.channel = libssh2_channel_direct_tcpip_ex(s, t.host.c_str(), t.port, "127.0.0.1", 22);
  if (!t.channel) {
    int e = libssh2_session_last_errno(s);
    if (e == LIBSSH2_ERROR_EAGAIN) {
      return false;
    }
    if (!channel_level(e)) {
      dead_reason = "opening a forwarding channel: " + session_error(s);
      return false;
    }
    t.error = session_error(s);
    t.state = JumpTunnel::State::done;
    return true;
  }
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) {
    t.error = std::string("socketpair: ") + std::strerror(errno);
    t.state = JumpTunnel::State::closing;
    t.close_started = Clock::now();
    return true;
  }
  t.fd = sv[0];
  t.peer_fd = sv[1];
  t.watch = std::make_unique<exec::EventLoop::Watch>(loop, t.fd);
  t.state = JumpTunnel::State::open;
  return true;
}

// Channel to socket: reads the channel, sends to our end, shuts its write side at the channel's end.
bool SshPool::Core::forward_to_socket(Connection& c, JumpTunnel& t, std::string& dead_reason) {
  bool progress = false;
  char buf[32 * 1024];
  while (t.to_socket.size() < k_tunnel_buffer && !t.channel_eof) {
    ssize_t n = libssh2_channel_read(t.channel, buf, sizeof buf);
    if (n > 0) {
      t.to_socket.append(buf, static_cast<std::size_t>(n));
      progress = true;
      continue;
    }
    if (n == LIBSSH2_ERROR_EAGAIN) {
      break;
    }
    if (n < 0 && !channel_level(static_cast<int>(n))) {
      dead_reason = "forwarding for " + t.host + ": " + session_error(c.session);
      return progress;
    }
    if (n < 0 || libssh2_channel_eof(t.channel)) {
      t.channel_eof = true;
      progress = true;
    }
    break;
  }
  while (!t.to_socket.empty() && t.fd >= 0) {
    ssize_t w = ::send(t.fd, t.to_socket.data(), t.to_socket.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) {
      t.to_socket.erase(0, static_cast<std::size_t>(w));
      progress = true;
    } else {
      if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        t.abandon = true;
      }
      break;
    }
  }
  if (t.channel_eof && t.to_socket.empty() && !t.socket_shut && t.fd >= 0) {
    ::shutdown(t.fd, SHUT_WR);
    t.socket_shut = true;
    progress = true;
  }
  return progress;
}

// Socket to channel: reads our end, writes the channel, sends EOF at the socket's end.
bool SshPool::Core::forward_to_channel(Connection& c, JumpTunnel& t, std::string& dead_reason) {
  bool progress = false;
  char buf[32 * 1024];
  while (t.to_channel.size() < k_tunnel_buffer && !t.socket_eof && t.fd >= 0) {
    ssize_t r = ::recv(t.fd, buf, sizeof buf, MSG_DONTWAIT);
    if (r > 0) {
      t.to_channel.append(buf, static_cast<std::size_t>(r));
      progress = true;
      continue;
    }
    if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      t.socket_eof = true;
      progress = true;
    }
    break;
  }
  while (!t.to_channel.empty()) {
    ssize_t w = libssh2_channel_write(t.channel, t.to_channel.data(), t.to_channel.size());
    if (w > 0) {
      t.to_channel.erase(0, static_cast<std::size_t>(w));
      progress = true;
      continue;
    }
    if (w == LIBSSH2_ERROR_EAGAIN) {
      break;
    }
    if (!channel_level(static_cast<int>(w))) {
      dead_reason = "forwarding for " + t.host + ": " + session_error(c.session);
      return progress;
    }
    t.abandon = true;
    break;
  }
  if (t.socket_eof && t.to_channel.empty() && !t.channel_eof_sent) {
    int rc = libssh2_channel_send_eof(t.channel);
    if (rc != LIBSSH2_ERROR_EAGAIN) {
      t.channel_eof_sent = true;
      progress = true;
    }
  }
  return progress;
}

bool SshPool::Core::close_tunnel(JumpTunnel& t) {
  t.watch.reset(); // before the socket closes
  if (t.fd >= 0) {
    ::close(t.fd);
    t.fd = -1;
  }
  if (t.channel) {
    int rc = libssh2_channel_free(t.channel);
    if (rc == LIBSSH2_ERROR_EAGAIN && Clock::now() - t.close_started < k_close_timeout) {
      return false;
    }
    t.channel = nullptr;
  }
  if (t.peer_fd >= 0) {
    ::close(t.peer_fd);
    t.peer_fd = -1;
  }
  t.state = JumpTunnel::State::done;
  return true;
}

} // namespace smcp::ssh
