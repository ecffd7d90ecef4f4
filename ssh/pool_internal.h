// The inside of SshPool (ssh/pool.h), shared by the pool's files; only ssh/ includes it:
//   pool.cpp          the pool thread's loop, the inbox other threads post to, status, shutdown;
//   pool_connect.cpp  how many sessions to open, and opening them on handshake workers;
//   pool_sessions.cpp the sessions: stepping their channels, keepalives, idle and dead sessions,
//                     and what the loop waits for between ticks (arm_waits);
//   pool_channels.cpp one call's exec channel, and the forwarding channels of ProxyJump tunnels.
// Everything but the inbox and the status snapshot belongs to the pool thread.
#pragma once

#include "sandbox/exec/event_loop.h"
#include "ssh/pool.h"
#include "ssh/session_internal.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <vector>

struct _LIBSSH2_CHANNEL; // NOLINT(bugprone-reserved-identifier): libssh2's own name

namespace smcp::ssh {

constexpr std::size_t k_tunnel_buffer = 256 * 1024; // bytes buffered each way in a tunnel
constexpr auto k_close_timeout = std::chrono::seconds(5);
constexpr int k_max_requeues = 5;

void block_sigpipe();

// Errors that concern one channel; anything else means the session is unusable.
bool channel_level(int rc);

struct Connection;
struct JumpTunnel;

// Closes both ends of a tunnel's socketpair and forgets its channel (freed with its session).
void release_tunnel(JumpTunnel& tunnel);

// One call of the executor: queued, then an exec channel on a session.
class PoolCall final : public exec::RemoteCall {
public:
  PoolCall(exec::RemoteCommand command, std::weak_ptr<SshPool::Core> core)
      : command(std::move(command)), m_core(std::move(core)) {}

  bool wait_until(Clock::time_point deadline, std::stop_token stop) override;
  void cancel() override;
  exec::RemoteResult result() override;
  bool reached() const override { return opened.load(); }
  bool write(const std::string& data) override;
  // Pool thread: moves what write() was given to command.input.
  void take_more_input();

  // Called on the pool thread once.
  void finish(std::optional<HostError> error);
  void deliver(exec::Stream stream, const char* data, std::size_t n);

  // Owned by the pool thread.
  enum class State { queued, opening, starting, running, closing, freeing };
  exec::RemoteCommand command;
  State state = State::queued;
  Connection* connection = nullptr;
  _LIBSSH2_CHANNEL* channel = nullptr;
  std::size_t written = 0; // bytes of command.input sent
  bool eof_sent = false;
  bool exec_sent = false;
  bool open_pending = false; // libssh2 has this call's channel open under way (it returned EAGAIN)
  bool cancel_handled = false;
  int requeues = 0;
  int retries = 0;
  Clock::time_point open_started;
  Clock::time_point close_started;
  exec::RemoteResult collected; // output and exit status as they arrive
  std::atomic<bool> cancel_requested{false};
  std::atomic<bool> opened{false}; // the channel is open and its command or stream started

private:
  std::weak_ptr<SshPool::Core> m_core;
  std::mutex m_input_mutex;
  std::string m_more_input; // from write(), not yet in command.input
  std::mutex m_mutex;
  std::condition_variable_any m_cv;
  bool m_finished = false;
  std::optional<std::pair<HostError::Kind, std::string>> m_error;
  exec::RemoteResult m_result;
};

// A ProxyJump hop: copies bytes between a direct-tcpip channel on a jump session and our end of a
// socketpair; the other end is the socket of the next hop's session.
struct JumpTunnel {
  enum class State { opening, open, closing, done };
  State state = State::opening;
  std::string host;
  int port = 22;
  _LIBSSH2_CHANNEL* channel = nullptr;
  int fd = -1;                                   // our end
  int peer_fd = -1;                              // the session's end, until a handshake worker takes it
  std::unique_ptr<exec::EventLoop::Watch> watch; // on fd, while it is open
  std::string to_socket, to_channel;
  bool channel_eof = false, socket_eof = false, socket_shut = false, channel_eof_sent = false;
  bool abandon = false;
  bool claimed = false;          // a ConnectRequest points at it
  Connection* carries = nullptr; // the session whose socket this is
  std::string error;
  Clock::time_point close_started;
};

// One authenticated session, to the target or to a jump host.
struct Connection {
  int id = 0;
  int hop = 0;
  _LIBSSH2_SESSION* session = nullptr;
  int fd = -1;
  std::unique_ptr<exec::EventLoop::Watch> watch; // on fd, while it is open
  std::unique_ptr<std::atomic<std::int64_t>> last_rx;
  int max_channels = 10;
  std::vector<std::shared_ptr<PoolCall>> calls;
  std::vector<std::unique_ptr<JumpTunnel>> tunnels;
  JumpTunnel* via = nullptr; // the tunnel carrying this session (owned by the previous hop's Connection)
  Clock::time_point last_used;
  Clock::time_point next_keepalive;
  bool dead = false;
  bool idle_rx_pending = false; // idle, and the server sent something (a keepalive answer)
  int idle_rx_seen = 0;         // bytes waiting then
  bool busy() const {
    return !tunnels.empty() ||
           std::any_of(calls.begin(), calls.end(), [](const auto& call) { return !call->command.background; });
  }
};

// A session being opened: waiting for its turn, for its jump host's tunnel, or handshaking.
struct ConnectRequest {
  enum class Stage { waiting, opening_channel, handshaking };
  int id = 0;
  int hop = 0;
  int attempt = 1;
  Stage stage = Stage::waiting;
  Clock::time_point not_before;
  JumpTunnel* tunnel = nullptr;
};

// What a handshake worker hands back.
struct ConnectResult {
  int request_id = 0;
  int fd = -1;
  _LIBSSH2_SESSION* session = nullptr;
  std::unique_ptr<std::atomic<std::int64_t>> last_rx;
  std::optional<SetupFailure> failure;
};

// Frees what a handshake worker handed back that no session will use.
void discard(ConnectResult& result);

struct SshPool::Core : std::enable_shared_from_this<SshPool::Core> {
  explicit Core(PoolOptions options);
  ~Core();

