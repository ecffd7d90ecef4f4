// A RemoteExecutor that answers each start() with the next scripted reply and records what it was
// asked: what the helper executor's tests put under it (the helper's start, its answer frames).
// Header-only.
#pragma once

#include "sandbox/exec/remote_executor.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace smcp::testing {

// A call whose output was delivered when it started (or after a delay); it ends at once, or when
// cancelled.
class DoneCall final : public exec::RemoteCall {
public:
  DoneCall(exec::RemoteResult result, std::optional<exec::HostError> error, bool ends)
      : m_result(std::move(result)), m_error(std::move(error)), m_ends(ends) {}
  bool wait_until(std::chrono::steady_clock::time_point deadline, std::stop_token stop) override {
    std::unique_lock lock(m_mutex);
    while (!m_ends && !m_cancelled && std::chrono::steady_clock::now() < deadline && !stop.stop_requested()) {
      m_cv.wait_until(lock, std::min(deadline, std::chrono::steady_clock::now() + std::chrono::milliseconds(20)));
    }
    return m_ends || m_cancelled;
  }
  void cancel() override {
    std::lock_guard lock(m_mutex);
    m_cancelled = true;
    m_cv.notify_all();
  }
  void end() {
    std::lock_guard lock(m_mutex);
    m_ends = true;
    m_cv.notify_all();
  }
  exec::RemoteResult result() override {
    if (m_error) {
      throw *m_error;
    }
    return m_result;
  }
  bool cancelled() const {
    std::lock_guard lock(m_mutex);
    return m_cancelled;
  }
  // Whether its channel is open (false: still waiting in a queue, as a pool reports it).
  bool reached() const override { return m_reached.load(); }
  // Late input (the helper's request, written after its hello): recorded.
  bool write(const std::string& data) override {
    std::lock_guard lock(m_mutex);
    m_written += data;
    return true;
  }
  std::string written() const {
    std::lock_guard lock(m_mutex);
    return m_written;
  }
  std::atomic<bool> m_reached{true};

private:
  mutable std::mutex m_mutex;
  std::condition_variable m_cv;
  exec::RemoteResult m_result;
  std::optional<exec::HostError> m_error;
  std::string m_written;
  bool m_ends;
  bool m_cancelled = false;
};

class ScriptedExecutor final : public exec::RemoteExecutor {
public:
  struct Reply {
    std::string output; // delivered to on_output (Stream::out)
    std::optional<exec::HostError> error;
    bool ends = true;                   // false: a long-lived call (the helper), or one that never answers
    std::chrono::milliseconds delay{0}; // the output comes this late (from another thread)
    bool reached = true;                // false: its channel is not open yet (DoneCall::m_reached)
  };
  ~ScriptedExecutor() override {
    for (auto& t : m_threads) {
      t.join();
    }
  }
  std::shared_ptr<exec::RemoteCall> start(exec::RemoteCommand command) override {
    std::lock_guard lock(m_mutex);
    commands.push_back(command);
    if (replies.empty()) {
      throw exec::HostError(exec::HostError::Kind::io, "no reply scripted for " + command.what);
    }
    Reply r = replies.front();
    replies.pop_front();
    // "{nonce}" in a reply is the nonce the command carries (the helper's start program sets
    // `$nonce = '...'`; a probe program `my $n = '...'`): what the real helper would echo.
    for (const char* key : {"$nonce = '", "my $n = '"}) {
      const auto at = command.input.find(key);
      const auto mark = r.output.find("{nonce}");
      if (at != std::string::npos && mark != std::string::npos) {
        r.output.replace(mark, 7, command.input.substr(at + std::string(key).size(), 32));
      }
    }
    auto call =
        std::make_shared<DoneCall>(exec::RemoteResult{0, {}, command.on_output ? "" : r.output, ""}, r.error, r.ends);
    call->m_reached = r.reached;
    if (command.on_output && !r.output.empty()) {
      if (r.delay.count() > 0) {
        m_threads.emplace_back([on_output = command.on_output, r] {
          std::this_thread::sleep_for(r.delay);
          on_output(exec::Stream::out, r.output);
        });
      } else {
        command.on_output(exec::Stream::out, r.output);
      }
    }
    calls.push_back(call);
    return call;
  }
  // What status() says of the connection's queue (calls waiting for a channel).
  exec::HostStatus status() const override {
    exec::HostStatus st;
    st.queued = queued.load();
    return st;
  }
  std::atomic<int> queued{0};
  std::size_t started() {
    std::lock_guard lock(m_mutex);
    return commands.size();
  }
  std::mutex m_mutex;
  std::deque<Reply> replies;
  std::vector<exec::RemoteCommand> commands;
  std::vector<std::shared_ptr<DoneCall>> calls;

private:
  std::vector<std::thread> m_threads;
};

} // namespace smcp::testing
