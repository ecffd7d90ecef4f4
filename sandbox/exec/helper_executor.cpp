#include "sandbox/exec/helper_executor.h"

#include "sandbox/exec/captured_output.h"
#include "sandbox/exec/quote.h"
#include "sandbox/exec/scripts/embedded.h"

#include <spdlog/spdlog.h>

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>

namespace smcp::exec {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using Kind = HostError::Kind;

constexpr std::size_t k_max_frame = 16 * 1024 * 1024;

// A running helper: its socket, the token every request names, and the call whose channel keeps
// it alive.
struct Helper {
  std::uint64_t generation = 0;
  std::string socket;
  std::string token;
  std::shared_ptr<RemoteCall> call;
};

// "ready TOKEN SOCKET": the token is 32 lowercase hex digits, the socket an absolute path.
std::optional<std::pair<std::string, std::string>> parse_ready(const std::string& line) {
  static constexpr std::string_view k_ready = "ready ";
  static constexpr std::size_t k_token = 32;
  if (line.rfind(k_ready, 0) != 0 || line.size() < k_ready.size() + k_token + 2) {
    return std::nullopt;
  }
  std::string token = line.substr(k_ready.size(), k_token);
  std::string socket = line.substr(k_ready.size() + k_token + 1);
  if (token.find_first_not_of("0123456789abcdef") != std::string::npos || line[k_ready.size() + k_token] != ' ' ||
      socket.empty() || socket[0] != '/') {
    return std::nullopt;
  }
  return std::make_pair(std::move(token), std::move(socket));
}

// The answer frames of one request, decoded on the executor's thread (helper.pl says what they
// are): output goes to the command's on_output, or is collected.
class Decoder {
public:
  explicit Decoder(std::function<void(Stream, std::string_view)> on_output) : m_on_output(std::move(on_output)) {}

  void feed(std::string_view data) {
    std::lock_guard lock(m_mutex);
    m_buffer.append(data);
    std::size_t at = 0;
    while (!m_state.broken && m_buffer.size() - at >= 5) {
      const auto* p = reinterpret_cast<const unsigned char*>(m_buffer.data() + at);
      const std::size_t len = (std::size_t(p[1]) << 24) | (std::size_t(p[2]) << 16) | (std::size_t(p[3]) << 8) | p[4];
      if (len > k_max_frame) {
        m_state.broken = true;
        break;
      }
      if (m_buffer.size() - at - 5 < len) {
        break;
      }
      frame(static_cast<char>(p[0]), std::string_view(m_buffer).substr(at + 5, len));
      at += 5 + len;
    }
    m_buffer.erase(0, at);
  }

  struct State {
    bool accepted = false; // the helper started the command (before that, nothing ran)
    bool stale = false;    // nothing ran: the startup files (or the snapshot file) changed
    bool broken = false;
    std::string failed; // the helper could not run it
    std::optional<int> exit_status, exit_signal;
  };
  State state() const {
    std::lock_guard lock(m_mutex);
    return m_state;
  }
  // Collected output, when there is no on_output.
  std::string take(Stream stream) {
    std::lock_guard lock(m_mutex);
    return std::move(stream == Stream::out ? m_out : m_err);
  }

private:
  void frame(char type, std::string_view data) {
    switch (type) {
    case 'a':
      m_state.accepted = true;
      break;
    case 'o':
    case 'e': {
      const Stream stream = type == 'o' ? Stream::out : Stream::err;
      if (m_on_output) {
        m_on_output(stream, data);
      } else {
        append_captured(stream == Stream::out ? m_out : m_err, data); // at most 16 MiB kept per stream
      }
      break;
    }
    case 'x':
      if (data.rfind("exit ", 0) == 0) {
        m_state.exit_status = std::atoi(std::string(data.substr(5)).c_str());
      } else if (data.rfind("signal ", 0) == 0) {
        m_state.exit_signal = std::atoi(std::string(data.substr(7)).c_str());
      }
      break;
    case 's':
      m_state.stale = true;
      break;
    case 'f':
      m_state.failed = std::string(data);
      break;
    default:
      m_state.broken = true;
    }
  }

