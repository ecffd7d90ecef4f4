#include "transport/http/connection.h"

#include "transport/http/jsonrpc.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <string_view>
#include <sys/socket.h>

namespace smcp::transport::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

// After a response with "Connection: close": how long unread request bytes are drained before the
// socket is closed (closing with unread data would reset the connection and lose the response).
constexpr auto k_linger = 2s;
// ... and at most this many bytes: a client that keeps sending after its refusal costs no more.
constexpr std::size_t k_linger_bytes = 1024 * 1024;
// Header lines a request may have (beyond them: 431), whatever their bytes.
constexpr std::size_t k_max_head_lines = 200;

} // namespace

Connection::Connection(ConnectionOwner& owner, tcp::socket socket)
    : m_owner(owner), m_socket(std::move(socket)), m_deadline(m_socket.get_executor()),
      m_keepalive(m_socket.get_executor()), m_buffer(owner.limits().max_header_bytes + 64 * 1024) {
  boost::system::error_code ec;
  auto remote = m_socket.remote_endpoint(ec);
  m_remote = ec ? std::string("?") : remote.address().to_string();
}

void Connection::refuse() {
  Response res;
  res.set_header("Retry-After", "5");
  set_error(res, 503, k_code_transport,
            "Service Unavailable: too many open connections (the server's --max-connections), all busy with "
            "requests or streams; retry shortly");
  res.close = true;
  m_state = State::writing;
  write(serialize(res, false, 11), [self = shared_from_this()] { self->linger(); });
}

void Connection::close() {
  if (m_state == State::closed) {
    return;
  }
  m_state = State::closed;
  {
    boost::system::error_code ec;
    std::lock_guard lock(m_fd_mutex);
    m_fd_closed = true;
    m_socket.shutdown(tcp::socket::shutdown_both, ec);
    m_socket.close(ec);
  }
  m_deadline.cancel();
  m_keepalive.cancel();
  end_stream_bookkeeping();
  m_owner.forget(shared_from_this());
}

void Connection::on_shutdown() {
  if (m_state == State::head || m_state == State::body) {
    close();
  } else if (m_state == State::streaming) {
    pump();
  }
}

void Connection::read_next() {
  if (m_owner.stopping()) {
    linger();
    return;
  }
  m_state = State::head;
  m_wait_started = Clock::now();
  m_parser.emplace();
  configure(*m_parser, m_owner.limits());
  m_head_scanned = 0;
  m_head_lines = 0;
  arm(m_owner.options().header_timeout);
  // A pipelined request may be in the buffer already: parsed from there first (on a fresh turn of
  // the loop, so that a long pipeline does not recurse).
  asio::post(m_socket.get_executor(), [self = shared_from_this()] {
    if (self->m_state == State::head) {
      self->parse_head();
    }
  });
}

// The head is read here rather than by Beast's async_read_header, so that the number of its lines
// is checked before the parser turns each into an allocated field: 16,000 one-byte fields fit in
// the 64 KiB limit and would cost a client without the token over a megabyte and milliseconds of
// this thread.
void Connection::parse_head() {
  // Only the bytes that came since the last look are scanned (a head trickled a byte at a time
  // must not cost a scan of all it sent so far each time).
  const std::string_view held(static_cast<const char*>(m_buffer.data().data()), m_buffer.size());
  const std::size_t end = held.find("\r\n\r\n", m_head_scanned < 3 ? 0 : m_head_scanned - 3);
  const std::size_t head_size = end == std::string_view::npos ? held.size() : end + 4;
  if (head_size > m_head_scanned) {
    const std::string_view fresh = held.substr(m_head_scanned, head_size - m_head_scanned);
    m_head_lines += static_cast<std::size_t>(std::count(fresh.begin(), fresh.end(), '\n'));
    m_head_scanned = head_size;
  }
  if (m_head_lines > k_max_head_lines + 2) {
    drop_read_state();
    respond_error_and_close(431, "Request Header Fields Too Large: more than " + std::to_string(k_max_head_lines) +
                                     " header lines");
    return;
  }
  if (end != std::string_view::npos || head_size > m_owner.limits().max_header_bytes) {
    beast::error_code ec;
    const std::size_t n = m_parser->put(m_buffer.data(), ec);
    m_buffer.consume(n);
    if (ec && ec != bhttp::error::need_more) {
      on_read_error(ec);
      return;
    }
    if (m_parser->is_header_done()) {
      on_head({});
      return;
    }
  }
  const std::size_t room = beast::read_size(m_buffer, 64 * 1024);
  if (room == 0) {
    drop_read_state();
    respond_error_and_close(431, "Request Header Fields Too Large: the request line and headers exceed " +
                                     std::to_string(m_owner.limits().max_header_bytes) + " bytes");
    return;
  }
  m_socket.async_read_some(m_buffer.prepare(room), [self = shared_from_this()](beast::error_code ec, std::size_t n) {
    if (self->m_state != State::head) {
      return;
    }
    if (ec) {
      self->on_read_error(ec);
      return;
    }
    self->m_buffer.commit(n);
    self->parse_head();
  });
}

