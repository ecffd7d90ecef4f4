// What HelperExecutor reads from the SSH helper (sandbox/exec/scripts/helper.pl): its start
// answer ("ready TOKEN SOCKET" after a marker, what the startup files print coming first) and the
// answer frames of one request. Internal to helper_executor.cpp; unit-tested through it.
#pragma once

#include "sandbox/exec/host.h"

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace smcp::exec::helper {

// In the (unreachable) error of a call whose stream ended after the helper started the command and
// before its exit status while the connection stayed up: the helper's process that served it
// died, and the command may still run. ScriptHost then ends it through the session it reported.
inline constexpr std::string_view k_stream_lost = "was lost after the command started";

// "ready TOKEN SOCKET": the token is 32 lowercase hex digits, the socket an absolute path.
std::optional<std::pair<std::string, std::string>> parse_ready(const std::string& line);

// At most 500 bytes on one line, for messages.
std::string one_line(std::string text);

// The answer frames of one request, decoded on the executor's thread (helper.pl says what they
// are): output goes to the command's on_output, or is collected.
class Decoder {
public:
  // `on_hello`: called (under the decoder's lock, on the executor's thread) when the helper greets.
  explicit Decoder(std::function<void(Stream, std::string_view)> on_output, std::function<void()> on_hello = {})
      : m_on_output(std::move(on_output)), m_on_hello(std::move(on_hello)) {}

  void feed(std::string_view data);

  struct State {
    bool hello = false;    // the helper serves this stream (the request is sent only then)
    bool accepted = false; // the helper started the command (before that, nothing ran)
    bool stale = false;    // nothing ran: the startup files (or the snapshot file) changed
    bool broken = false;
    std::string busy;   // nothing ran: the helper could not fork (or make pipes) now; try again later
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
  void frame(char type, std::string_view data);

  mutable std::mutex m_mutex;
  std::function<void(Stream, std::string_view)> m_on_output;
  std::function<void()> m_on_hello;
  std::string m_buffer, m_out, m_err;
  State m_state;
};

// What the helper prints while it starts, up to its first line.
class StartOutput {
public:
  // `nonce`: the one the start program was given; only a marker line with it is the helper's.
  explicit StartOutput(std::string nonce) : m_marker("\nsandbox-mcp-helper " + std::move(nonce) + ": ") {}
  void feed(Stream stream, std::string_view data);
  // The helper's answer: the line after its marker (what the startup files print comes first).
  std::optional<std::string> line(std::chrono::milliseconds wait);
  std::string err() const {
    std::lock_guard lock(m_mutex);
    return m_err;
  }

private:
  std::optional<std::string> answer() const;

  const std::string m_marker;
  mutable std::mutex m_mutex;
  std::condition_variable m_cv;
  std::string m_out, m_err;
};

// 32 random hex digits (the kernel's CSPRNG), for the nonces of the helper's start and probes.
std::string random_nonce();

// A perl program that says whether something accepts connections on the Unix socket `socket` (a
// socket file left by a killed helper does not): "\nsmcp-probe NONCE present|gone\n".
std::string socket_probe_program(const std::string& socket, const std::string& nonce);
// Its answer in the output of the login shell that ran it (whatever the startup files printed
// too): nullopt when the line with `nonce` is not there.
std::optional<bool> socket_probe_answer(const std::string& out, const std::string& nonce);

} // namespace smcp::exec::helper