  mutable std::mutex m_mutex;
  std::function<void(Stream, std::string_view)> m_on_output;
  std::string m_buffer, m_out, m_err;
  State m_state;
};

// What the helper prints while it starts, up to its first line.
class StartOutput {
public:
  void feed(Stream stream, std::string_view data) {
    std::lock_guard lock(m_mutex);
    std::string& to = stream == Stream::out ? m_out : m_err;
    to.append(data);
    if (to.size() > 64 * 1024) {
      to.erase(0, to.size() - 4096); // the marker and answer are at the end
    }
    m_cv.notify_all();
  }
  // The helper's answer: the line after its marker (what the startup files print comes first).
  std::optional<std::string> line(milliseconds wait) {
    std::unique_lock lock(m_mutex);
    m_cv.wait_for(lock, wait, [&] { return answer().has_value(); });
    return answer();
  }
  std::string err() const {
    std::lock_guard lock(m_mutex);
    return m_err;
  }

private:
  std::optional<std::string> answer() const {
    static constexpr std::string_view k_marker = "\nsandbox-mcp-helper: ";
    auto at = m_out.find(k_marker);
    if (at == std::string::npos) {
      return std::nullopt;
    }
    at += k_marker.size();
    auto nl = m_out.find('\n', at);
    if (nl == std::string::npos) {
      return std::nullopt;
    }
    return m_out.substr(at, nl - at);
  }

  mutable std::mutex m_mutex;
  std::condition_variable m_cv;
  std::string m_out, m_err;
};

std::string one_line(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) {
    text.pop_back();
  }
  for (auto& c : text) {
    if (c == '\n') {
      c = ' ';
    }
  }
  return text.size() > 500 ? text.substr(0, 500) + "..." : text;
}

class HelperExecutor;

class HelperCall final : public RemoteCall {
public:
  HelperCall(std::shared_ptr<HelperExecutor> executor, RemoteCommand command)
      : m_executor(std::move(executor)), m_command(std::move(command)) {}

  // Sends the request to `helper`, or the command itself through the inner executor.
  void launch(const std::optional<Helper>& helper);

  bool wait_until(Clock::time_point deadline, std::stop_token stop) override;
  void cancel() override;
  RemoteResult result() override;

private:
  std::shared_ptr<RemoteCall> current() const {
    std::lock_guard lock(m_mutex);
    return m_inner;
  }

  std::shared_ptr<HelperExecutor> m_executor;
  const RemoteCommand m_command;
  mutable std::mutex m_mutex;
  std::shared_ptr<RemoteCall> m_inner;
  std::shared_ptr<Decoder> m_decoder; // null: sent directly
  std::uint64_t m_generation = 0;
  int m_resends = 0;
  int m_refused = 0;
  bool m_cancelled = false;
};

class HelperExecutor final : public RemoteExecutor, public std::enable_shared_from_this<HelperExecutor> {
public:
  HelperExecutor(std::shared_ptr<RemoteExecutor> inner, HelperOptions options)
      : m_inner(std::move(inner)), m_options(std::move(options)) {}