void Connection::drop_read_state() {
  m_parser.reset();
  m_head.reset();
  m_buffer.consume(m_buffer.size());
  m_buffer.shrink_to_fit();
}

void Connection::on_head(beast::error_code ec) {
  if (m_state != State::head) {
    return;
  }
  if (ec) {
    on_read_error(ec);
    return;
  }
  if (refuse_head()) {
    return;
  }
  m_state = State::body;
  arm(m_owner.options().body_timeout);
  auto read_body = [self = shared_from_this()] {
    bhttp::async_read(self->m_socket, self->m_buffer, *self->m_parser,
                      [self](beast::error_code e, std::size_t) { self->on_body(e); });
  };
  if (expects_continue(*m_parser) && !m_parser->is_done()) {
    static const std::string continue_100 = "HTTP/1.1 100 Continue\r\n\r\n";
    asio::async_write(m_socket, asio::buffer(continue_100),
                      [self = shared_from_this(), read_body](boost::system::error_code e, std::size_t) {
                        if (self->m_state != State::body) {
                          return;
                        }
                        if (e) {
                          self->close();
                          return;
                        }
                        read_body();
                      });
    return;
  }
  read_body();
}

void Connection::on_body(beast::error_code ec) {
  if (m_state != State::body) {
    return;
  }
  if (ec) {
    on_read_error(ec);
    return;
  }
  disarm();
  auto req = std::move(m_head);
  fill_body(*m_parser, *req);
  m_parser.reset();
  m_state = State::handling;
  auto self = shared_from_this();
  m_owner.dispatch([self, req] {
    auto res = std::make_shared<Response>();
    try {
      self->m_owner.handle(*req, *res);
    } catch (const std::exception& e) {
      spdlog::error("http: {} {} failed: {}", req->method, req->path, e.what());
      *res = Response();
      set_error(*res, 500, k_code_transport, std::string("Internal error: ") + e.what());
    }
    spdlog::debug("http: {} {} -> {} ({})", req->method, req->path, res->status, req->remote_addr);
    // A plain answer leaves from this thread at once (no wait for the I/O thread to be
    // scheduled); what the socket does not take now, the I/O thread writes.
    std::size_t sent = 0;
    if (!res->sse) {
      res->keep_alive = req->keep_alive && !res->close && !self->m_owner.stopping();
      // An answer to HEAD carries its Content-Length but no body (RFC 9110 section 9.3.2).
      res->wire = req->method == "HEAD" ? serialize_head(*res, false, res->keep_alive, req->version)
                                        : serialize(*res, res->keep_alive, req->version);
      sent = self->send_from_worker(res->wire);
    }
    asio::post(self->m_socket.get_executor(), [self, req, res, sent] { self->on_handled(*req, *res, sent); });
  });
}

std::size_t Connection::send_from_worker(const std::string& bytes) {
  std::lock_guard lock(m_fd_mutex);
  if (m_fd_closed) {
    return 0;
  }
  std::size_t sent = 0;
  while (sent < bytes.size()) {
    ssize_t n = ::send(m_socket.native_handle(), bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) {
        continue;
      }
      break; // full (the I/O thread goes on) or failed (its write fails too)
    }
    sent += static_cast<std::size_t>(n);
  }
  return sent;
}

void Connection::on_read_error(const beast::error_code& ec) {
  disarm();
  if (ec == bhttp::error::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset ||
      ec == asio::error::operation_aborted || ec == bhttp::error::partial_message) {
    close();
    return;
  }
  auto [status, message] = read_error_answer(ec, m_owner.limits());
  spdlog::debug("http: unreadable request from {}: {} -> {}", m_remote, ec.message(), status);
  drop_read_state(); // no read is pending: the read that failed was the last
  respond_error_and_close(status, message);
}

