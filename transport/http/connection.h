// Internal to transport/ (the Streamable HTTP transport): one HTTP/1.1 connection on the server's
// I/O thread. Uses Boost.Asio: include only from transport/http/connection.cpp and
// transport/http_transport.cpp.
#pragma once

#include "transport/http/request_parser.h"
#include "transport/http/response.h"
#include "transport/http/sse_stream.h"
#include "transport/http_request.h"
#include "transport/http_transport.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

namespace smcp::transport::http {

class Connection;

// What a connection needs from the server that accepted it.
class ConnectionOwner {
public:
  virtual ~ConnectionOwner() = default;
  virtual const HttpOptions& options() const = 0;
  virtual const RequestLimits& limits() const = 0;
  // The server is shutting down: finish what is under way, start nothing new.
  virtual bool stopping() const = 0;
  // Runs `job` on a worker thread.
  virtual void dispatch(std::function<void()> job) = 0;
  // Admission on a request's head alone (I/O thread, before any body byte is buffered or
  // "100 Continue" sent): endpoint, method, Host, Origin, bearer token. False with the rejection
  // in `res` when the request may not proceed.
  virtual bool admit_head(const Request& head, Response& res) = 0;
  // Answers a complete request (on a worker thread).
  virtual void handle(const Request& req, Response& res) = 0;
  // The connection closed (I/O thread).
  virtual void forget(const std::shared_ptr<Connection>& connection) = 0;
};

// Lives on the I/O thread. Reads one request at a time (pipelined bytes wait in the buffer), under
// a header deadline counted from when the connection began waiting for the request and a body
// deadline counted from the end of the headers: trickled bytes extend neither. A complete request
// goes to a worker thread; its answer is written, and only then is the next request read, so
// answers leave in request order.
class Connection : public std::enable_shared_from_this<Connection> {
public:
  using Clock = std::chrono::steady_clock;
  enum class State { head, body, handling, writing, streaming, lingering, closed };

  Connection(ConnectionOwner& owner, boost::asio::ip::tcp::socket socket);

  void start() { read_next(); }

  // At --max-connections: a connection waiting for (the rest of) a request may give way, and so may
  // one that was answered and only drains what its client still sends (a refused head's body).
  // A client that never authenticated gives way also while an answer to it cannot be written (it
  // does not read): such answers are refusals or /healthz.
  bool evictable() const {
    return m_state == State::head || m_state == State::lingering ||
           (!m_trusted && (m_state == State::body || m_state == State::writing));
  }
  bool trusted() const { return m_trusted; }
  Clock::time_point waiting_since() const { return m_wait_started; }
  const std::string& remote() const { return m_remote; }

  // Answers 503 and closes (used right after accept, for a connection over the limit).
  void refuse();

  // Closes at once (eviction, shutdown, errors).
  void close();

  // Shutdown: idle and half-read connections close now; answers and streams finish first.
  void on_shutdown();

private:
  // ------------------------------------------------------------------ reading, handing over
  void read_next();
  // Feeds the buffer to the parser until the head is complete, reading more as needed.
  void parse_head();
  // The parser, the head and what the buffer holds, dropped (only while no read is pending).
  void drop_read_state();
  void on_head(boost::beast::error_code ec);
  void on_body(boost::beast::error_code ec);
  // Worker thread, while the I/O thread leaves the socket alone (state handling: no read or
  // write pending); close() takes the same lock, so the descriptor cannot be closed (and reused)
  // under this write.
  std::size_t send_from_worker(const std::string& bytes);
  void on_read_error(const boost::beast::error_code& ec);
  void respond_error_and_close(int status, const std::string& message);
  void respond_and_close(Response& res, bool head_method = false);
  // The head is refused (check_head or admission): answered, closed, nothing more read.
  bool refuse_head();
  void on_handled(const Request& req, Response& res, std::size_t sent);

  // ------------------------------------------------------------------ SSE
  void start_stream();
  // From any thread: the stream has news.
  void schedule_pump();
  void pump();
  void end_stream();
  void end_stream_bookkeeping();
  // A client that goes away during a stream is noticed at once (not at the next keepalive).
  void watch_peer();
  void arm_keepalive();

  // ------------------------------------------------------------------ writing, deadlines, closing
  void write(std::string data, std::function<void()> then);
  void arm(std::chrono::milliseconds timeout);
  void disarm();
  void on_deadline();
  // After the last response: no more sending; unread request bytes are drained (briefly) so that
  // the close does not reset the connection before the client read the answer.
  void linger();
  void drain();

  ConnectionOwner& m_owner;
  boost::asio::ip::tcp::socket m_socket;
  boost::asio::steady_timer m_deadline;
  boost::asio::steady_timer m_keepalive;
  boost::beast::flat_buffer m_buffer;
  std::optional<Parser> m_parser;
  std::shared_ptr<Request> m_head; // the request's line and headers, taken when they were complete
  std::size_t m_drained = 0;       // bytes linger() has read and dropped
  std::size_t m_head_scanned = 0;  // bytes of the buffer parse_head() has looked at for this head
  std::size_t m_head_lines = 0;    // and the line ends it counted there
  State m_state = State::head;
  Clock::time_point m_wait_started = Clock::now();
  std::string m_remote;
  bool m_trusted = false; // a request on this connection passed authentication
  bool m_keep_alive = true;
  bool m_chunked = true;
  std::string m_out;
  bool m_writing = false;
  std::uint64_t m_deadline_generation = 0;
  std::uint64_t m_watch_generation = 0;
  std::shared_ptr<SseWriter> m_sse;
  std::function<void()> m_on_stream_end;
  std::atomic<bool> m_pump_posted{false};
  Clock::time_point m_last_write;
  std::array<char, 4096> m_drain{};
  std::mutex m_fd_mutex; // see send_from_worker()
  bool m_fd_closed = false;
};

} // namespace smcp::transport::http