  ~HelperExecutor() override {
    std::lock_guard lock(m_mutex);
    if (m_helper) {
      m_helper->call->cancel();
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
    auto call = std::make_shared<HelperCall>(shared_from_this(), std::move(command));
    call->launch(helper());
    return call;
  }

  HostStatus status() const override {
    HostStatus st = m_inner->status();
    std::unique_lock lock(m_mutex, std::try_to_lock); // held while a helper starts: do not wait for it
    if (!lock.owns_lock()) {
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
    {
      std::lock_guard lock(m_mutex);
      drop_locked("refresh requested");
      m_direct_until = {};
      m_last_failure.clear();
    }
    const auto t0 = Clock::now();
    auto h = helper();
    const auto ms = std::chrono::duration_cast<milliseconds>(Clock::now() - t0).count();
    std::lock_guard lock(m_mutex);
    if (!h) {
      return "could not take the shell environment again; commands run through the login shell: " + m_last_failure;
    }
    return std::string(m_options.snapshot ? "shell snapshot taken again" : "login environment taken again") + " in " +
           std::to_string(ms) + " ms";
  }

  // The running helper, started when there is none; nullopt: send calls directly.
  std::optional<Helper> helper() {
    std::lock_guard lock(m_mutex);
    if (m_helper && !m_helper->call->wait_until(Clock::now())) {
      return *m_helper;
    }
    if (m_helper) {
      spdlog::info("host {}: the helper ended; starting another", m_options.name);
      m_helper.reset();
    }
    if (Clock::now() < m_direct_until) {
      return std::nullopt;
    }
    return start_locked();
  }

  // The helper of `generation` is not to be used again (its startup files changed, or its
  // socket cannot be reached).
  void drop(std::uint64_t generation, const std::string& why) {
    std::lock_guard lock(m_mutex);
    if (m_helper && m_helper->generation == generation) {
      drop_locked(why);
    }
  }

  // The server refuses streams to Unix sockets: calls go directly for a while.
  void refuse_streams(const std::string& why) {
    std::lock_guard lock(m_mutex);
    drop_locked(why);
    fail_locked("the server refuses streams to the helper's socket (sshd AllowStreamLocalForwarding / "
                "DisableForwarding): " +
                why);
  }

  RemoteExecutor& inner() { return *m_inner; }
  const std::string& name() const { return m_options.name; }

private:
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

  std::optional<Helper> start_locked() {
    const auto t0 = Clock::now();
    auto output = std::make_shared<StartOutput>();
    RemoteCommand cmd;
    cmd.exec = "exec " + sh_quote(m_options.perl) + " -";
    cmd.input = std::string("$mode = '") + (m_options.snapshot ? "snapshot" : "skip") + "';\n" +
                std::string(scripts::helper_pl) + "\n__END__\n";
    cmd.what = "starting the helper";
    cmd.retry_safe = false;
    cmd.keep_input_open = true;
    cmd.background = true; // an idle session closes all the same; a new helper starts with the next call
    cmd.on_output = [output](Stream stream, std::string_view data) { output->feed(stream, data); };
    std::shared_ptr<RemoteCall> call;
    try {
      call = m_inner->start(std::move(cmd));
    } catch (const HostError& e) {
      fail_locked(std::string("cannot start the helper: ") + e.what());
      return std::nullopt;
    }
    const auto deadline = t0 + m_options.start_timeout;
    std::optional<std::string> line;
    while (!(line = output->line(milliseconds(20)))) {
      if (call->wait_until(Clock::now()) || Clock::now() >= deadline) {
        break;
      }
    }
    const auto ready = line ? parse_ready(*line) : std::nullopt;
    if (!ready) {
      call->cancel();
      std::string why;
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
      fail_locked(why);
      return std::nullopt;
    }
    m_last_failure.clear();
    m_helper_started_ms = std::chrono::duration_cast<milliseconds>(Clock::now() - t0).count();
    m_helper = Helper{++m_generation, ready->second, ready->first, call};
    spdlog::info("host {}: helper ready in {} ms ({})", m_options.name, m_helper_started_ms,
                 m_options.snapshot ? "shell snapshot taken" : "login environment");
    return m_helper;
  }

  std::shared_ptr<RemoteExecutor> m_inner;
  const HelperOptions m_options;
  mutable std::mutex m_mutex; // held while a helper starts: the calls that need it wait
  std::optional<Helper> m_helper;
  std::uint64_t m_generation = 0;
  Clock::time_point m_direct_until{};
  std::string m_last_failure;
  std::int64_t m_helper_started_ms = 0;
};

void HelperCall::launch(const std::optional<Helper>& helper) {
  std::shared_ptr<RemoteCall> inner;
  std::shared_ptr<Decoder> decoder;
  if (!helper) {
    inner = m_executor->inner().start(m_command);
  } else {
    decoder = std::make_shared<Decoder>(m_command.on_output);
    RemoteCommand req;
    req.stream_socket = helper->socket;
    req.input = "smcp2 " + helper->token + " " + std::to_string(m_command.exec.size()) + " " +
                std::to_string(m_command.input.size()) + "\n" + m_command.exec + m_command.input;
    req.what = m_command.what;
    req.retry_safe = m_command.retry_safe;
    req.keep_input_open = true; // an end of the stream is a closed channel
    req.on_output = [decoder](Stream, std::string_view data) { decoder->feed(data); };
    inner = m_executor->inner().start(std::move(req));
  }
  std::lock_guard lock(m_mutex);
  m_inner = std::move(inner);
  m_decoder = std::move(decoder);
  m_generation = helper ? helper->generation : 0;
  if (m_cancelled) {
    m_inner->cancel();
  }
}

bool HelperCall::wait_until(Clock::time_point deadline, std::stop_token stop) {
  for (;;) {
    auto inner = current();
    if (!inner->wait_until(deadline, stop)) {
      return false;
    }
    std::shared_ptr<Decoder> decoder;
    std::uint64_t generation = 0;
    {
      std::lock_guard lock(m_mutex);
      if (inner != m_inner || !m_decoder || m_cancelled || m_resends >= 3) {
        return inner == m_inner;
      }
      decoder = m_decoder;
      generation = m_generation;
    }
    const Decoder::State st = decoder->state();
    if (st.stale) {
      // Nothing ran: the startup files, or the snapshot file, changed. A new helper takes the
      // snapshot again.
      m_executor->drop(generation, "a startup file or the snapshot changed");
    } else if (!st.accepted && st.failed.empty()) {
      // Nothing ran: the stream did not reach a helper (its socket is gone, streams are refused,
      // or it exited before taking the request).
      std::optional<HostError> error;
      try {
        inner->result();
      } catch (const HostError& e) {
        error = e;
      }
      if (error && error->kind() != Kind::refused) {
        return true; // the connection failed: the pool said why
      }
      if (!error) {
        m_executor->drop(generation, "the helper closed a stream it had not taken");
      } else {
        // sshd says "connect failed" both when its streamlocal forwarding is off and when the
        // socket is gone: a new helper is tried once, then streams are taken as refused.
        const std::string what = error->what();
        if (what.find("prohibited") != std::string::npos || m_refused++ > 0) {
          m_executor->refuse_streams(what);
        } else {
          m_executor->drop(generation, what);
        }
      }
    } else {
      return true;
    }
    {
      std::lock_guard lock(m_mutex);
      ++m_resends;
    }
    launch(m_executor->helper());
  }
}

void HelperCall::cancel() {
  std::shared_ptr<RemoteCall> inner;
  {
    std::lock_guard lock(m_mutex);
    m_cancelled = true;
    inner = m_inner;
  }
  if (inner) {
    inner->cancel();
  }
}

RemoteResult HelperCall::result() {
  std::shared_ptr<RemoteCall> inner;
  std::shared_ptr<Decoder> decoder;
  bool cancelled = false;
  {
    std::lock_guard lock(m_mutex);
    inner = m_inner;
    decoder = m_decoder;
    cancelled = m_cancelled;
  }
  if (!decoder) {
    return inner->result();
  }
  const Decoder::State st = decoder->state();
  std::optional<HostError> error;
  try {
    inner->result();
  } catch (const HostError& e) {
    error = e;
  }
  if (!st.failed.empty()) {
    throw HostError(Kind::io,
                    "the helper on " + m_executor->name() + " could not run " + m_command.what + ": " + st.failed);
  }
  if (!st.exit_status && !st.exit_signal) {
    if (error) {
      throw *error;
    }
    if (cancelled) {
      throw HostError(Kind::io, "cancelled");
    }
    throw HostError(Kind::io, "the helper on " + m_executor->name() + " ended the stream of " + m_command.what +
                                  " before its exit status" + (st.broken ? " (garbled frames)" : ""));
  }
  RemoteResult r;
  r.exit_status = st.exit_status;
  r.exit_signal = st.exit_signal;
  r.out = decoder->take(Stream::out);
  r.err = decoder->take(Stream::err);
  return r;
}

} // namespace

std::shared_ptr<RemoteExecutor> make_helper_executor(std::shared_ptr<RemoteExecutor> inner, HelperOptions options) {
  return std::make_shared<HelperExecutor>(std::move(inner), std::move(options));
}

} // namespace smcp::exec