bool Connection::refuse_head() {
  // Called from on_head: no read is pending, so what was read of this request can be dropped when
  // it is refused (the rest is drained into a fixed buffer by linger()).
  auto drop_request = [this] { drop_read_state(); };
  m_head = std::make_shared<Request>();
  Request& head = *m_head;
  fill_head(*m_parser, head);
  head.path = target_path(head.target);
  head.remote_addr = m_remote;
  const bool head_method = head.method == "HEAD";
  if (auto problem = check_head(head.version, head.headers)) {
    spdlog::debug("http: refused a request head from {}: {}", m_remote, problem->message);
    drop_request();
    Response res;
    set_error(res, problem->status, k_code_transport, problem->message);
    respond_and_close(res, head_method);
    return true;
  }
  // A request without a body is admitted by the handler like any other (its connection stays
  // usable after a rejection); one with a body is admitted here, so that an unadmitted client
  // never has a body byte buffered, a byte reserved for it, or "100 Continue".
  if (m_parser->is_done()) {
    return false;
  }
  Response res;
  if (m_owner.admit_head(head, res)) {
    // A valid token: this upload is never closed to make room for clients without one.
    m_trusted = m_trusted || !m_owner.options().bearer_token.empty();
    return false;
  }
  res.close = true;
  drop_request();
  respond_and_close(res, head_method);
  return true;
}

void Connection::respond_error_and_close(int status, const std::string& message) {
  Response res;
  set_error(res, status, k_code_transport, message);
  respond_and_close(res);
}

void Connection::respond_and_close(Response& res, bool head_method) {
  m_state = State::writing;
  beast::error_code ignored;
  m_socket.cancel(ignored); // a pending read ends (its handler sees the state changed)
  // An answer to HEAD carries no body (RFC 9110 section 9.3.2), refusals included.
  write(head_method ? serialize_head(res, false, false, 11) : serialize(res, false, 11),
        [self = shared_from_this()] { self->linger(); });
}

void Connection::on_handled(const Request& req, Response& res, std::size_t sent) {
  if (m_state != State::handling) {
    if (res.on_stream_end) {
      res.on_stream_end();
    }
    return;
  }
  m_trusted = m_trusted || res.authenticated;
  if (!res.sse) {
    const bool keep = res.keep_alive && !m_owner.stopping();
    m_state = State::writing;
    auto next = [self = shared_from_this(), keep] {
      if (keep) {
        self->read_next();
      } else {
        self->linger();
      }
    };
    if (sent >= res.wire.size()) {
      next();
    } else {
      write(res.wire.substr(sent), std::move(next));
    }
    return;
  }
  const bool keep =
      req.keep_alive && !res.close && !m_owner.stopping() && req.version != 10; // a 1.0 stream ends with the connection
  m_keep_alive = keep;
  m_chunked = req.version != 10;
  m_state = State::writing;
  m_sse = res.sse;
  m_on_stream_end = std::move(res.on_stream_end);
  write(serialize_head(res, m_chunked, keep, req.version), [self = shared_from_this()] { self->start_stream(); });
}

// ------------------------------------------------------------------ SSE

void Connection::start_stream() {
  m_state = State::streaming;
  m_last_write = Clock::now();
  std::weak_ptr<Connection> weak = weak_from_this();
  m_sse->attach([weak] {
    if (auto self = weak.lock()) {
      self->schedule_pump();
    }
  });
  watch_peer();
  arm_keepalive();
  pump();
}

void Connection::schedule_pump() {
  if (!m_pump_posted.exchange(true)) {
    asio::post(m_socket.get_executor(), [self = shared_from_this()] {
      self->m_pump_posted = false;
      self->pump();
    });
  }
}

void Connection::pump() {
  if (m_state != State::streaming || m_writing) {
    return;
  }
  std::string events;
  const bool done = m_sse->pull(events);
  std::string out;
  if (!events.empty()) {
    out = m_chunked ? chunk(events) : events;
  }
  if (done && m_chunked) {
    out += "0\r\n\r\n";
  }
  if (out.empty()) {
    if (done) {
      end_stream();
    }
    return;
  }
  const bool had_events = !events.empty();
  write(std::move(out), [self = shared_from_this(), done, had_events] {
    if (had_events) {
      self->m_sse->written();
    }
    self->m_last_write = Clock::now();
    if (done) {
      self->end_stream();
    } else {
      self->m_state = State::streaming;
      self->pump();
    }
  });
  m_state = State::streaming; // write() marked it writing; a stream keeps its own state
}

void Connection::end_stream() {
  ++m_watch_generation;
  beast::error_code ignored;
  m_socket.cancel(ignored); // the peer watch
  m_keepalive.cancel();
  end_stream_bookkeeping();
  if (m_keep_alive && m_chunked && !m_owner.stopping()) {
    read_next();
  } else {
    linger();
  }
}

