#include "ssh/pool.h"

#include <libssh2.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <deque>
#include <mutex>
#include <poll.h>
#include <pthread.h>
#include <random>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

namespace smcp::ssh {

using exec::HostError;
using exec::HostStatus;
using exec::RemoteCall;
using exec::RemoteCommand;
using exec::RemoteResult;
using Kind = HostError::Kind;

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr std::size_t k_pump_buffer = 256 * 1024;
constexpr auto k_close_timeout = std::chrono::seconds(5);
constexpr int k_max_requeues = 5;

void block_sigpipe() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

std::int64_t wall_ms() {
  return std::chrono::duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string session_error(LIBSSH2_SESSION* s) {
  char* msg = nullptr;
  int len = 0;
  int rc = libssh2_session_last_error(s, &msg, &len, 0);
  std::string text = msg && len > 0 ? std::string(msg, static_cast<std::size_t>(len)) : std::string("error");
  return text + " (" + std::to_string(rc) + ")";
}

// Errors that concern one channel; anything else means the session is unusable.
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

} // namespace

struct Conn;
struct Pump;

class Op final : public RemoteCall {
public:
  Op(RemoteCommand command, std::weak_ptr<SshPool::Core> core) : cmd(std::move(command)), m_core(std::move(core)) {}

  bool wait_until(Clock::time_point deadline, std::stop_token stop) override {
    std::unique_lock lock(m_mutex);
    return m_cv.wait_until(lock, stop, deadline, [&] { return m_finished; });
  }
  void cancel() override;
  RemoteResult result() override {
    std::unique_lock lock(m_mutex);
    m_cv.wait(lock, [&] { return m_finished; });
    if (m_error) {
      // A fresh exception in the caller's thread: copies of one std::runtime_error share their
      // message buffer, and the loop thread may destroy the original at any time.
      throw HostError(m_error->first, m_error->second);
    }
    return m_result;
  }

  // Called on the loop thread once.
  void finish(std::optional<HostError> error) {
    {
      std::lock_guard lock(m_mutex);
      if (m_finished) {
        return;
      }
      m_finished = true;
      if (error) {
        m_error.emplace(error->kind(), std::string(error->what()));
      }
      m_result = std::move(res);
    }
    m_cv.notify_all();
  }

  void deliver(exec::Stream stream, const char* data, std::size_t n) {
    if (cmd.on_output) {
      cmd.on_output(stream, std::string_view(data, n));
    } else {
      (stream == exec::Stream::out ? res.out : res.err).append(data, n);
    }
  }

  // Loop-owned state.
  enum class St { queued, opening, exec, io, closing, freeing };
  RemoteCommand cmd;
  St st = St::queued;
  Conn* conn = nullptr;
  LIBSSH2_CHANNEL* ch = nullptr;
  std::size_t written = 0;
  bool eof_sent = false;
  bool exec_sent = false;
  bool cancel_handled = false;
  int requeues = 0;
  int retries = 0;
  Clock::time_point open_started;
  Clock::time_point close_started;
  RemoteResult res;
  std::atomic<bool> cancel_requested{false};

private:
  std::weak_ptr<SshPool::Core> m_core;
  std::mutex m_mutex;
  std::condition_variable_any m_cv;
  bool m_finished = false;
  std::optional<std::pair<HostError::Kind, std::string>> m_error;
  RemoteResult m_result;
};

// Copies bytes between a direct-tcpip channel on a jump session and our end of a socketpair; the
// other end is the socket of the next hop's session.
struct Pump {
  enum class St { opening, open, closing, done };
  St st = St::opening;
  std::string host;
  int port = 22;
  LIBSSH2_CHANNEL* ch = nullptr;
  int fd = -1;      // our end
  int peer_fd = -1; // the session's end, until a handshake worker takes it
  std::string to_sock, to_ch;
  bool ch_eof = false, sock_eof = false, shut_wr = false, ch_eof_sent = false;
  bool abandon = false;
  bool claimed = false;    // a ConnectRequest points at it
  Conn* carries = nullptr; // the session whose socket this is
  std::string error;
  Clock::time_point close_started;
};

struct Conn {
  int id = 0;
  int hop = 0;
  LIBSSH2_SESSION* s = nullptr;
  int fd = -1;
  std::unique_ptr<std::atomic<std::int64_t>> last_rx;
  int max_channels = 10;
  std::vector<std::shared_ptr<Op>> ops;
  std::vector<std::unique_ptr<Pump>> pumps;
  Pump* via = nullptr; // the pump carrying this session (owned by the previous hop's Conn)
  Clock::time_point last_used;
  Clock::time_point next_keepalive;
  bool dead = false;
  bool idle_rx_pending = false;
  int idle_rx_seen = 0;
  bool busy() const { return !ops.empty() || !pumps.empty(); }
};

struct ConnectRequest {
  enum class St { waiting, opening_channel, handshaking };
  int id = 0;
  int hop = 0;
  int attempt = 1;
  St st = St::waiting;
  Clock::time_point not_before;
  Pump* pump = nullptr;
};

struct ConnectDone {
  int request_id = 0;
  int fd = -1;
  LIBSSH2_SESSION* session = nullptr;
  std::unique_ptr<std::atomic<std::int64_t>> last_rx;
  std::optional<SetupFailure> failure;
};

struct SshPool::Core : std::enable_shared_from_this<SshPool::Core> {
  explicit Core(PoolOptions options) : opt(std::move(options)) {
    for (const auto& j : opt.target.jumps) {
      chain.push_back(j);
    }
    chain.push_back(opt.target);
    target_hop = static_cast<int>(chain.size()) - 1;
    jumps.resize(static_cast<std::size_t>(target_hop));
    wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    snapshot.name = opt.name;
    snapshot.target = opt.target.endpoint();
    for (const auto& j : opt.target.jumps) {
      snapshot.via.push_back(j.alias + " (" + j.endpoint() + ")");
    }
    snapshot.kind = "ssh";
    snapshot.has_connection = true;
    snapshot.state = "idle";
    snapshot.max_sessions = opt.limits.max_sessions;
    snapshot.max_channels_per_session = opt.limits.max_channels_per_session;
    snapshot.max_concurrency = opt.limits.max_concurrency;
    snapshot.host_key_policy = policy_name(opt.host_key_policy);
  }
  ~Core() {
    if (wake_fd >= 0) {
      ::close(wake_fd);
    }
  }

