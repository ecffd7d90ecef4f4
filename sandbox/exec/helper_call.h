// A call of HelperExecutor (helper_executor.cpp): sent to the host's helper as a request over a
// stream, or through the inner executor; pending while a helper starts; sent again when nothing
// ran (a stale snapshot, a helper that did not take it in time, a socket that is gone, a helper
// that could not fork). Internal to the helper executor.
#pragma once

#include "sandbox/exec/helper_frames.h"
#include "sandbox/exec/remote_executor.h"

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>

namespace smcp::exec::helper {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// A running helper: its socket, the token every request names, and the call whose channel keeps
// it alive.
struct Helper {
  std::uint64_t generation = 0;
  std::string socket;
  std::string token;
  std::shared_ptr<RemoteCall> call;
};

// Where a call goes now: to the helper, through the inner executor, or nowhere yet (a helper is
// starting).
struct Route {
  enum class Kind { helper, direct, wait } kind = Kind::wait;
  std::optional<Helper> helper;
};

// What a call asks of its executor (HelperExecutor).
class HelperHost {
public:
  virtual ~HelperHost() = default;
  virtual RemoteExecutor& inner() = 0;
  virtual const std::string& name() const = 0;
  // Where a call goes, waiting (until `deadline`) while a helper starts; a `wait` route when the
  // deadline passed or a stop was requested first.
  virtual Route wait_route(bool retry_safe, Clock::time_point deadline, const std::stop_token& stop) = 0;
  // The helper of `generation` is not to be used again (its startup files changed, or its
  // socket cannot be reached).
  virtual void drop(std::uint64_t generation, const std::string& why) = 0;
  // Calls wait in the connection's queue (or for a session being set up): a request not taken
  // yet may not have reached the helper at all.
  virtual bool streams_queued() const = 0;
  // The helper of `generation` did not take a request within `waited`: stopped or hung.
  virtual void hung(std::uint64_t generation, milliseconds waited) = 0;
  // Is the helper's socket still there? nullopt: could not tell.
  virtual std::optional<bool> socket_present(const std::string& socket) = 0;
  // The server refuses streams to Unix sockets: calls go directly for a while.
  virtual void refuse_streams(const std::string& why) = 0;
};

// A request waits for the helper's hello on its stream and is written then, unless the call gave
// up on that stream first: a request sent again to another helper never reached the slow one, so
// nothing runs twice. Shared by the call and its decoder's hello callback (executor thread).
class Handshake {
public:
  explicit Handshake(std::string request) : m_request(std::move(request)) {}
  // The stream's call, once started (a hello may have come before).
  void attach(const std::shared_ptr<RemoteCall>& inner);
  void on_hello();
  // The call gives up on this stream: true when the request was never written (nothing can run
  // from it); false when it was (the helper has it).
  bool give_up();
  bool sent() const {
    std::lock_guard lock(m_mutex);
    return m_sent;
  }

private:
  void send_locked();

  mutable std::mutex m_mutex;
  std::weak_ptr<RemoteCall> m_inner;
  std::string m_request;
  bool m_hello = false, m_sent = false, m_gave_up = false;
};

class HelperCall final : public RemoteCall {
public:
  HelperCall(std::shared_ptr<HelperHost> executor, RemoteCommand command, milliseconds accept_timeout)
      : m_executor(std::move(executor)), m_command(std::move(command)), m_accept_timeout(accept_timeout) {}

  // Sends the request to the route's helper, or the command itself through the inner executor;
  // a `wait` route leaves the call pending (wait_until sends it when a helper is there).
  void launch(const Route& route);

  bool wait_until(Clock::time_point deadline, std::stop_token stop) override;
  void cancel() override;
  RemoteResult result() override;

private:
  struct Snapshot {
    std::shared_ptr<RemoteCall> inner;
    std::shared_ptr<Decoder> decoder;
    std::shared_ptr<Handshake> handshake;
    std::uint64_t generation = 0;
    Clock::time_point sent_at, retry_at;
    milliseconds accept_timeout{};
    bool cancelled = false;
    std::string socket;
  };
  Snapshot snapshot() const {
    std::lock_guard lock(m_mutex);
    return snapshot_locked();
  }
  Snapshot snapshot_locked() const {
    return {m_inner,    m_decoder,        m_handshake, m_generation, m_sent_at,
            m_retry_at, m_accept_timeout, m_cancelled, m_socket};
  }
  // The call is pending again (a new route is asked for); false when it may not be sent again.
  bool unsend(bool resend);
  // Pending: waits for a route (and the pause before a retry) and sends; false at the deadline.
  bool send_pending(const Snapshot& s, Clock::time_point deadline, std::stop_token stop);
  // The request ended: false when it is sent again (nothing ran), true when this is its end.
  bool finished(const Snapshot& s);
  // Nothing reached a helper: the stream was refused or closed before the helper took it.
  void not_reached(const Snapshot& s);

  std::shared_ptr<HelperHost> m_executor;
  const RemoteCommand m_command;
  mutable std::mutex m_mutex;
  std::shared_ptr<RemoteCall> m_inner; // null: pending (not sent, or to be sent again)
  std::shared_ptr<Decoder> m_decoder;  // null: sent directly
  std::shared_ptr<Handshake> m_handshake;
  std::optional<HostError> m_launch_error;
  std::string m_nothing_ran; // why the call ended without running anything
  std::uint64_t m_generation = 0;
  std::string m_socket; // the helper's, when sent to one
  Clock::time_point m_sent_at, m_retry_at;
  milliseconds m_accept_timeout;
  int m_resends = 0;
  int m_busy_retries = 0;
  int m_refused = 0;
  bool m_cancelled = false;
};

} // namespace smcp::exec::helper