void Connection::end_stream_bookkeeping() {
  if (m_sse) {
    m_sse->detach();
    m_sse.reset();
  }
  if (auto done = std::move(m_on_stream_end)) {
    m_on_stream_end = nullptr;
    done();
  }
}

void Connection::watch_peer() {
  m_socket.async_wait(tcp::socket::wait_read,
                      [self = shared_from_this(), generation = m_watch_generation](boost::system::error_code ec) {
                        if (ec || generation != self->m_watch_generation || self->m_state != State::streaming) {
                          return;
                        }
                        char c;
                        ssize_t n = ::recv(self->m_socket.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
                        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
                          self->close(); // the client left
                        } else if (n < 0) {
                          self->watch_peer();
                        }
                        // n > 0: a pipelined request; it is read after the stream.
                      });
}

void Connection::arm_keepalive() {
  m_keepalive.expires_after(m_owner.options().sse_keepalive);
  m_keepalive.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (ec || self->m_state != State::streaming) {
      return;
    }
    if (!self->m_writing && Clock::now() - self->m_last_write >= self->m_owner.options().sse_keepalive - 50ms) {
      static const std::string comment = ": keepalive\n\n";
      self->write(self->m_chunked ? chunk(comment) : comment, [self] {
        self->m_last_write = Clock::now();
        self->m_state = State::streaming;
        self->pump();
      });
      self->m_state = State::streaming;
    }
    self->arm_keepalive();
  });
}

// ------------------------------------------------------------------ writing, deadlines, closing

void Connection::write(std::string data, std::function<void()> then) {
  m_out = std::move(data);
  m_writing = true;
  if (m_state != State::streaming) {
    m_state = State::writing;
  }
  arm(m_owner.options().write_timeout);
  asio::async_write(m_socket, asio::buffer(m_out),
                    [self = shared_from_this(), then = std::move(then)](boost::system::error_code ec, std::size_t) {
                      self->m_writing = false;
                      if (self->m_state == State::closed) {
                        return;
                      }
                      self->disarm();
                      if (ec) {
                        self->close();
                        return;
                      }
                      then();
                    });
}

void Connection::arm(std::chrono::milliseconds timeout) {
  ++m_deadline_generation;
  m_deadline.expires_after(timeout);
  m_deadline.async_wait([self = shared_from_this(), generation = m_deadline_generation](boost::system::error_code ec) {
    if (!ec && generation == self->m_deadline_generation) {
      self->on_deadline();
    }
  });
}

void Connection::disarm() {
  ++m_deadline_generation;
  m_deadline.cancel();
}

void Connection::on_deadline() {
  const auto seconds = [](std::chrono::milliseconds d) { return std::to_string((d.count() + 999) / 1000); };
  switch (m_state) {
  case State::head:
    if (m_parser && (m_parser->got_some() || m_buffer.size() > 0)) {
      spdlog::debug("http: request headers from {} incomplete after {} s; closing", m_remote,
                    seconds(m_owner.options().header_timeout));
      respond_error_and_close(408, "Request Timeout: the request headers did not arrive within " +
                                       seconds(m_owner.options().header_timeout) + " s");
    } else {
      close(); // an idle keep-alive connection
    }
    return;
  case State::body:
    spdlog::debug("http: request body from {} incomplete after {} s; closing", m_remote,
                  seconds(m_owner.options().body_timeout));
    respond_error_and_close(408, "Request Timeout: the request body did not arrive within " +
                                     seconds(m_owner.options().body_timeout) + " s");
    return;
  case State::handling:
    return;
  default:
    close(); // a write that does not progress, or a linger that lasts too long
  }
}

void Connection::linger() {
  if (m_state == State::closed) {
    return;
  }
  m_state = State::lingering;
  m_drained = 0;
  boost::system::error_code ec;
  m_socket.shutdown(tcp::socket::shutdown_send, ec);
  arm(std::chrono::duration_cast<std::chrono::milliseconds>(k_linger));
  drain();
}

void Connection::drain() {
  m_socket.async_read_some(asio::buffer(m_drain),
                           [self = shared_from_this()](boost::system::error_code ec, std::size_t n) {
                             if (self->m_state != State::lingering) {
                               return;
                             }
                             self->m_drained += n;
                             if (ec || self->m_drained > k_linger_bytes) {
                               self->close();
                               return;
                             }
                             self->drain();
                           });
}

} // namespace smcp::transport::http