  // ---- called from any thread ----

  void wake() {
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_fd, &one, sizeof one);
  }

  void submit(const std::shared_ptr<Op>& op) {
    bool accepted = false;
    {
      std::lock_guard lock(m);
      accepted = !stopping;
      if (accepted) {
        in_new.push_back(op);
      }
    }
    if (!accepted) {
      op->finish(HostError(Kind::unreachable, "the connection pool of " + opt.name + " is shutting down"));
      return;
    }
    wake();
  }

  bool stopping_now() {
    std::lock_guard lock(m);
    return stopping;
  }

  void post_cancel() {
    {
      std::lock_guard lock(m);
      cancel_pending = true;
    }
    wake();
  }

  void post_done(ConnectDone done) {
    bool accepted = false;
    {
      std::lock_guard lock(m);
      accepted = !stopping;
      if (accepted) {
        in_done.push_back(std::move(done));
      }
    }
    if (!accepted) { // the loop is gone: clean up here
      free_session(done.session, done.fd, true);
      if (done.fd >= 0) {
        ::close(done.fd);
      }
      return;
    }
    wake();
  }

  void stop() {
    {
      std::lock_guard lock(m);
      stopping = true;
    }
    wake();
    if (thread.joinable()) {
      thread.join();
    }
  }

  HostStatus status() const {
    std::lock_guard lock(m);
    return snapshot;
  }

  // ---- the loop ----

