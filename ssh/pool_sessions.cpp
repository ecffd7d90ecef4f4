// The pool's sessions: stepping every channel until nothing moves, losing a session (its calls
// re-queued or failed, the sessions tunnelled through it lost with it), keepalives and silent
// servers, idle sessions, and what to wait for between steps.
#include "ssh/pool_internal.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

namespace smcp::ssh {

using std::chrono::milliseconds;

int SshPool::Core::keepalive_interval(const Connection& c) const {
  int v = chain[static_cast<std::size_t>(c.hop)].server_alive_interval;
  return v > 0 ? v : static_cast<int>(options.limits.default_keepalive.count());
}

std::vector<Connection*> SshPool::Core::all_connections() {
  std::vector<Connection*> out;
  for (auto& j : jumps) {
    if (j) {
      out.push_back(j.get());
    }
  }
  for (auto& t : targets) {
    out.push_back(t.get());
  }
  return out;
}

bool SshPool::Core::step_all() {
  bool any = false;
  for (int pass = 0; pass < 64; ++pass) {
    bool progress = false;
    for (Connection* c : all_connections()) {
      if (c->dead) {
        continue;
      }
      std::string dead_reason;
      for (auto& t : c->tunnels) {
        if (step_tunnel(*c, *t, dead_reason)) {
          progress = true;
        }
        if (!dead_reason.empty()) {
          break;
        }
      }
      if (!dead_reason.empty()) {
        kill_connection(*c, dead_reason);
        continue;
      }
      for (auto it = c->tunnels.begin(); it != c->tunnels.end();) {
        JumpTunnel& t = **it;
        if (t.state == JumpTunnel::State::done && t.peer_fd < 0 && !t.claimed) {
          if (t.carries) {
            t.carries->via = nullptr;
          }
          it = c->tunnels.erase(it);
        } else {
          ++it;
        }
      }
      std::vector<std::shared_ptr<PoolCall>> calls = c->calls;
      for (auto& call : calls) {
        bool call_progress = false;
        std::string reason;
        Outcome out = step_call(*call, call_progress, reason);
        progress = progress || call_progress;
        if (out == Outcome::done) {
          c->calls.erase(std::find(c->calls.begin(), c->calls.end(), call));
          c->last_used = Clock::now();
          again = true;
        } else if (out == Outcome::requeue) {
          c->calls.erase(std::find(c->calls.begin(), c->calls.end(), call));
          requeue(call);
        } else if (out == Outcome::dead) {
          kill_connection(*c, reason);
          break;
        }
      }
    }
    if (!progress) {
      break;
    }
    any = true;
  }
  return any;
}

void SshPool::Core::kill_connection(Connection& c, const std::string& reason) {
  if (c.dead) {
    return;
  }
  c.dead = true;
  const std::string where = c.hop == target_hop ? options.name : "jump host " + hop_name(c.hop);
  note_error("connection to " + where + " lost: " + reason);
  publish();
  spdlog::warn("ssh {}: connection to {} lost: {}", options.name, where, reason);
  for (auto& call : c.calls) {
    call->channel = nullptr; // freed with the session
    if (call->cancel_requested || call->cancel_handled) {
      call->finish(HostError(Kind::io, "cancelled"));
    } else if (!call->exec_sent && call->requeues < k_max_requeues) {
      ++call->requeues;
      requeue(call);
    } else if (call->command.retry_safe && !call->command.on_output && call->retries == 0) {
      ++call->retries;
      requeue(call);
    } else {
      call->finish(HostError(Kind::unreachable, "connection to " + options.name + " lost while running " +
                                                    call->command.what +
                                                    "; the command may or may not have completed (" + reason + ")"));
    }
  }
  c.calls.clear();
  // Sessions carried by this one's forwarding channels die with it.
  for (auto& t : c.tunnels) {
    for (Connection* other : all_connections()) {
      if (other->via == t.get()) {
        other->via = nullptr;
        kill_connection(*other, "jump host " + hop_name(c.hop) + " connection lost: " + reason);
      }
    }
    for (auto& r : connects) {
      if (r->tunnel == t.get()) {
        r->tunnel = nullptr;
        if (r->stage == ConnectRequest::Stage::opening_channel) { // a handshaking worker reports its own failure
          r->stage = ConnectRequest::Stage::waiting;
          r->not_before = Clock::now();
        }
      }
    }
    release_tunnel(*t);
  }
  c.tunnels.clear();
  again = true;
}

void SshPool::Core::close_connection(Connection& c, bool polite) {
  c.watch.reset(); // before the socket closes
  free_session(c.session, c.fd, polite);
  c.session = nullptr;
  if (c.fd >= 0) {
    ::close(c.fd);
    c.fd = -1;
  }
  if (c.via) {
    c.via->abandon = true;
    c.via->carries = nullptr;
    c.via = nullptr;
  }
}

void SshPool::Core::sweep_dead() {
  for (auto& j : jumps) {
    if (j && j->dead) {
      close_connection(*j, false);
      j.reset();
    }
  }
  for (auto it = targets.begin(); it != targets.end();) {
    if ((*it)->dead) {
      close_connection(**it, false);
      it = targets.erase(it);
    } else {
      ++it;
    }
  }
  // Calls that were re-queued after their session died need a session again.
  if (!queue.empty()) {
    again = true;
  }
}

void SshPool::Core::timers() {
  const auto now = Clock::now();
  const std::int64_t now_ms = steady_ms();
  for (Connection* c : all_connections()) {
    if (c->dead) {
      continue;
    }
    const int interval = keepalive_interval(*c);
    if (now >= c->next_keepalive) {
      if (!c->busy() && c->idle_rx_pending) {
        int avail = 0;
        if (::ioctl(c->fd, FIONREAD, &avail) == 0 && avail != c->idle_rx_seen) {
          c->idle_rx_seen = avail;
          c->last_rx->store(now_ms);
        }
      }
      int next = 0;
      if (!send_keepalive(c->session, next)) {
        kill_connection(*c, "keepalive failed: " + session_error(c->session));
        continue;
      }
      c->next_keepalive = now + std::chrono::seconds(std::max(1, next > 0 ? next : interval));
    }
    const int count_max = std::max(1, chain[static_cast<std::size_t>(c->hop)].server_alive_count_max);
    const std::int64_t silent = now_ms - c->last_rx->load();
    if (silent > static_cast<std::int64_t>(interval) * (count_max + 1) * 1000) {
      kill_connection(*c, "no answer to " + std::to_string(count_max) + " keepalives in " +
                              std::to_string(silent / 1000) + " s (ServerAliveInterval " + std::to_string(interval) +
                              ", ServerAliveCountMax " + std::to_string(count_max) + ")");
    }
  }
  // Idle sessions: the most recently used one stays longer.
  Connection* keep = nullptr;
  for (auto& c : targets) {
    if (!c->dead && !c->busy() && (!keep || c->last_used > keep->last_used)) {
      keep = c.get();
    }
  }
  for (auto& c : targets) {
    if (c->dead || c->busy()) {
      continue;
    }
    auto idle = now - c->last_used;
    auto limit = c.get() == keep ? options.limits.last_session_idle_timeout : options.limits.idle_timeout;
    if (idle >= limit) {
      spdlog::debug("ssh {}: closing session {} (idle)", options.name, c->id);
      // Only background calls (a helper's channel) are left: they end with their session.
      for (auto& call : c->calls) {
        call->channel = nullptr; // freed with the session
        call->finish(HostError(Kind::io, "the session closed (idle)"));
      }
      c->calls.clear();
      close_connection(*c, true);
      c->dead = true;
    }
  }
  for (auto& j : jumps) {
    if (j && !j->dead && !j->busy() && now - j->last_used >= options.limits.idle_timeout) {
      close_connection(*j, true);
      j->dead = true;
    }
    if (j && j->busy()) {
      j->last_used = now;
    }
  }
}

// Arms the waits that end the pool thread's sleep: a busy session's socket in the directions
// libssh2 is blocked on, a tunnel's socket while bytes can move, an idle session's socket (readable
// means the server closed it or answered a keepalive), and the timer for the nearest deadline.
void SshPool::Core::arm_waits() {
  const auto now = Clock::now();
  auto next = now + std::chrono::seconds(1);
  auto ready = [this](bool) { wake(); };
  for (Connection* c : all_connections()) {
    if (c->dead || !c->watch) {
      continue;
    }
    next = std::min(next, c->next_keepalive);
    if (!c->busy()) {
      if (!c->idle_rx_pending) {
        c->watch->on_readable([this, c](bool) { on_socket_ready(*c); });
      }
      continue;
    }
    const BlockedOn blocked = blocked_on(c->session);
    if (blocked.write) {
      c->watch->on_writable(ready);
    }
    if (blocked.read || !blocked.write) {
      c->watch->on_readable([this, c](bool) { on_socket_ready(*c); });
    }
    for (auto& t : c->tunnels) {
      if (t->state == JumpTunnel::State::open && t->watch) {
        if (!t->socket_eof && t->to_channel.size() < k_tunnel_buffer) {
          t->watch->on_readable(ready);
        }
        if (!t->to_socket.empty()) {
          t->watch->on_writable(ready);
        }
      }
      if (t->state == JumpTunnel::State::closing) {
        next = std::min(next, now + milliseconds(20));
      }
    }
    for (auto& call : c->calls) {
      if (call->state == PoolCall::State::closing || call->state == PoolCall::State::freeing) {
        next = std::min(next, now + milliseconds(50));
      }
    }
  }
  for (auto& r : connects) {
    if (r->stage == ConnectRequest::Stage::waiting) {
      next = std::min(next, r->not_before);
    }
  }
  // A pending expiry no later than `next` stays: waking early only costs a tick.
  if (!timer.pending() || next < timer_expiry) {
    timer_expiry = next;
    timer.at(next, [this] { wake(); });
  }
}

// A session's socket is ready. For an idle session, see whether the server closed it or sent
// something (a keepalive answer, noted for the silence check; libssh2 reads it when the session
// is next used).
void SshPool::Core::on_socket_ready(Connection& c) {
  if (!c.dead && !c.busy() && !c.idle_rx_pending) {
    char b;
    ssize_t n = ::recv(c.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) {
      kill_connection(c, "the server closed the connection");
    } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      kill_connection(c, std::strerror(errno));
    } else if (n > 0) {
      c.idle_rx_pending = true;
      c.last_rx->store(steady_ms());
      int avail = 0;
      if (::ioctl(c.fd, FIONREAD, &avail) == 0) {
        c.idle_rx_seen = avail;
      }
    }
  }
  wake();
}

} // namespace smcp::ssh