  // ---- called from any thread (pool.cpp) ----
  void wake();
  void submit(const std::shared_ptr<PoolCall>& call);
  bool stopping_now();
  void post_cancel();
  void post_result(ConnectResult result);
  void stop();
  exec::HostStatus status() const;

  // ---- the pool thread ----
  // pool.cpp
  void run();
  void tick();
  void take_inbox();
  void handle_cancels();
  void requeue(const std::shared_ptr<PoolCall>& call);
  void fail_queue(Kind kind, const std::string& message);
  void note_error(const std::string& message);
  void publish();
  void shutdown_all();
  // pool_connect.cpp
  void schedule();
  void request_connect(int hop);
  void advance_connects();
  void spawn_worker(ConnectRequest& request, int fd);
  void handle_result(ConnectResult& result);
  void connect_failed(ConnectRequest& request, const SetupFailure& failure);
  // pool_sessions.cpp
  bool step_all();
  void kill_connection(Connection& c, const std::string& reason);
  void close_connection(Connection& c, bool polite);
  void sweep_dead();
  void timers();
  void arm_waits();
  void on_socket_ready(Connection& c);
  int keepalive_interval(const Connection& c) const;
  std::vector<Connection*> all_connections();
  // pool_channels.cpp
  enum class Outcome { running, done, requeue, dead };
  Outcome step_call(PoolCall& call, bool& progress, std::string& reason);
  std::optional<Outcome> open_call_channel(PoolCall& call, bool& progress, std::string& reason);
  std::optional<Outcome> open_stream_channel(PoolCall& call, bool& progress, std::string& reason);
  std::optional<Outcome> start_command(PoolCall& call, bool& progress, std::string& reason);
  std::optional<Outcome> exchange_io(PoolCall& call, bool& progress, std::string& reason);
  std::optional<Outcome> close_call_channel(PoolCall& call, bool& progress, std::string& reason);
  Outcome free_call_channel(PoolCall& call);
  bool step_tunnel(Connection& c, JumpTunnel& t, std::string& dead_reason);
  bool open_tunnel(Connection& c, JumpTunnel& t, std::string& dead_reason);
  bool forward_to_socket(Connection& c, JumpTunnel& t, std::string& dead_reason);
  bool forward_to_channel(Connection& c, JumpTunnel& t, std::string& dead_reason);
  bool close_tunnel(JumpTunnel& t);

  const std::string& hop_name(int hop) const { return chain[static_cast<std::size_t>(hop)].alias; }

  PoolOptions options;
  std::vector<SshTarget> chain; // ProxyJump hops, then the target
  int target_hop = 0;
  // Declared before everything that holds a Watch or Timer on it, so that it is destroyed after them.
  exec::EventLoop loop;
  exec::EventLoop::Timer timer{loop}; // the nearest deadline (keepalive, retry, close timeout, 1 s at most)
  Clock::time_point timer_expiry;
  std::atomic<bool> tick_posted{false};
  std::thread thread;

  mutable std::mutex mutex; // guards the inbox and the snapshot
  bool stopping = false;
  bool cancel_pending = false;
  std::vector<std::shared_ptr<PoolCall>> inbox_calls;
  std::vector<ConnectResult> inbox_results;
  exec::HostStatus snapshot;

  // Owned by the pool thread.
  std::deque<std::shared_ptr<PoolCall>> queue;
  std::vector<std::unique_ptr<Connection>> targets;
  std::vector<std::unique_ptr<Connection>> jumps; // one shared session per ProxyJump hop
  std::vector<std::unique_ptr<ConnectRequest>> connects;
  int workers = 0;
  int next_id = 1;
  bool again = false;       // something changed: tick again without waiting
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

} // namespace smcp::ssh