  void run();
  void take_inbox();
  void handle_cancels();
  void schedule();
  void request_connect(int hop);
  void advance_connects();
  void spawn_worker(ConnectRequest& req, int fd);
  void handle_done(ConnectDone& done);
  void connect_failed(ConnectRequest& req, const SetupFailure& failure);
  bool step_all();
  enum class Outcome { running, done, requeue, dead };
  Outcome step_op(Op& op, bool& progress, std::string& reason);
  bool step_pump(Conn& c, Pump& p, std::string& dead_reason);
  void kill_conn(Conn& c, const std::string& reason);
  void close_conn(Conn& c, bool polite);
  void sweep_dead();
  void timers();
  int build_poll(std::vector<pollfd>& fds, std::vector<Conn*>& idle_owner);
  void after_poll(const std::vector<pollfd>& fds, const std::vector<Conn*>& idle_owner);
  void publish();
  void shutdown_all();
  void fail_queue(Kind kind, const std::string& message);
  void requeue(const std::shared_ptr<Op>& op);
  void note_error(const std::string& message);
  int keepalive_interval(const Conn& c) const {
    int v = chain[static_cast<std::size_t>(c.hop)].server_alive_interval;
    return v > 0 ? v : static_cast<int>(opt.limits.default_keepalive.count());
  }
  std::vector<Conn*> all_conns() {
    std::vector<Conn*> out;
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
  const std::string& hop_name(int hop) const { return chain[static_cast<std::size_t>(hop)].alias; }

  PoolOptions opt;
  std::vector<SshTarget> chain; // ProxyJump hops, then the target
  int target_hop = 0;
  int wake_fd = -1;
  std::thread thread;

  mutable std::mutex m; // guards the inbox and the snapshot
  bool stopping = false;
  bool cancel_pending = false;
  std::vector<std::shared_ptr<Op>> in_new;
  std::vector<ConnectDone> in_done;
  HostStatus snapshot;

  // Loop-owned.
  std::deque<std::shared_ptr<Op>> queue;
  std::vector<std::unique_ptr<Conn>> targets;
  std::vector<std::unique_ptr<Conn>> jumps; // one shared session per ProxyJump hop
  std::vector<std::unique_ptr<ConnectRequest>> connects;
  int workers = 0;
  int next_id = 1;
  bool again = false;       // something changed: loop again without sleeping
  int peak_channels = 0;    // most channels the server accepted at once on one session
  int learned_channels = 0; // the server's MaxSessions as learned from refusals (0: none seen)
  std::uint64_t n_connects = 0, n_calls = 0;
  std::string last_error;
  std::int64_t last_error_at = 0;
  std::optional<double> last_latency;
  bool ever_connected = false;
  bool last_connect_failed = false;
  std::mt19937 rng{std::random_device{}()};
};

void Op::cancel() {
  cancel_requested = true;
  if (auto core = m_core.lock()) {
    core->post_cancel();
  }
}

void SshPool::Core::note_error(const std::string& message) {
  last_error = message;
  last_error_at = wall_ms();
}

void SshPool::Core::run() {
  block_sigpipe();
  std::vector<pollfd> fds;
  std::vector<Conn*> owners;
  for (;;) {
    again = false;
    take_inbox();
    if (stopping_now()) {
      break;
    }
    handle_cancels();
    schedule();
    advance_connects();
    if (step_all()) {
      again = true;
    }
    sweep_dead();
    schedule();
    advance_connects();
    timers();
    sweep_dead();
    publish();
    int timeout = build_poll(fds, owners);
    if (again) {
      timeout = 0;
    }
    int rc = ::poll(fds.data(), static_cast<nfds_t>(fds.size()), timeout);
    if (rc < 0 && errno != EINTR) {
      spdlog::error("ssh pool {}: poll: {}", opt.name, std::strerror(errno));
      std::this_thread::sleep_for(milliseconds(10));
    }
    if (rc > 0) {
      if (fds[0].revents & POLLIN) {
        std::uint64_t v;
        [[maybe_unused]] auto n = ::read(wake_fd, &v, sizeof v);
      }
      after_poll(fds, owners);
      sweep_dead();
    }
  }
  shutdown_all();
}

void SshPool::Core::take_inbox() {
  std::vector<std::shared_ptr<Op>> fresh;
  std::vector<ConnectDone> done;
  {
    std::lock_guard lock(m);
    fresh.swap(in_new);
    done.swap(in_done);
  }
  for (auto& op : fresh) {
    queue.push_back(std::move(op));
  }
  for (auto& d : done) {
    handle_done(d);
  }
}

void SshPool::Core::handle_cancels() {
  {
    std::lock_guard lock(m);
    if (!cancel_pending) {
      return;
    }
    cancel_pending = false;
  }
  for (auto it = queue.begin(); it != queue.end();) {
    if ((*it)->cancel_requested) {
      (*it)->finish(HostError(Kind::io, "cancelled before it started"));
      it = queue.erase(it);
    } else {
      ++it;
    }
  }
  again = true; // active ops notice the flag when stepped
}

void SshPool::Core::requeue(const std::shared_ptr<Op>& op) {
  op->st = Op::St::queued;
  op->conn = nullptr;
  op->ch = nullptr;
  op->written = 0;
  op->eof_sent = false;
  op->exec_sent = false;
  op->res = RemoteResult{};
  queue.push_front(op);
  again = true;
}

void SshPool::Core::fail_queue(Kind kind, const std::string& message) {
  publish(); // callers that look at the status right after the error see why
  while (!queue.empty()) {
    queue.front()->finish(HostError(kind, message));
    queue.pop_front();
  }
}

void SshPool::Core::schedule() {
  const auto& lim = opt.limits;
  int active = 0, ready = 0;
  for (auto& c : targets) {
    if (!c->dead) {
      active += static_cast<int>(c->ops.size());
      ++ready;
    }
  }
  while (!queue.empty() && active < lim.max_concurrency) {
    Conn* best = nullptr;
    for (auto& c : targets) {
      if (!c->dead && static_cast<int>(c->ops.size()) < c->max_channels &&
          (!best || c->ops.size() < best->ops.size())) {
        best = c.get();
      }
    }
    if (!best) {
      break;
    }
    auto op = queue.front();
    queue.pop_front();
    op->conn = best;
    op->st = Op::St::opening;
    op->open_started = Clock::now();
    best->ops.push_back(op);
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
      if (!c->dead && static_cast<int>(c->ops.size()) < std::min(lim.busy_channels, c->max_channels)) {
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
    if (req.st == ConnectRequest::St::waiting && now >= req.not_before) {
      if (req.hop == 0) {
        if (workers < opt.limits.max_handshakes) {
          spawn_worker(req, -1);
        }
        continue;
      }
      Conn* jump = jumps[static_cast<std::size_t>(req.hop - 1)].get();
      if (jump && !jump->dead) {
        auto pump = std::make_unique<Pump>();
        pump->host = chain[static_cast<std::size_t>(req.hop)].hostname;
        pump->port = chain[static_cast<std::size_t>(req.hop)].port;
        pump->claimed = true;
        req.pump = pump.get();
        jump->pumps.push_back(std::move(pump));
        req.st = ConnectRequest::St::opening_channel;
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
    if (req.st == ConnectRequest::St::opening_channel && req.pump) {
      if (req.pump->st == Pump::St::open && req.pump->peer_fd >= 0) {
        if (workers < opt.limits.max_handshakes) {
          int fd = std::exchange(req.pump->peer_fd, -1);
          spawn_worker(req, fd);
          continue;
        }
      } else if (req.pump->st == Pump::St::done || req.pump->st == Pump::St::closing) {
        SetupFailure f{Kind::unreachable,
                       "cannot reach " + hop_name(req.hop) + " (" + req.pump->host + ":" +
                           std::to_string(req.pump->port) + ") through jump host " + hop_name(req.hop - 1) + ": " +
                           (req.pump->error.empty() ? "the channel closed" : req.pump->error),
                       false};
        req.pump->claimed = false;
        req.pump = nullptr;
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
  req.st = ConnectRequest::St::handshaking;
  ++workers;
  const SshTarget& t = chain[static_cast<std::size_t>(req.hop)];
  SetupOptions so;
  so.host_name = t.alias == opt.name ? opt.name : t.alias + " (jump host of " + opt.name + ")";
  so.policy = opt.host_key_policy;
  so.passphrase = opt.passphrase;
  auto connect_timeout = t.connect_timeout.count() > 0
                             ? std::chrono::duration_cast<milliseconds>(t.connect_timeout)
                             : std::chrono::duration_cast<milliseconds>(opt.limits.default_connect_timeout);
  so.timeout = connect_timeout + std::chrono::seconds(15);
  so.keepalive_interval_s =
      t.server_alive_interval > 0 ? t.server_alive_interval : static_cast<int>(opt.limits.default_keepalive.count());
  auto last_rx = std::make_unique<std::atomic<std::int64_t>>(steady_ms());
  so.last_rx_ms = last_rx.get();
  std::thread([self = shared_from_this(), id = req.id, fd, t, so, connect_timeout,
               last_rx = std::move(last_rx)]() mutable {
    block_sigpipe();
    ConnectDone done;
    done.request_id = id;
    SetupFailure failure;
    int sock = fd >= 0 ? fd : tcp_connect(t.hostname, t.port, connect_timeout, failure);
    if (sock < 0) {
      done.failure = failure;
    } else {
      SetupResult r = setup_session(sock, t, so);
      done.session = r.session;
      done.failure = r.failure;
    }
    done.fd = sock;
    done.last_rx = std::move(last_rx);
    self->post_done(std::move(done));
  }).detach();
}

void SshPool::Core::handle_done(ConnectDone& done) {
  --workers;
  auto it = std::find_if(connects.begin(), connects.end(), [&](const auto& r) { return r->id == done.request_id; });
  if (it == connects.end()) { // cannot happen; do not leak
    if (done.session) {
      free_session(done.session, done.fd, true);
    }
    if (done.fd >= 0) {
      ::close(done.fd);
    }
    return;
  }
  ConnectRequest& req = **it;
  Pump* pump = req.pump;
  if (done.failure) {
    if (done.fd >= 0) {
      ::close(done.fd);
    }
    if (pump) {
      pump->abandon = true;
      pump->claimed = false;
      req.pump = nullptr;
    }
    connect_failed(req, *done.failure);
    again = true;
    return;
  }
  auto c = std::make_unique<Conn>();
  c->id = next_id++;
  c->hop = req.hop;
  c->s = done.session;
  c->fd = done.fd;
  c->last_rx = std::move(done.last_rx);
  c->max_channels = learned_channels > 0 ? learned_channels : opt.limits.max_channels_per_session;
  c->via = pump;
  if (pump) {
    pump->claimed = false;
    pump->carries = c.get();
  }
  c->last_used = Clock::now();
  c->next_keepalive = Clock::now() + std::chrono::seconds(keepalive_interval(*c));
  spdlog::debug("ssh {}: session {} to {} ready", opt.name, c->id, hop_name(c->hop));
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
  if (failure.retryable && req.attempt < opt.limits.handshake_attempts) {
    int delay = 50 * (1 << std::min(req.attempt, 6)) + static_cast<int>(rng() % 100);
    spdlog::info("ssh {}: handshake attempt {} failed ({}); retrying in {} ms", opt.name, req.attempt, failure.message,
                 delay);
    ++req.attempt;
    req.st = ConnectRequest::St::waiting;
    req.not_before = Clock::now() + milliseconds(delay);
    return;
  }
  const int hop = req.hop;
  std::string message = failure.message;
  if (failure.retryable) {
    message += " (after " + std::to_string(req.attempt) + " attempts)";
  }
  note_error(message);
  spdlog::warn("ssh {}: {}", opt.name, message);
  auto it = std::find_if(connects.begin(), connects.end(), [&](const auto& r) { return r.get() == &req; });
  if (it != connects.end()) {
    connects.erase(it);
  }
  if (hop < target_hop) {
    // Requests waiting for this jump host fail with it.
    std::vector<ConnectRequest*> waiting;
    for (auto& r : connects) {
      if (r->hop == hop + 1 && r->st == ConnectRequest::St::waiting) {
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

bool SshPool::Core::step_all() {
  bool any = false;
  for (int pass = 0; pass < 64; ++pass) {
    bool progress = false;
    for (Conn* c : all_conns()) {
      if (c->dead) {
        continue;
      }
      std::string dead_reason;
      for (auto& p : c->pumps) {
        if (step_pump(*c, *p, dead_reason)) {
          progress = true;
        }
        if (!dead_reason.empty()) {
          break;
        }
      }
      if (!dead_reason.empty()) {
        kill_conn(*c, dead_reason);
        continue;
      }
      for (auto it = c->pumps.begin(); it != c->pumps.end();) {
        Pump& p = **it;
        if (p.st == Pump::St::done && p.peer_fd < 0 && !p.claimed) {
          if (p.carries) {
            p.carries->via = nullptr;
          }
          it = c->pumps.erase(it);
        } else {
          ++it;
        }
      }
      std::vector<std::shared_ptr<Op>> ops = c->ops;
      for (auto& op : ops) {
        bool op_progress = false;
        std::string reason;
        Outcome out = step_op(*op, op_progress, reason);
        progress = progress || op_progress;
        if (out == Outcome::done) {
          c->ops.erase(std::find(c->ops.begin(), c->ops.end(), op));
          c->last_used = Clock::now();
          again = true;
        } else if (out == Outcome::requeue) {
          c->ops.erase(std::find(c->ops.begin(), c->ops.end(), op));
          requeue(op);
        } else if (out == Outcome::dead) {
          kill_conn(*c, reason);
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

SshPool::Core::Outcome SshPool::Core::step_op(Op& op, bool& progress, std::string& reason) {
  Conn& c = *op.conn;
  LIBSSH2_SESSION* s = c.s;
  auto fail_session = [&](const char* what) {
    reason = std::string(what) + ": " + session_error(s);
    return Outcome::dead;
  };
  if (op.cancel_requested && !op.cancel_handled) {
    op.cancel_handled = true;
    if (!op.ch) {
      op.finish(HostError(Kind::io, "cancelled"));
      return Outcome::done;
    }
    op.st = Op::St::freeing;
    op.close_started = Clock::now();
    progress = true;
  }
  char buf[64 * 1024];
  for (;;) {
    switch (op.st) {
    case Op::St::queued:
      return Outcome::running;
    case Op::St::opening: {
      op.ch = libssh2_channel_open_session(s);
      if (!op.ch) {
        int e = libssh2_session_last_errno(s);
        if (e == LIBSSH2_ERROR_EAGAIN) {
          return Outcome::running;
        }
        if (e == LIBSSH2_ERROR_CHANNEL_FAILURE) {
          // The server refuses more channels on this session (MaxSessions): remember its limit.
          int open = static_cast<int>(
              std::count_if(c.ops.begin(), c.ops.end(), [](const auto& o) { return o->ch != nullptr; }));
          // (A channel just closed may still count on the server for a moment: never go below the
          // most channels it ever accepted at once on one session.)
          int limit = std::max({1, open, peak_channels});
          if (limit < c.max_channels) {
            if (learned_channels != limit) {
              spdlog::info("ssh {}: the server allows {} channels per session (MaxSessions); using that", opt.name,
                           limit);
            }
            c.max_channels = limit;
            learned_channels = limit;
          }
          if (++op.requeues > k_max_requeues) {
            op.finish(HostError(Kind::refused, opt.name + " refused to open a channel: " + session_error(s)));
            return Outcome::done;
          }
          return Outcome::requeue;
        }
        return fail_session("cannot open a channel");
      }
      op.st = Op::St::exec;
      progress = true;
      peak_channels = std::max(
          peak_channels,
          static_cast<int>(std::count_if(c.ops.begin(), c.ops.end(), [](const auto& o) { return o->ch != nullptr; })));
      break;
    }
    case Op::St::exec: {
      op.exec_sent = true;
      int rc = libssh2_channel_exec(op.ch, op.cmd.exec.c_str());
      if (rc == LIBSSH2_ERROR_EAGAIN) {
        return Outcome::running;
      }
      if (rc == LIBSSH2_ERROR_CHANNEL_REQUEST_DENIED) {
        op.finish(HostError(Kind::refused, opt.name + " refused to run a command (exec request denied)"));
        op.st = Op::St::freeing;
        op.close_started = Clock::now();
        op.cancel_handled = true;
        progress = true;
        break;
      }
      if (rc < 0) {
        if (!channel_level(rc)) {
          return fail_session("exec request failed");
        }
        op.finish(HostError(Kind::io, "exec request failed on " + opt.name + ": " + session_error(s)));
        op.st = Op::St::freeing;
        op.close_started = Clock::now();
        progress = true;
        break;
      }
      last_latency = std::chrono::duration<double, std::milli>(Clock::now() - op.open_started).count();
      op.st = Op::St::io;
      progress = true;
      break;
    }
    case Op::St::io: {
      bool moved = false;
      for (int stream : {0, SSH_EXTENDED_DATA_STDERR}) {
        for (;;) {
          ssize_t n = libssh2_channel_read_ex(op.ch, stream, buf, sizeof buf);
          if (n > 0) {
            op.deliver(stream == 0 ? exec::Stream::out : exec::Stream::err, buf, static_cast<std::size_t>(n));
            moved = true;
            continue;
          }
          if (n == 0 || n == LIBSSH2_ERROR_EAGAIN) {
            break;
          }
          if (!channel_level(static_cast<int>(n))) {
            return fail_session("reading output");
          }
          break;
        }
      }
      if (op.written < op.cmd.input.size()) {
        ssize_t w =
            libssh2_channel_write_ex(op.ch, 0, op.cmd.input.data() + op.written, op.cmd.input.size() - op.written);
        if (w > 0) {
          op.written += static_cast<std::size_t>(w);
          moved = true;
        } else if (w != LIBSSH2_ERROR_EAGAIN && w < 0) {
          if (!channel_level(static_cast<int>(w))) {
            return fail_session("writing input");
          }
          op.written = op.cmd.input.size(); // the command closed its input; stop writing
        }
      }
      if (op.written >= op.cmd.input.size() && !op.eof_sent) {
        int rc = libssh2_channel_send_eof(op.ch);
        if (rc == 0 || (rc < 0 && rc != LIBSSH2_ERROR_EAGAIN && channel_level(rc))) {
          op.eof_sent = true;
          moved = true;
        } else if (rc < 0 && rc != LIBSSH2_ERROR_EAGAIN) {
          return fail_session("sending end of input");
        }
      }
      if (moved) {
        progress = true;
      }
      if (libssh2_channel_eof(op.ch)) {
        op.st = Op::St::closing;
        op.close_started = Clock::now();
        progress = true;
        break;
      }
      return Outcome::running;
    }
    case Op::St::closing: {
      int rc = libssh2_channel_close(op.ch);
      if (rc == LIBSSH2_ERROR_EAGAIN) {
        if (Clock::now() - op.close_started > k_close_timeout) {
          op.st = Op::St::freeing;
          break;
        }
        return Outcome::running;
      }
      if (rc < 0 && !channel_level(rc)) {
        return fail_session("closing a channel");
      }
      char* sig = nullptr;
      std::size_t sig_len = 0;
      libssh2_channel_get_exit_signal(op.ch, &sig, &sig_len, nullptr, nullptr, nullptr, nullptr);
      if (sig && sig_len > 0) {
        std::string name(sig, sig_len);
        op.res.exit_signal = exec::parse_signal(name).value_or(0);
      }
      if (sig) {
        libssh2_free(s, sig);
      }
      if (!op.res.exit_signal) {
        op.res.exit_status = libssh2_channel_get_exit_status(op.ch);
      }
      op.st = Op::St::freeing;
      progress = true;
      break;
    }
    case Op::St::freeing: {
      int rc = libssh2_channel_free(op.ch);
      if (rc == LIBSSH2_ERROR_EAGAIN) {
        if (Clock::now() - op.close_started > k_close_timeout) {
          // The server never confirmed the close: leave the channel to the session's end.
          spdlog::debug("ssh {}: a channel did not close in time", opt.name);
          op.ch = nullptr;
        } else {
          return Outcome::running;
        }
      }
      op.ch = nullptr;
      if (op.cancel_handled) {
        op.finish(HostError(Kind::io, "cancelled"));
      } else {
        op.finish(std::nullopt);
      }
      return Outcome::done;
    }
    }
  }
}

bool SshPool::Core::step_pump(Conn& c, Pump& p, std::string& dead_reason) {
  LIBSSH2_SESSION* s = c.s;
  bool progress = false;
  char buf[32 * 1024];
  if (p.st == Pump::St::opening) {
    if (p.abandon) {
      p.st = Pump::St::done;
      return true;
    }
    p.ch = libssh2_channel_direct_tcpip_ex(s, p.host.c_str(), p.port, "127.0.0.1", 22);
    if (!p.ch) {
      int e = libssh2_session_last_errno(s);
      if (e == LIBSSH2_ERROR_EAGAIN) {
        return false;
      }
      if (!channel_level(e)) {
        dead_reason = "opening a forwarding channel: " + session_error(s);
        return false;
      }
      p.error = session_error(s);
      p.st = Pump::St::done;
      return true;
    }
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) {
      p.error = std::string("socketpair: ") + std::strerror(errno);
      p.st = Pump::St::closing;
      p.close_started = Clock::now();
      return true;
    }
    p.fd = sv[0];
    p.peer_fd = sv[1];
    p.st = Pump::St::open;
    progress = true;
  }
  if (p.st == Pump::St::open) {
    while (p.to_sock.size() < k_pump_buffer && !p.ch_eof) {
      ssize_t n = libssh2_channel_read(p.ch, buf, sizeof buf);
      if (n > 0) {
        p.to_sock.append(buf, static_cast<std::size_t>(n));
        progress = true;
        continue;
      }
      if (n == LIBSSH2_ERROR_EAGAIN) {
        break;
      }
      if (n < 0 && !channel_level(static_cast<int>(n))) {
        dead_reason = "forwarding for " + p.host + ": " + session_error(s);
        return progress;
      }
      if (n < 0 || libssh2_channel_eof(p.ch)) {
        p.ch_eof = true;
        progress = true;
      }
      break;
    }
    while (!p.to_sock.empty() && p.fd >= 0) {
      ssize_t w = ::send(p.fd, p.to_sock.data(), p.to_sock.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w > 0) {
        p.to_sock.erase(0, static_cast<std::size_t>(w));
        progress = true;
      } else {
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
          p.abandon = true;
        }
        break;
      }
    }
    if (p.ch_eof && p.to_sock.empty() && !p.shut_wr && p.fd >= 0) {
      ::shutdown(p.fd, SHUT_WR);
      p.shut_wr = true;
      progress = true;
    }
    while (p.to_ch.size() < k_pump_buffer && !p.sock_eof && p.fd >= 0) {
      ssize_t r = ::recv(p.fd, buf, sizeof buf, MSG_DONTWAIT);
      if (r > 0) {
        p.to_ch.append(buf, static_cast<std::size_t>(r));
        progress = true;
        continue;
      }
      if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        p.sock_eof = true;
        progress = true;
      }
      break;
    }
    while (!p.to_ch.empty()) {
      ssize_t w = libssh2_channel_write(p.ch, p.to_ch.data(), p.to_ch.size());
      if (w > 0) {
        p.to_ch.erase(0, static_cast<std::size_t>(w));
        progress = true;
        continue;
      }
      if (w == LIBSSH2_ERROR_EAGAIN) {
        break;
      }
      if (!channel_level(static_cast<int>(w))) {
        dead_reason = "forwarding for " + p.host + ": " + session_error(s);
        return progress;
      }
      p.abandon = true;
      break;
    }
    if (p.sock_eof && p.to_ch.empty() && !p.ch_eof_sent) {
      int rc = libssh2_channel_send_eof(p.ch);
      if (rc != LIBSSH2_ERROR_EAGAIN) {
        p.ch_eof_sent = true;
        progress = true;
      }
    }
    if (p.abandon || (p.sock_eof && p.ch_eof && p.to_sock.empty() && p.to_ch.empty())) {
      p.st = Pump::St::closing;
      p.close_started = Clock::now();
      progress = true;
    }
  }
  if (p.st == Pump::St::closing) {
    if (p.fd >= 0) {
      ::close(p.fd);
      p.fd = -1;
    }
    if (p.ch) {
      int rc = libssh2_channel_free(p.ch);
      if (rc == LIBSSH2_ERROR_EAGAIN && Clock::now() - p.close_started < k_close_timeout) {
        return progress;
      }
      p.ch = nullptr;
    }
    if (p.peer_fd >= 0) {
      ::close(p.peer_fd);
      p.peer_fd = -1;
    }
    p.st = Pump::St::done;
    progress = true;
  }
  return progress;
}

void SshPool::Core::kill_conn(Conn& c, const std::string& reason) {
  if (c.dead) {
    return;
  }
  c.dead = true;
  const std::string where = c.hop == target_hop ? opt.name : "jump host " + hop_name(c.hop);
  note_error("connection to " + where + " lost: " + reason);
  publish();
  spdlog::warn("ssh {}: connection to {} lost: {}", opt.name, where, reason);
  for (auto& op : c.ops) {
    op->ch = nullptr; // freed with the session
    if (op->cancel_requested || op->cancel_handled) {
      op->finish(HostError(Kind::io, "cancelled"));
    } else if (!op->exec_sent && op->requeues < k_max_requeues) {
      ++op->requeues;
      requeue(op);
    } else if (op->cmd.retry_safe && !op->cmd.on_output && op->retries == 0) {
      ++op->retries;
      requeue(op);
    } else {
      op->finish(HostError(Kind::unreachable, "connection to " + opt.name + " lost while running " + op->cmd.what +
                                                  "; the command may or may not have completed (" + reason + ")"));
    }
  }
  c.ops.clear();
  // Sessions carried by this one's forwarding channels die with it.
  for (auto& p : c.pumps) {
    for (Conn* other : all_conns()) {
      if (other->via == p.get()) {
        other->via = nullptr;
        kill_conn(*other, "jump host " + hop_name(c.hop) + " connection lost: " + reason);
      }
    }
    for (auto& r : connects) {
      if (r->pump == p.get()) {
        r->pump = nullptr;
        if (r->st == ConnectRequest::St::opening_channel) { // a handshaking worker reports its own failure
          r->st = ConnectRequest::St::waiting;
          r->not_before = Clock::now();
        }
      }
    }
    if (p->fd >= 0) {
      ::close(p->fd);
      p->fd = -1;
    }
    if (p->peer_fd >= 0) {
      ::close(p->peer_fd);
      p->peer_fd = -1;
    }
    p->ch = nullptr;
  }
  c.pumps.clear();
  again = true;
}

void SshPool::Core::close_conn(Conn& c, bool polite) {
  free_session(c.s, c.fd, polite);
  c.s = nullptr;
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
      close_conn(*j, false);
      j.reset();
    }
  }
  for (auto it = targets.begin(); it != targets.end();) {
    if ((*it)->dead) {
      close_conn(**it, false);
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
  for (Conn* c : all_conns()) {
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
      int rc = libssh2_keepalive_send(c->s, &next);
      if (rc != 0 && rc != LIBSSH2_ERROR_EAGAIN) {
        kill_conn(*c, "keepalive failed: " + session_error(c->s));
        continue;
      }
      c->next_keepalive = now + std::chrono::seconds(std::max(1, next > 0 ? next : interval));
    }
    const int count_max = std::max(1, chain[static_cast<std::size_t>(c->hop)].server_alive_count_max);
    const std::int64_t silent = now_ms - c->last_rx->load();
    if (silent > static_cast<std::int64_t>(interval) * (count_max + 1) * 1000) {
      kill_conn(*c, "no answer to " + std::to_string(count_max) + " keepalives in " + std::to_string(silent / 1000) +
                        " s (ServerAliveInterval " + std::to_string(interval) + ", ServerAliveCountMax " +
                        std::to_string(count_max) + ")");
    }
  }
  // Idle sessions: the most recently used one stays longer.
  Conn* keep = nullptr;
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
    auto limit = c.get() == keep ? opt.limits.last_session_idle_timeout : opt.limits.idle_timeout;
    if (idle >= limit) {
      spdlog::debug("ssh {}: closing session {} (idle)", opt.name, c->id);
      close_conn(*c, true);
      c->dead = true;
    }
  }
  for (auto& j : jumps) {
    if (j && !j->dead && !j->busy() && now - j->last_used >= opt.limits.idle_timeout) {
      close_conn(*j, true);
      j->dead = true;
    }
    if (j && j->busy()) {
      j->last_used = now;
    }
  }
}

int SshPool::Core::build_poll(std::vector<pollfd>& fds, std::vector<Conn*>& owners) {
  fds.clear();
  owners.clear();
  fds.push_back({wake_fd, POLLIN, 0});
  owners.push_back(nullptr);
  auto next = Clock::now() + std::chrono::seconds(1);
  for (Conn* c : all_conns()) {
    if (c->dead) {
      continue;
    }
    next = std::min(next, c->next_keepalive);
    if (c->busy()) {
      int dirs = libssh2_session_block_directions(c->s);
      short ev = static_cast<short>(((dirs & LIBSSH2_SESSION_BLOCK_INBOUND) ? POLLIN : 0) |
                                    ((dirs & LIBSSH2_SESSION_BLOCK_OUTBOUND) ? POLLOUT : 0));
      fds.push_back({c->fd, ev ? ev : static_cast<short>(POLLIN), 0});
      owners.push_back(nullptr);
      for (auto& p : c->pumps) {
        if (p->st == Pump::St::open && p->fd >= 0) {
          short pev = static_cast<short>(((!p->sock_eof && p->to_ch.size() < k_pump_buffer) ? POLLIN : 0) |
                                         (!p->to_sock.empty() ? POLLOUT : 0));
          if (pev) {
            fds.push_back({p->fd, pev, 0});
            owners.push_back(nullptr);
          }
        }
        if (p->st == Pump::St::closing) {
          next = std::min(next, Clock::now() + milliseconds(20));
        }
      }
      for (auto& op : c->ops) {
        if (op->st == Op::St::closing || op->st == Op::St::freeing) {
          next = std::min(next, Clock::now() + milliseconds(50));
        }
      }
    } else if (!c->idle_rx_pending) {
      fds.push_back({c->fd, POLLIN, 0});
      owners.push_back(c); // an idle session: readable means the server closed it or answered a keepalive
    }
  }
  for (auto& r : connects) {
    if (r->st == ConnectRequest::St::waiting) {
      next = std::min(next, r->not_before);
    }
  }
  auto ms = std::chrono::duration_cast<milliseconds>(next - Clock::now()).count();
  return static_cast<int>(std::clamp<long long>(ms, 0, 1000));
}

void SshPool::Core::after_poll(const std::vector<pollfd>& fds, const std::vector<Conn*>& owners) {
  for (std::size_t i = 1; i < fds.size(); ++i) {
    Conn* c = owners[i];
    if (!c || c->dead || !fds[i].revents) {
      continue;
    }
    char b;
    ssize_t n = ::recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) {
      kill_conn(*c, "the server closed the connection");
    } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      kill_conn(*c, std::strerror(errno));
    } else if (n > 0) {
      c->idle_rx_pending = true;
      c->last_rx->store(steady_ms());
      int avail = 0;
      if (::ioctl(c->fd, FIONREAD, &avail) == 0) {
        c->idle_rx_seen = avail;
      }
    }
  }
}

void SshPool::Core::publish() {
  HostStatus s;
  {
    std::lock_guard lock(m);
    s = snapshot;
  }
  s.sessions = 0;
  s.channels_in_use = 0;
  for (auto& c : targets) {
    if (!c->dead) {
      ++s.sessions;
      s.channels_in_use += static_cast<int>(c->ops.size());
    }
  }
  s.connecting = static_cast<int>(
      std::count_if(connects.begin(), connects.end(), [&](const auto& r) { return r->hop == target_hop; }));
  s.queued = static_cast<int>(queue.size());
  s.connects = n_connects;
  s.calls = n_calls;
  s.last_error = last_error;
  s.last_error_at_ms = last_error_at;
  s.last_latency_ms = last_latency;
  if (s.sessions > 0) {
    s.state = "connected";
  } else if (s.connecting > 0) {
    s.state = "connecting";
  } else if (last_connect_failed) {
    s.state = "error";
  } else {
    s.state = ever_connected ? "disconnected" : "idle";
  }
  std::lock_guard lock(m);
  snapshot = std::move(s);
}

void SshPool::Core::shutdown_all() {
  const std::string msg = "the connection pool of " + opt.name + " is shutting down";
  fail_queue(Kind::unreachable, msg);
  {
    std::lock_guard lock(m);
    for (auto& op : in_new) {
      op->finish(HostError(Kind::unreachable, msg));
    }
    in_new.clear();
    for (auto& d : in_done) {
      if (d.session) {
        free_session(d.session, d.fd, true);
      }
      if (d.fd >= 0) {
        ::close(d.fd);
      }
    }
    in_done.clear();
  }
  for (auto& c : targets) {
    for (auto& op : c->ops) {
      op->ch = nullptr;
      op->finish(HostError(Kind::unreachable, msg));
    }
    c->ops.clear();
    close_conn(*c, true);
  }
  targets.clear();
  for (auto& j : jumps) {
    if (j) {
      for (auto& p : j->pumps) {
        if (p->fd >= 0) {
          ::close(p->fd);
        }
        if (p->peer_fd >= 0) {
          ::close(p->peer_fd);
        }
        p->ch = nullptr;
      }
      j->pumps.clear();
      close_conn(*j, true);
    }
  }
  jumps.clear();
}

SshPool::SshPool(PoolOptions options) : m_core(std::make_shared<Core>(std::move(options))) {
  libssh2_global_init();
  m_core->thread = std::thread([core = m_core.get()] { core->run(); });
}

SshPool::~SshPool() {
  m_core->stop();
}

std::shared_ptr<RemoteCall> SshPool::start(RemoteCommand command) {
  auto op = std::make_shared<Op>(std::move(command), m_core);
  m_core->submit(op);
  return op;
}

HostStatus SshPool::status() const {
  return m_core->status();
}

} // namespace smcp::ssh
