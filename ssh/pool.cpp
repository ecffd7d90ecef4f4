#include "ssh/pool_internal.h"

#include "sandbox/exec/captured_output.h"

#include <algorithm>
#include <csignal>
#include <pthread.h>
#include <unistd.h>

namespace smcp::ssh {

using exec::HostStatus;
using exec::RemoteCall;
using exec::RemoteCommand;
using exec::RemoteResult;

namespace {

std::int64_t wall_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

} // namespace

void discard(ConnectResult& result) {
  free_session(result.session, result.fd, true);
  if (result.fd >= 0) {
    ::close(result.fd);
  }
}

void block_sigpipe() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

// ---- PoolCall ----

bool PoolCall::wait_until(Clock::time_point deadline, std::stop_token stop) {
  std::unique_lock lock(m_mutex);
  return m_cv.wait_until(lock, stop, deadline, [&] { return m_finished; });
}

bool PoolCall::write(const std::string& data) {
  {
    std::lock_guard lock(m_input_mutex);
    m_more_input += data;
  }
  if (auto core = m_core.lock()) {
    core->wake();
  }
  return true;
}

void PoolCall::take_more_input() {
  std::lock_guard lock(m_input_mutex);
  if (!m_more_input.empty()) {
    command.input += m_more_input;
    m_more_input.clear();
  }
}

void PoolCall::cancel() {
  cancel_requested = true;
  if (auto core = m_core.lock()) {
    core->post_cancel();
  }
}

RemoteResult PoolCall::result() {
  std::unique_lock lock(m_mutex);
  m_cv.wait(lock, [&] { return m_finished; });
  if (m_error) {
    // A fresh exception in the caller's thread: copies of one std::runtime_error share their
    // message buffer, and the pool thread may destroy the original at any time.
    throw HostError(m_error->first, m_error->second);
  }
  return m_result;
}

void PoolCall::finish(std::optional<HostError> error) {
  {
    std::lock_guard lock(m_mutex);
    if (m_finished) {
      return;
    }
    m_finished = true;
    if (error) {
      m_error.emplace(error->kind(), std::string(error->what()));
    }
    m_result = std::move(collected);
  }
  m_cv.notify_all();
}

void PoolCall::deliver(exec::Stream stream, const char* data, std::size_t n) {
  if (command.on_output) {
    command.on_output(stream, std::string_view(data, n));
  } else {
    // The head of each stream, like every executor's run (captured_output.h): the rest is read and dropped.
    exec::append_captured(stream == exec::Stream::out ? collected.out : collected.err, std::string_view(data, n));
  }
}

// ---- Core: construction and the calls from other threads ----

SshPool::Core::Core(PoolOptions opts) : options(std::move(opts)) {
  for (const auto& j : options.target.jumps) {
    chain.push_back(j);
  }
  chain.push_back(options.target);
  target_hop = static_cast<int>(chain.size()) - 1;
  jumps.resize(static_cast<std::size_t>(target_hop));
  snapshot.name = options.name;
  snapshot.target = options.target.endpoint();
  for (const auto& j : options.target.jumps) {
    snapshot.via.push_back(j.alias + " (" + j.endpoint() + ")");
  }
  snapshot.kind = "ssh";
  snapshot.has_connection = true;
  snapshot.state = "idle";
  snapshot.max_sessions = options.limits.max_sessions;
  snapshot.max_channels_per_session = options.limits.max_channels_per_session;
  snapshot.max_concurrency = options.limits.max_concurrency;
  snapshot.host_key_policy = policy_name(options.host_key_policy);
}

SshPool::Core::~Core() = default;

// Runs a tick on the pool thread soon; wakes coalesce into one tick.
void SshPool::Core::wake() {
  if (!tick_posted.exchange(true)) {
    loop.post([this] {
      tick_posted = false;
      tick();
    });
  }
}

void SshPool::Core::submit(const std::shared_ptr<PoolCall>& call) {
  bool accepted = false;
  {
    std::lock_guard lock(mutex);
    accepted = !stopping;
    if (accepted) {
      inbox_calls.push_back(call);
    }
  }
  if (!accepted) {
    call->finish(HostError(Kind::unreachable, "the connection pool of " + options.name + " is shutting down"));
    return;
  }
  wake();
}

bool SshPool::Core::stopping_now() {
  std::lock_guard lock(mutex);
  return stopping;
}

void SshPool::Core::post_cancel() {
  {
    std::lock_guard lock(mutex);
    cancel_pending = true;
  }
  wake();
}

void SshPool::Core::post_result(ConnectResult result) {
  bool accepted = false;
  {
    std::lock_guard lock(mutex);
    accepted = !stopping;
    if (accepted) {
      inbox_results.push_back(std::move(result));
    }
  }
  if (!accepted) { // the loop is gone: clean up here
    discard(result);
    return;
  }
  wake();
}

void SshPool::Core::stop() {
  {
    std::lock_guard lock(mutex);
    stopping = true;
  }
  wake();
  if (thread.joinable()) {
    thread.join();
  }
}

HostStatus SshPool::Core::status() const {
  std::lock_guard lock(mutex);
  return snapshot;
}

// ---- the pool thread ----

void SshPool::Core::note_error(const std::string& message) {
  last_error = message;
  last_error_at = wall_ms();
}

void SshPool::Core::run() {
  block_sigpipe();
  wake();
  loop.run();
  shutdown_all();
}

// One round of the pool's work: new calls and handshake results, cancellations, scheduling,
// stepping every channel until nothing moves, timers; then what to wait for (arm_waits).
void SshPool::Core::tick() {
  again = false;
  take_inbox();
  if (stopping_now()) {
    loop.stop();
    return;
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
  arm_waits();
  if (again) {
    wake();
  }
}

void SshPool::Core::take_inbox() {
  std::vector<std::shared_ptr<PoolCall>> fresh;
  std::vector<ConnectResult> results;
  {
    std::lock_guard lock(mutex);
    fresh.swap(inbox_calls);
    results.swap(inbox_results);
  }
  for (auto& call : fresh) {
    queue.push_back(std::move(call));
  }
  for (auto& r : results) {
    handle_result(r);
  }
}

void SshPool::Core::handle_cancels() {
  {
    std::lock_guard lock(mutex);
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
  again = true; // running calls notice the flag when stepped
}

void SshPool::Core::requeue(const std::shared_ptr<PoolCall>& call) {
  call->state = PoolCall::State::queued;
  call->connection = nullptr;
  call->channel = nullptr;
  call->written = 0;
  call->eof_sent = false;
  call->exec_sent = false;
  call->open_pending = false;
  call->collected = RemoteResult{};
  queue.push_front(call);
  again = true;
}

void SshPool::Core::fail_queue(Kind kind, const std::string& message) {
  publish(); // callers that look at the status right after the error see why
  while (!queue.empty()) {
    queue.front()->finish(HostError(kind, message));
    queue.pop_front();
  }
}

void SshPool::Core::publish() {
  HostStatus s;
  {
    std::lock_guard lock(mutex);
    s = snapshot;
  }
  s.sessions = 0;
  s.channels_in_use = 0;
  for (auto& c : targets) {
    if (!c->dead) {
      ++s.sessions;
      s.channels_in_use += static_cast<int>(c->calls.size());
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
  std::lock_guard lock(mutex);
  snapshot = std::move(s);
}

void SshPool::Core::shutdown_all() {
  const std::string msg = "the connection pool of " + options.name + " is shutting down";
  fail_queue(Kind::unreachable, msg);
  {
    std::lock_guard lock(mutex);
    for (auto& call : inbox_calls) {
      call->finish(HostError(Kind::unreachable, msg));
    }
    inbox_calls.clear();
    for (auto& r : inbox_results) {
      discard(r);
    }
    inbox_results.clear();
  }
  for (auto& c : targets) {
    for (auto& call : c->calls) {
      call->channel = nullptr;
      call->finish(HostError(Kind::unreachable, msg));
    }
    c->calls.clear();
    close_connection(*c, true);
  }
  targets.clear();
  for (auto& j : jumps) {
    if (j) {
      for (auto& t : j->tunnels) {
        release_tunnel(*t);
      }
      j->tunnels.clear();
      close_connection(*j, true);
    }
  }
  jumps.clear();
}

// ---- SshPool ----

SshPool::SshPool(PoolOptions options) : m_core(std::make_shared<Core>(std::move(options))) {
  libssh2_global_init();
  m_core->thread = std::thread([core = m_core.get()] { core->run(); });
}

SshPool::~SshPool() {
  m_core->stop();
}

std::shared_ptr<RemoteCall> SshPool::start(RemoteCommand command) {
  auto call = std::make_shared<PoolCall>(std::move(command), m_core);
  m_core->submit(call);
  return call;
}

HostStatus SshPool::status() const {
  return m_core->status();
}

} // namespace smcp::ssh
