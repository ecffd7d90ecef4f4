#include "sandbox/exec/helper_call.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <thread>

namespace smcp::exec::helper {

namespace {
using Kind = HostError::Kind;
constexpr int k_max_resends = 3;      // new helpers for one call (stale, hung, socket gone)
constexpr int k_max_busy_retries = 6; // pauses of 0.1, 0.2 ... 2 s when the helper cannot fork
} // namespace

void Handshake::attach(const std::shared_ptr<RemoteCall>& inner) {
  std::lock_guard lock(m_mutex);
  m_inner = inner;
  if (m_hello) {
    send_locked();
  }
}

void Handshake::on_hello() {
  std::lock_guard lock(m_mutex);
  m_hello = true;
  send_locked();
}

void Handshake::send_locked() {
  if (m_sent || m_gave_up) {
    return;
  }
  auto inner = m_inner.lock();
  if (!inner) {
    return; // not attached yet: attach() sends it
  }
  m_sent = true;
  const bool written = inner->write(m_request);
  m_request.clear();
  m_request.shrink_to_fit();
  if (!written) {
    spdlog::error("helper: the stream cannot take the request (its executor does not write late input)");
  }
}

bool Handshake::give_up() {
  std::lock_guard lock(m_mutex);
  if (m_sent) {
    return false;
  }
  m_gave_up = true;
  return true;
}

void HelperCall::launch(const Route& route) {
  if (route.kind == Route::Kind::wait) {
    return; // pending
  }
  std::shared_ptr<RemoteCall> inner;
  std::shared_ptr<Decoder> decoder;
  std::shared_ptr<Handshake> handshake;
  std::optional<HostError> error;
  try {
    if (route.kind == Route::Kind::direct) {
      inner = m_executor->inner().start(m_command);
    } else {
      // The request is written when the helper says hello (Handshake), not with the stream.
      handshake = std::make_shared<Handshake>(
          "smcp2 " + route.helper->token + " " + std::to_string(m_command.exec.size()) + " " +
          std::to_string(m_command.input.size()) + "\n" + m_command.exec + m_command.input);
      decoder = std::make_shared<Decoder>(m_command.on_output, [handshake] { handshake->on_hello(); });
      RemoteCommand req;
      req.stream_socket = route.helper->socket;
      req.what = m_command.what;
      req.retry_safe = m_command.retry_safe;
      req.keep_input_open = true; // an end of the stream is a closed channel
      req.on_output = [decoder](Stream, std::string_view data) { decoder->feed(data); };
      inner = m_executor->inner().start(std::move(req));
      handshake->attach(inner);
    }
  } catch (const HostError& e) {
    error = e;
  }
  std::lock_guard lock(m_mutex);
  if (error) {
    m_launch_error = error;
    m_cancelled = true; // ended: result() says why
    return;
  }
  m_inner = std::move(inner);
  m_decoder = std::move(decoder);
  m_handshake = std::move(handshake);
  m_generation = route.helper ? route.helper->generation : 0;
  m_socket = route.helper ? route.helper->socket : std::string();
  m_sent_at = Clock::now();
  if (m_cancelled) {
    if (m_handshake) {
      m_handshake->give_up(); // cancelled while it was being started: a hello gets no request
    }
    m_inner->cancel();
  }
}

bool HelperCall::unsend(bool resend) {
  std::lock_guard lock(m_mutex);
  if (m_cancelled || (resend && m_resends >= k_max_resends)) {
    return false;
  }
  if (resend) {
    ++m_resends;
  }
  m_inner.reset();
  m_decoder.reset();
  m_handshake.reset();
  return true;
}

bool HelperCall::send_pending(const Snapshot& s, Clock::time_point deadline, std::stop_token stop) {
  while (Clock::now() < s.retry_at) { // a pause before asking a helper that could not fork again
    if (Clock::now() >= deadline || stop.stop_requested()) {
      return false;
    }
    std::this_thread::sleep_until(std::min({s.retry_at, deadline, Clock::now() + milliseconds(20)}));
  }
  const Route r = m_executor->wait_route(m_command.retry_safe, deadline, stop);
  if (r.kind == Route::Kind::wait) {
    return false;
  }
  launch(r);
  return true;
}

bool HelperCall::wait_until(Clock::time_point deadline, std::stop_token stop) {
  for (;;) {
    const Snapshot s = snapshot();
    if (!s.inner) {
      if (s.cancelled) {
        return true;
      }
      if (!send_pending(s, deadline, stop)) {
        return false;
      }
      continue;
    }
    if (s.handshake && !s.handshake->sent() && !s.cancelled) {
      // Until the helper says hello on the stream, the request is not written: a helper that does
      // not greet in time is stopped or hung, and the request goes to a new one, never to both.
      const auto accept_by = s.sent_at + s.accept_timeout;
      // While the channel is not open, looked at every 100 ms, so that the helper's time to greet
      // starts within 100 ms of the opening (not at the last look).
      const auto look_at = s.inner->reached() ? accept_by : std::min(accept_by, Clock::now() + milliseconds(100));
      if (!s.inner->wait_until(std::min(deadline, look_at), stop)) {
        if (!s.inner->reached() && !s.handshake->sent()) {
          std::lock_guard lock(m_mutex);
          m_sent_at = Clock::now(); // not at the helper yet: its clock starts again
        }
        if (s.handshake->sent() || Clock::now() < accept_by || !s.inner->reached()) {
          if (Clock::now() >= deadline || stop.stop_requested()) {
            return false;
          }
          continue;
        }
        if (!s.inner->reached() || m_executor->streams_queued()) {
          // It may still wait for a channel: the helper is not to blame yet. Its clock starts again.
          std::lock_guard lock(m_mutex);
          m_sent_at = Clock::now();
          continue;
        }
        if (!s.handshake->give_up()) {
          continue; // the hello came just now: the helper has the request
        }
        s.inner->cancel();
        m_executor->hung(s.generation, s.accept_timeout);
        const std::string why = "the helper on " + m_executor->name() + " did not take " + m_command.what + " within " +
                                std::to_string(s.accept_timeout.count()) + " ms (stopped or hung?)";
        if (!unsend(true)) {
          std::lock_guard lock(m_mutex);
          m_nothing_ran = why;
          return true;
        }
        std::lock_guard lock(m_mutex);
        m_accept_timeout *= 2;
        continue;
      }
    } else if (!s.inner->wait_until(deadline, stop)) {
      return false;
    }
    if (!s.decoder || finished(s)) {
      return true;
    }
  }
}

bool HelperCall::finished(const Snapshot& s) {
  {
    std::lock_guard lock(m_mutex);
    if (m_cancelled) { // (a stream closed by cancel() says nothing of the helper)
      return true;
    }
  }
  const Decoder::State st = s.decoder->state();
  if (!st.busy.empty() && !st.exit_status && !st.exit_signal) {
    // Nothing ran: the helper could not fork (the process limit?). The same helper is asked again
    // after a pause.
    std::lock_guard lock(m_mutex);
    if (m_cancelled || m_busy_retries >= k_max_busy_retries) {
      return true;
    }
    m_retry_at = Clock::now() + milliseconds(std::min(100 << m_busy_retries, 2000));
    ++m_busy_retries;
    spdlog::debug("host {}: the helper could not start {} ({}); again in a moment", m_executor->name(), m_command.what,
                  st.busy);
    m_inner.reset();
    m_decoder.reset();
    return false;
  }
  if (st.stale) {
    // Nothing ran: the startup files, or the snapshot file, changed. A new helper takes the
    // snapshot again.
    m_executor->drop(s.generation, "a startup file or the snapshot changed");
  } else if (!st.accepted && st.failed.empty()) {
    not_reached(s);
  } else {
    return true;
  }
  return !unsend(true);
}

void HelperCall::not_reached(const Snapshot& s) {
  // Nothing ran: the stream did not reach a helper (its socket is gone, streams are refused, or it
  // exited before taking the request).
  std::optional<HostError> error;
  try {
    s.inner->result();
  } catch (const HostError& e) {
    error = e;
  }
  if (error && error->kind() != Kind::refused) {
    std::lock_guard lock(m_mutex);
    m_resends = k_max_resends; // the connection failed: the pool said why
    return;
  }
  if (!error) {
    m_executor->drop(s.generation, "the helper closed a stream it had not taken");
    return;
  }
  // sshd says "connect failed" both when its streamlocal forwarding is off and when the socket is
  // gone (its helper exited, or something removed it): which one, the host tells.
  const std::string what = error->what();
  if (what.find("prohibited") != std::string::npos) {
    m_executor->refuse_streams(what);
    return;
  }
  {
    std::lock_guard lock(m_mutex);
    ++m_refused;
  }
  const std::optional<bool> present = m_executor->socket_present(s.socket);
  if (present == false) {
    m_executor->drop(s.generation, "its socket " + s.socket + " is gone: " + what);
  } else if (present == true || m_refused > 1) {
    m_executor->refuse_streams(what);
  } else {
    m_executor->drop(s.generation, what);
  }
}

void HelperCall::cancel() {
  std::shared_ptr<RemoteCall> inner;
  std::shared_ptr<Handshake> handshake;
  {
    std::lock_guard lock(m_mutex);
    m_cancelled = true;
    inner = m_inner;
    handshake = m_handshake;
  }
  if (handshake) {
    handshake->give_up(); // a hello after this gets no request
  }
  if (inner) {
    inner->cancel();
  }
}

RemoteResult HelperCall::result() {
  Snapshot s;
  std::optional<HostError> launch_error;
  std::string nothing_ran;
  {
    std::lock_guard lock(m_mutex);
    s = snapshot_locked();
    launch_error = m_launch_error;
    nothing_ran = m_nothing_ran;
  }
  if (launch_error) {
    throw *launch_error;
  }
  if (!s.inner) {
    throw HostError(Kind::unreachable, "nothing ran: " + (nothing_ran.empty() ? "the helper on " + m_executor->name() +
                                                                                    " was still starting"
                                                                              : nothing_ran));
  }
  if (!s.decoder) {
    return s.inner->result();
  }
  const Decoder::State st = s.decoder->state();
  std::optional<HostError> error;
  try {
    s.inner->result();
  } catch (const HostError& e) {
    error = e;
  }
  const std::string on = "the helper on " + m_executor->name();
  if (!st.failed.empty()) {
    throw HostError(Kind::io, on + " could not run " + m_command.what + ": " + st.failed);
  }
  if (st.exit_status || st.exit_signal) {
    RemoteResult r;
    r.exit_status = st.exit_status;
    r.exit_signal = st.exit_signal;
    r.out = s.decoder->take(Stream::out);
    r.err = s.decoder->take(Stream::err);
    return r;
  }
  if (!st.busy.empty()) {
    throw HostError(Kind::io, on + " could not start " + m_command.what + " (nothing ran): " + st.busy);
  }
  if (!st.accepted) {
    // Nothing ran: never an end the caller could take for the command's (a timeout's "killed").
    if (!nothing_ran.empty()) {
      throw HostError(Kind::unreachable, "nothing ran: " + nothing_ran);
    }
    if (error && !s.cancelled) {
      if (s.handshake && !s.handshake->sent()) { // the request never left: whatever the connection says
        throw HostError(Kind::unreachable, "nothing ran: the connection to " + m_executor->name() +
                                               " was lost before its helper took " + m_command.what + " (" +
                                               error->what() + ")");
      }
      throw *error;
    }
    if (s.handshake && s.handshake->sent() && s.cancelled) {
      throw HostError(Kind::unreachable, "the call ended before " + on + " said whether " + m_command.what +
                                             " started (it had been sent; it may have started)");
    }
    throw HostError(Kind::unreachable, "nothing ran: " + on + " had not taken " + m_command.what +
                                           (s.cancelled ? " when the call ended" : ""));
  }
  if (error) {
    throw *error; // the connection (the pool says how)
  }
  if (s.cancelled) {
    throw HostError(Kind::io, "cancelled");
  }
  // It started, and its stream ended before its exit status while the connection stayed up: the
  // helper's process that served it died. The command may still run.
  throw HostError(Kind::unreachable, "the stream of " + m_command.what + " from " + on + " " +
                                         std::string(helper::k_stream_lost) + ", before its exit status" +
                                         (st.broken ? " (garbled frames)" : ""));
}

} // namespace smcp::exec::helper
