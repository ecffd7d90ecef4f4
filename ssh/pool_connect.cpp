// How many sessions the pool wants, and opening them: the TCP connection (or a tunnel through
// the jump host's session), handshake, host key check and authentication on a short-lived worker
// thread, a few at a time, with retries of handshakes the server dropped.
#include "ssh/pool_internal.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <unistd.h>

namespace smcp::ssh {

using std::chrono::milliseconds;

void SshPool::Core::schedule() {
  const auto& lim = options.limits;
  int active = 0, ready = 0;
  for (auto& c : targets) {
    if (!c->dead) {
      active += static_cast<int>(c->calls.size());
      ++ready;
    }
  }
  while (!queue.empty() && active < lim.max_concurrency) {
    Connection* best = nullptr;
    for (auto& c : targets) {
      if (!c->dead && static_cast<int>(c->calls.size()) < c->max_channels &&
          (!best || c->calls.size() < best->calls.size())) {
        best = c.get();
      }
    }
    if (!best) {
      break;
    }
    auto call = queue.front();
    queue.pop_front();
    call->connection = best;
    call->state = PoolCall::State::opening;
    call->open_started = Clock::now();
    best->calls.push_back(call);
    best->idle_rx_pending = false;
    best->last_used = Clock::now();
    ++active;
    ++n_calls;
    again = true;
  }
  // More sessions: for calls that found no free channel, or when every session is busy.
  int pending = 0;
  for (auto& r : connects) {
    if (r->hop == target_hop) {
      ++pending;
    }
  }
  int want = 0;
  if (!queue.empty() && active < lim.max_concurrency) {
    want = std::max(1, static_cast<int>((queue.size() + static_cast<std::size_t>(lim.max_channels_per_session) - 1) /
                                        static_cast<std::size_t>(lim.max_channels_per_session)));
  } else if (ready > 0) {
    bool all_busy = true;
    for (auto& c : targets) {
      if (!c->dead && static_cast<int>(c->calls.size()) < std::min(lim.busy_channels, c->max_channels)) {
        all_busy = false;
      }
    }
    want = all_busy ? 1 : 0;
  }
  want = std::min(want, lim.max_sessions - ready);
  for (int i = pending; i < want; ++i) {
    request_connect(target_hop);
  }
}

void SshPool::Core::request_connect(int hop) {
  auto req = std::make_unique<ConnectRequest>();
  req->id = next_id++;
  req->hop = hop;
  req->not_before = Clock::now();
  connects.push_back(std::move(req));
  again = true;
}

void SshPool::Core::advance_connects() {
  const auto now = Clock::now();
  std::vector<std::pair<int, SetupFailure>> failed;
  for (std::size_t i = 0; i < connects.size(); ++i) {
    ConnectRequest& req = *connects[i];
    if (req.stage == ConnectRequest::Stage::waiting && now >= req.not_before) {
      if (req.hop == 0) {
        if (workers < options.limits.max_handshakes) {
          spawn_worker(req, -1);
        }
        continue;
      }
      Connection* jump = jumps[static_cast<std::size_t>(req.hop - 1)].get();
      if (jump && !jump->dead) {
        auto tunnel = std::make_unique<JumpTunnel>();
        tunnel->host = chain[static_cast<std::size_t>(req.hop)].hostname;
        tunnel->port = chain[static_cast<std::size_t>(req.hop)].port;
        tunnel->claimed = true;
        req.tunnel = tunnel.get();
        jump->tunnels.push_back(std::move(tunnel));
        req.stage = ConnectRequest::Stage::opening_channel;
        again = true;
      } else {
        bool pending =
            std::any_of(connects.begin(), connects.end(), [&](const auto& r) { return r->hop == req.hop - 1; });
        if (!pending) {
          request_connect(req.hop - 1);
        }
      }
      continue;
    }
    if (req.stage == ConnectRequest::Stage::opening_channel && req.tunnel) {
      JumpTunnel& t = *req.tunnel;
      if (t.state == JumpTunnel::State::open && t.peer_fd >= 0) {
        if (workers < options.limits.max_handshakes) {
          int fd = std::exchange(t.peer_fd, -1);
          spawn_worker(req, fd);
          continue;
        }
      } else if (t.state == JumpTunnel::State::done || t.state == JumpTunnel::State::closing) {
        SetupFailure f{Kind::unreachable,
                       "cannot reach " + hop_name(req.hop) + " (" + t.host + ":" + std::to_string(t.port) +
                           ") through jump host " + hop_name(req.hop - 1) + ": " +
                           (t.error.empty() ? "the channel closed" : t.error),
                       false};
        t.claimed = false;
        req.tunnel = nullptr;
        failed.emplace_back(req.id, f);
      }
    }
  }
  for (auto& [id, f] : failed) {
    // (named capture: clang 14 cannot capture a structured binding)
    auto it = std::find_if(connects.begin(), connects.end(), [&id = id](const auto& r) { return r->id == id; });
    if (it != connects.end()) {
      connect_failed(**it, f);
    }
  }
}

void SshPool::Core::spawn_worker(ConnectRequest& req, int fd) {
  req.stage = ConnectRequest::Stage::handshaking;
  ++workers;
  const SshTarget& t = chain[static_cast<std::size_t>(req.hop)];
  SetupOptions so;
  so.host_name = t.alias == options.name ? options.name : t.alias + " (jump host of " + options.name + ")";
  so.policy = options.host_key_policy;
  so.passphrase = options.passphrase;
  auto connect_timeout = t.connect_timeout.count() > 0
                             ? std::chrono::duration_cast<milliseconds>(t.connect_timeout)
                             : std::chrono::duration_cast<milliseconds>(options.limits.default_connect_timeout);
  so.timeout = connect_timeout + std::chrono::seconds(15);
  so.keepalive_interval_s = t.server_alive_interval > 0 ? t.server_alive_interval
                                                        : static_cast<int>(options.limits.default_keepalive.count());
  auto last_rx = std::make_unique<std::atomic<std::int64_t>>(steady_ms());
  so.last_rx_ms = last_rx.get();
  std::thread([self = shared_from_this(), id = req.id, fd, t, so, connect_timeout,
               last_rx = std::move(last_rx)]() mutable {
    block_sigpipe();
    ConnectResult result;
    result.request_id = id;
    SetupFailure failure;
    int sock = fd >= 0 ? fd : tcp_connect(t.hostname, t.port, connect_timeout, failure);
    if (sock < 0) {
      result.failure = failure;
    } else {
      SetupResult r = setup_session(sock, t, so);
      result.session = r.session;
      result.failure = r.failure;
    }
    result.fd = sock;
    result.last_rx = std::move(last_rx);
    self->post_result(std::move(result));
  }).detach();
}

void SshPool::Core::handle_result(ConnectResult& result) {
  --workers;
  auto it = std::find_if(connects.begin(), connects.end(), [&](const auto& r) { return r->id == result.request_id; });
  if (it == connects.end()) { // cannot happen; do not leak
    discard(result);
    return;
  }
  ConnectRequest& req = **it;
  JumpTunnel* tunnel = req.tunnel;
  if (result.failure) {
    if (result.fd >= 0) {
      ::close(result.fd);
    }
    if (tunnel) {
      tunnel->abandon = true;
      tunnel->claimed = false;
      req.tunnel = nullptr;
    }
    connect_failed(req, *result.failure);
    again = true;
    return;
  }
  auto c = std::make_unique<Connection>();
  c->id = next_id++;
  c->hop = req.hop;
  c->session = result.session;
  c->fd = result.fd;
  c->watch = std::make_unique<exec::EventLoop::Watch>(loop, c->fd);
  c->last_rx = std::move(result.last_rx);
  c->max_channels = learned_channels > 0 ? learned_channels : options.limits.max_channels_per_session;
  c->via = tunnel;
  if (tunnel) {
    tunnel->claimed = false;
    tunnel->carries = c.get();
  }
  c->last_used = Clock::now();
  c->next_keepalive = Clock::now() + std::chrono::seconds(keepalive_interval(*c));
  spdlog::debug("ssh {}: session {} to {} ready", options.name, c->id, hop_name(c->hop));
  if (req.hop < target_hop) {
    jumps[static_cast<std::size_t>(req.hop)] = std::move(c);
  } else {
    targets.push_back(std::move(c));
    ++n_connects;
    ever_connected = true;
    last_connect_failed = false;
  }
  connects.erase(it);
  again = true;
}

void SshPool::Core::connect_failed(ConnectRequest& req, const SetupFailure& failure) {
  if (failure.retryable && req.attempt < options.limits.handshake_attempts) {
    int delay = 50 * (1 << std::min(req.attempt, 6)) + static_cast<int>(rng() % 100);
    spdlog::info("ssh {}: handshake attempt {} failed ({}); retrying in {} ms", options.name, req.attempt,
                 failure.message, delay);
    ++req.attempt;
    req.stage = ConnectRequest::Stage::waiting;
    req.not_before = Clock::now() + milliseconds(delay);
    return;
  }
  const int hop = req.hop;
  std::string message = failure.message;
  if (failure.retryable) {
    message += " (after " + std::to_string(req.attempt) + " attempts)";
  }
  note_error(message);
  spdlog::warn("ssh {}: {}", options.name, message);
  auto it = std::find_if(connects.begin(), connects.end(), [&](const auto& r) { return r.get() == &req; });
  if (it != connects.end()) {
    connects.erase(it);
  }
  if (hop < target_hop) {
    // Requests waiting for this jump host fail with it.
    std::vector<ConnectRequest*> waiting;
    for (auto& r : connects) {
      if (r->hop == hop + 1 && r->stage == ConnectRequest::Stage::waiting) {
        waiting.push_back(r.get());
      }
    }
    for (auto* r : waiting) {
      SetupFailure via = failure;
      via.retryable = false;
      via.message = "via jump host " + hop_name(hop) + ": " + message;
      connect_failed(*r, via);
    }
    return;
  }
  last_connect_failed = true;
  bool ready = std::any_of(targets.begin(), targets.end(), [](const auto& c) { return !c->dead; });
  bool pending = std::any_of(connects.begin(), connects.end(), [&](const auto& r) { return r->hop == target_hop; });
  if (!ready && !pending) {
    fail_queue(failure.kind, message);
  }
}

} // namespace smcp::ssh
