#include "sandbox/exec/helper_executor.h"

#include "sandbox/exec/helper_call.h"
#include "sandbox/exec/quote.h"
#include "sandbox/exec/scripts/embedded.h"

#include <spdlog/spdlog.h>

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <thread>

namespace smcp::exec {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using Kind = HostError::Kind;
using helper::Helper;
using helper::HelperCall;
using helper::HelperHost;
using helper::one_line;
using helper::parse_ready;
using helper::Route;
using helper::StartOutput;

class HelperExecutor final : public RemoteExecutor,
                             public HelperHost,
                             public std::enable_shared_from_this<HelperExecutor> {
public:
  HelperExecutor(std::shared_ptr<RemoteExecutor> inner, HelperOptions options)
      : m_inner(std::move(inner)), m_options(std::move(options)) {}

  ~HelperExecutor() override {
    {
      std::lock_guard lock(m_mutex);
      m_closing = true;
      if (m_starting_call) {
        m_starting_call->cancel();
      }
      if (m_helper) {
        m_helper->call->cancel();
      }
    }
    if (m_starter.joinable()) {
      m_starter.join();
    }
  }

  std::shared_ptr<RemoteCall> start(RemoteCommand command) override {
    if (!command.stream_socket.empty()) {
      return m_inner->start(std::move(command));
    }
    argv_to_exec(command); // the helper runs exec strings with /bin/sh -c, as the login shell would
    if (contains_nul(command.exec)) {
      throw HostError(Kind::invalid, command.what + ": the command contains a NUL byte");
    }
    const bool retry_safe = command.retry_safe;
    // The helper takes a perl program after reading all of it: 1 ms more per 256 bytes sent.
    const auto accept_timeout =
        m_options.accept_timeout + milliseconds((command.exec.size() + command.input.size()) / 256);
    auto call = std::make_shared<HelperCall>(shared_from_this(), std::move(command), accept_timeout);
    Route r;
    {
      std::lock_guard lock(m_mutex);
      r = route_locked(retry_safe);
    }
    call->launch(r);
    return call;
  }

  HostStatus status() const override {
    HostStatus st = m_inner->status();
    std::lock_guard lock(m_mutex);
    if (m_starting) {
      st.shell_env = m_options.snapshot ? "snapshot" : "login-env";
      st.shell_env_note = "the helper is starting (the startup files are running)";
    } else if (m_helper) {
      st.shell_env = m_options.snapshot ? "snapshot" : "login-env";
      st.shell_env_note = "a helper started " + std::to_string(m_helper_started_ms) + " ms after the request (" +
                          std::string(m_options.snapshot ? "with the shell snapshot" : "without a snapshot") +
                          ") runs each command: no login shell per call";
    } else if (!m_last_failure.empty()) {
      st.shell_env = "login-shell";
      st.shell_env_note =
          "every command runs through the login shell (its startup files run each time): " + m_last_failure;
    } else {
      st.shell_env = m_options.snapshot ? "snapshot" : "login-env";
      st.shell_env_note = "the helper starts with the first command";
    }
    return st;
  }

  std::string refresh_environment() override {
    const auto t0 = Clock::now();
    std::unique_lock lock(m_mutex);
    m_cv.wait(lock, [&] { return !m_starting; }); // one that started before the refresh is not enough
    drop_locked("refresh requested");
    m_direct_until = {};
    m_last_failure.clear();
    begin_start_locked();
    m_cv.wait(lock, [&] { return !m_starting; });
    const auto ms = std::chrono::duration_cast<milliseconds>(Clock::now() - t0).count();
    if (!m_helper) {
      return "could not take the shell environment again; commands run through the login shell: " + m_last_failure;
    }
    return std::string(m_options.snapshot ? "shell snapshot taken again" : "login environment taken again") + " in " +
           std::to_string(ms) + " ms";
  }

  // Where a call goes, waiting (until `deadline`) while a helper starts; a `wait` route when the
  // deadline passed or a stop was requested first.
  Route wait_route(bool retry_safe, Clock::time_point deadline, const std::stop_token& stop) override {
    std::unique_lock lock(m_mutex);
    for (;;) {
      Route r = route_locked(retry_safe);
      if (r.kind != Route::Kind::wait || Clock::now() >= deadline || stop.stop_requested()) {
        return r;
      }
      m_cv.wait_until(lock, std::min(deadline, Clock::now() + milliseconds(100)));
    }
  }

  // The helper of `generation` is not to be used again (its startup files changed, or its
  // socket cannot be reached).
  void drop(std::uint64_t generation, const std::string& why) override {
    std::lock_guard lock(m_mutex);
    if (m_helper && m_helper->generation == generation) {
      drop_locked(why);
    }
  }

  // The helper of `generation` did not take a request in time: stopped (SIGSTOP, a frozen cgroup,
  // a suspended node) or hung. Its channel is closed (it exits when it runs again, before taking
  // anything) and the next call starts another.
  void hung(std::uint64_t generation, milliseconds waited) override {
    std::lock_guard lock(m_mutex);
    if (m_helper && m_helper->generation == generation) {
      spdlog::warn("host {}: the helper did not take a request within {} ms (stopped or hung?); starting another",
                   m_options.name, waited.count());
      drop_locked("it did not take a request");
    }
  }

  bool streams_queued() const override {
    const HostStatus st = m_inner->status();
    return st.queued > 0 || st.connecting > 0;
  }

  // Is the helper's socket still there? nullopt: could not tell.
  // "present" only when something accepts connections on the socket: a socket file left by a
  // helper that was killed (SIGKILL, the OOM killer) refuses them and counts as gone, so a new
  // helper starts rather than sshd being blamed. The answer carries a nonce: what the login
  // shell's startup files print cannot answer for it.
  std::optional<bool> socket_present(const std::string& socket) override {
    try {
      const std::string nonce = helper::random_nonce();
      RemoteCommand probe;
      probe.exec = "exec " + sh_quote(m_options.perl) + " -";
      probe.input = helper::socket_probe_program(socket, nonce);
      probe.what = "looking for the helper's socket";
      probe.retry_safe = true;
      const RemoteResult r = m_inner->run(std::move(probe), std::chrono::seconds(15));
      if (auto answer = helper::socket_probe_answer(r.out, nonce)) {
        return answer;
      }
    } catch (const HostError& e) {
      spdlog::debug("host {}: cannot look for the helper's socket: {}", m_options.name, e.what());
    }
    return std::nullopt;
  }

  // The server refuses streams to Unix sockets: calls go directly for a while.
  void refuse_streams(const std::string& why) override {
    std::lock_guard lock(m_mutex);
    drop_locked(why);
    fail_locked("the server refuses streams to the helper's socket (sshd AllowStreamLocalForwarding / "
                "DisableForwarding): " +
                why);
  }

  RemoteExecutor& inner() override { return *m_inner; }
  const std::string& name() const override { return m_options.name; }

private:
  // Where a call goes now; starts a helper when there is none. Calls that may be sent twice
  // (reads, kills, probes) do not wait for a starting helper: they go directly.
  Route route_locked(bool retry_safe) {
    if (m_helper && !m_helper->call->wait_until(Clock::now())) {
      return {Route::Kind::helper, m_helper};
    }
    if (m_helper) {
      spdlog::info("host {}: the helper ended; starting another", m_options.name);
      m_helper.reset();
    }
    if (Clock::now() < m_direct_until || m_closing) {
      return {Route::Kind::direct, std::nullopt};
    }
    if (!m_starting) {
      begin_start_locked();
    }
    return {retry_safe ? Route::Kind::direct : Route::Kind::wait, std::nullopt};
  }

  void drop_locked(const std::string& why) {
    if (m_helper) {
      spdlog::debug("host {}: replacing the helper: {}", m_options.name, why);
      m_helper->call->cancel(); // its stdin ends: it exits
      m_helper.reset();
    }
  }

  void fail_locked(const std::string& why) {
    m_last_failure = why;
    m_direct_until = Clock::now() + m_options.retry_after;
    spdlog::warn("host {}: {}; commands run through the login shell for now (its startup files run for each)",
                 m_options.name, why);
  }

  // The helper starts on a thread of its own: no call waits for it longer than its own deadline.
  void begin_start_locked() {
    m_starting = true;
    if (m_starter.joinable()) {
      m_starter.join(); // the last start's thread, done but for its return
    }
    m_starter = std::thread([this] {
      const auto t0 = Clock::now();
      std::string why;
      auto h = start_helper(why);
      std::lock_guard lock(m_mutex);
      m_starting = false;
      m_starting_call.reset();
      if (h && !m_closing) {
        m_last_failure.clear();
        m_helper_started_ms = std::chrono::duration_cast<milliseconds>(Clock::now() - t0).count();
        h->generation = ++m_generation;
        m_helper = std::move(h);
        spdlog::info("host {}: helper ready in {} ms ({})", m_options.name, m_helper_started_ms,
                     m_options.snapshot ? "shell snapshot taken" : "login environment");
      } else if (!m_closing) {
        fail_locked(why);
      }
      m_cv.notify_all();
    });
  }

  std::optional<Helper> start_helper(std::string& why);

  std::shared_ptr<RemoteExecutor> m_inner;
  const HelperOptions m_options;
  mutable std::mutex m_mutex;   // never held while a helper starts
  std::condition_variable m_cv; // a start ended
  std::optional<Helper> m_helper;
  bool m_starting = false;
  bool m_closing = false;
  std::shared_ptr<RemoteCall> m_starting_call;
  std::thread m_starter;
  std::uint64_t m_generation = 0;
  Clock::time_point m_direct_until{};
  std::string m_last_failure;
  std::int64_t m_helper_started_ms = 0;
};

std::optional<Helper> HelperExecutor::start_helper(std::string& why) {
  const auto t0 = Clock::now();
  const std::string nonce = helper::random_nonce();
  auto output = std::make_shared<StartOutput>(nonce);
  RemoteCommand cmd;
  cmd.exec = "exec " + sh_quote(m_options.perl) + " -";
  // The nonce travels in the program (stdin), never in a command line other users could read.
  cmd.input = std::string("$mode = '") + (m_options.snapshot ? "snapshot" : "skip") + "';\n$nonce = '" + nonce +
              "';\n" + std::string(scripts::helper_pl) + "\n__END__\n";
  cmd.what = "starting the helper";
  cmd.retry_safe = false;
  cmd.keep_input_open = true;
  cmd.background = true; // an idle session closes all the same; a new helper starts with the next call
  cmd.on_output = [output](Stream stream, std::string_view data) { output->feed(stream, data); };
  std::shared_ptr<RemoteCall> call;
  try {
    call = m_inner->start(std::move(cmd));
  } catch (const HostError& e) {
    why = std::string("cannot start the helper: ") + e.what();
    return std::nullopt;
  }
  {
    std::lock_guard lock(m_mutex);
    m_starting_call = call;
    if (m_closing) {
      call->cancel();
    }
  }
  const auto deadline = t0 + m_options.start_timeout;
  std::optional<std::string> line;
  while (!(line = output->line(milliseconds(20)))) {
    if (call->wait_until(Clock::now()) || Clock::now() >= deadline) {
      break;
    }
  }
  const auto ready = line ? parse_ready(*line) : std::nullopt;
  if (ready) {
    return Helper{0, ready->second, ready->first, call};
  }
  call->cancel();
  if (line && line->rfind("failed ", 0) == 0) {
    why = "the helper could not start: " + line->substr(7);
  } else if (line) {
    why = "the helper said: " + one_line(*line);
  } else if (Clock::now() >= deadline) {
    why = "the helper did not start within " + std::to_string(m_options.start_timeout.count() / 1000) + " s";
  } else {
    std::string err = one_line(output->err());
    try {
      call->result();
    } catch (const HostError& e) {
      err = err.empty() ? e.what() : err;
    }
    why = "the helper could not start" + (err.empty() ? std::string() : ": " + err);
  }
  return std::nullopt;
}

} // namespace

std::shared_ptr<RemoteExecutor> make_helper_executor(std::shared_ptr<RemoteExecutor> inner, HelperOptions options) {
  return std::make_shared<HelperExecutor>(std::move(inner), std::move(options));
}

} // namespace smcp::exec
