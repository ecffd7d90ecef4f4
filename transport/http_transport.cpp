// Streamable HTTP on an event-driven HTTP/1.1 server (Boost.Asio + Boost.Beast's request parser).
//
// One I/O thread owns every socket: it accepts, reads requests under deadlines that trickled bytes
// do not extend, and writes answers and SSE streams (transport/http/connection.h). A connection
// costs a socket and a buffer, not a thread, so half-sent requests cannot hold anything another
// client needs; at --max-connections the connection that waited longest for a complete request
// (never-authenticated ones first) gives way to a new one. Complete requests are handled on a
// worker pool (transport/http/request_handler.h; the protocol core may take its time there);
// answers go back to the I/O thread, in request order per connection (pipelining).
#include "transport/http_transport.h"

#include "transport/http/connection.h"
#include "transport/http/request_handler.h"
#include "transport/http/session_table.h"
#include "transport/http/worker_pool.h"
#include "transport/http_request.h"

#include <boost/asio.hpp>
#include <spdlog/spdlog.h>

#include <csignal>
#include <optional>
#include <stdexcept>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unordered_set>

namespace smcp::transport {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using http::Connection;

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// How long stop() lets open responses flush (e.g. the error answers of cancelled calls).
constexpr auto k_shutdown_flush = 2s;

std::string url_host(const std::string& host) {
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

void raise_fd_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
}

template <typename... Args>
void warn_rate_limited(Clock::time_point& last, spdlog::format_string_t<Args...> fmt, Args&&... args) {
  auto now = Clock::now();
  if (now - last >= 10s) {
    last = now;
    spdlog::warn(fmt, std::forward<Args>(args)...);
  }
}

} // namespace

class HttpTransport::Impl final : public http::ConnectionOwner {
public:
  Impl(HttpOptions options, EndpointFactory& factory)
      : m_options(std::move(options)), m_sessions(m_options, m_stopping),
        m_handler(m_options, factory, m_sessions, m_stopping), m_pool(m_options.max_connections), m_acceptor(m_io),
        m_accept_pause(m_io), m_shutdown_timer(m_io) {
    // A write to a socket whose client left must fail with EPIPE, not end the process.
    std::signal(SIGPIPE, SIG_IGN);
    m_limits.max_body_bytes = m_options.max_body_bytes;
    m_limits.drain_limit = http::drain_limit_for(m_options.max_body_bytes);
  }

  ~Impl() override {
    stop();
    m_sessions.join_reaper();
    m_pool.shutdown();
  }

  void bind() {
    if (m_port >= 0) {
      return;
    }
    if (auto err = validate_http_options(m_options); !err.empty()) {
      throw std::runtime_error(err);
    }
    raise_fd_limit();
    auto fail = [&](const std::string& why) {
      return std::runtime_error("cannot listen on " + m_options.host + ":" + std::to_string(m_options.port) + ": " +
                                why +
                                " (is another server using the port? choose another with --http HOST:PORT, or :0)");
    };
    boost::system::error_code ec;
    tcp::resolver resolver(m_io);
    auto results = resolver.resolve(m_options.host, std::to_string(m_options.port),
                                    tcp::resolver::passive | tcp::resolver::numeric_service, ec);
    if (ec || results.empty()) {
      throw fail(ec ? ec.message() : "the address does not resolve");
    }
    const tcp::endpoint endpoint = results.begin()->endpoint();
    m_acceptor.open(endpoint.protocol(), ec);
    if (!ec) {
      m_acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
      m_acceptor.bind(endpoint, ec);
    }
    if (!ec) {
      m_acceptor.listen(SOMAXCONN, ec);
    }
    if (ec) {
      boost::system::error_code ignored;
      m_acceptor.close(ignored);
      throw fail(ec.message());
    }
    m_port = m_acceptor.local_endpoint().port();
    spdlog::info("http: listening on http://{}:{}{} ({}; {} sessions max, idle expiry {}s, body limit {} bytes, "
                 "{} connections max)",
                 url_host(m_options.host), m_port, m_options.path,
                 m_options.bearer_token.empty() ? "no authentication (loopback only)" : "bearer token required",
                 m_options.max_sessions, m_options.session_idle_timeout.count(), m_options.max_body_bytes,
                 m_options.max_connections);
  }

  int port() const { return m_port; }

  int run() {
    bind();
    bool stopped;
    {
      std::lock_guard lock(m_run_mutex);
      stopped = m_stopping.load();
      m_running = !stopped;
    }
    if (stopped) {
      return finish_run();
    }
    m_sessions.start_reaper();
    m_work.emplace(m_io.get_executor());
    accept();
    m_io.run();
    return finish_run();
  }

  void stop() {
    if (m_stopping.exchange(true)) {
      return;
    }
    m_sessions.wake_reaper();
    std::lock_guard lock(m_run_mutex);
    if (m_running) {
      asio::post(m_io, [this] { begin_shutdown(); });
    }
  }

  std::size_t session_count() const { return m_sessions.size(); }

  // http::ConnectionOwner
  const HttpOptions& options() const override { return m_options; }
  const http::RequestLimits& limits() const override { return m_limits; }
  bool stopping() const override { return m_stopping.load(); }
  void dispatch(std::function<void()> job) override { m_pool.enqueue(std::move(job)); }
  bool admit_head(const http::Request& head, http::Response& res) override { return m_handler.admit_head(head, res); }
  void handle(const http::Request& req, http::Response& res) override { m_handler.handle(req, res); }
  void forget(const std::shared_ptr<Connection>& c) override {
    m_connections.erase(c);
    if (m_stopping.load() && m_connections.empty()) {
      m_shutdown_timer.cancel();
    }
  }

private:
  void accept() {
    m_acceptor.async_accept([this](boost::system::error_code ec, tcp::socket socket) {
      if (!m_acceptor.is_open() || ec == asio::error::operation_aborted) {
        return;
      }
      if (ec) {
        // EMFILE and the like: wait a little instead of spinning.
        warn_rate_limited(m_last_accept_warning, "http: accept failed: {} (open connections: {}); retrying",
                          ec.message(), m_connections.size());
        m_accept_pause.expires_after(100ms);
        m_accept_pause.async_wait([this](boost::system::error_code e) {
          if (!e) {
            accept();
          }
        });
        return;
      }
      on_accepted(std::move(socket));
      accept();
    });
  }

  void on_accepted(tcp::socket socket);
  void close_all_connections();
  void begin_shutdown();
  int finish_run();

  HttpOptions m_options;
  http::RequestLimits m_limits;
  int m_port = -1;
  std::atomic<bool> m_stopping{false};
  std::mutex m_run_mutex;
  bool m_running = false;

  http::SessionTable m_sessions;
  http::RequestHandler m_handler;
  http::WorkerPool m_pool;

  // I/O thread only. The io_context is declared after everything its pending handlers may touch
  // and before the I/O objects (destroyed first).
  std::unordered_set<std::shared_ptr<Connection>> m_connections;
  Clock::time_point m_last_accept_warning{};
  Clock::time_point m_last_evict_warning{};
  asio::io_context m_io{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> m_work;
  tcp::acceptor m_acceptor;
  asio::steady_timer m_accept_pause;
  asio::steady_timer m_shutdown_timer;
};

void HttpTransport::Impl::on_accepted(tcp::socket socket) {
  boost::system::error_code ec;
  socket.set_option(tcp::no_delay(true), ec);
  if (m_stopping.load()) {
    socket.close(ec);
    return;
  }
  if (m_connections.size() >= m_options.max_connections) {
    // Make room: the connection that has waited longest for a complete request gives way, one that
    // never authenticated first. Connections busy with a request or a stream are never closed.
    std::shared_ptr<Connection> victim;
    for (const auto& c : m_connections) {
      if (!c->evictable()) {
        continue;
      }
      if (!victim || std::make_pair(c->trusted(), c->waiting_since()) <
                         std::make_pair(victim->trusted(), victim->waiting_since())) {
        victim = c;
      }
    }
    if (!victim) {
      warn_rate_limited(m_last_evict_warning,
                        "http: {} connections open (--max-connections), all busy with requests or streams; refusing "
                        "new connections with 503",
                        m_connections.size());
      std::make_shared<Connection>(*this, std::move(socket))->refuse();
      return;
    }
    warn_rate_limited(m_last_evict_warning,
                      "http: {} connections open (--max-connections); closing the ones that wait longest for a "
                      "complete request (e.g. from {}) to admit new ones",
                      m_connections.size(), victim->remote());
    spdlog::debug("http: closed a connection from {} that waited for a request for {} ms ({})", victim->remote(),
                  std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - victim->waiting_since()).count(),
                  victim->trusted() ? "authenticated before" : "never authenticated");
    victim->close();
  }
  auto connection = std::make_shared<Connection>(*this, std::move(socket));
  m_connections.insert(connection);
  connection->start();
}

void HttpTransport::Impl::close_all_connections() {
  std::vector<std::shared_ptr<Connection>> left(m_connections.begin(), m_connections.end());
  for (auto& c : left) {
    c->close();
  }
  m_connections.clear();
}

void HttpTransport::Impl::begin_shutdown() {
  boost::system::error_code ec;
  m_acceptor.close(ec);
  m_accept_pause.cancel();
  // Requests in flight are answered with an error; streams carry it, then end.
  for (auto& s : m_sessions.all()) {
    s->end("the server is shutting down; the request was cancelled");
  }
  std::vector<std::shared_ptr<Connection>> connections(m_connections.begin(), m_connections.end());
  for (auto& c : connections) {
    c->on_shutdown();
  }
  m_work.reset();
  if (!m_connections.empty()) {
    m_shutdown_timer.expires_after(k_shutdown_flush);
    m_shutdown_timer.async_wait([this](boost::system::error_code e) {
      if (e) {
        return;
      }
      close_all_connections();
      m_io.stop();
    });
  }
}

int HttpTransport::Impl::finish_run() {
  {
    std::lock_guard lock(m_run_mutex);
    m_running = false;
  }
  close_all_connections(); // the I/O thread has returned: no handler runs concurrently
  m_sessions.join_reaper();
  // End every session: in-flight tool calls are cancelled.
  auto sessions = m_sessions.take_all();
  for (auto& s : sessions) {
    s->end("the server is shutting down; the request was cancelled");
    s->endpoint->close();
  }
  m_sessions.drain_close_queue();
  m_pool.shutdown();
  spdlog::info("http: stopped ({} session(s) ended)", sessions.size());
  return 0;
}

HttpTransport::HttpTransport(HttpOptions options, EndpointFactory& factory)
    : m_impl(std::make_unique<Impl>(std::move(options), factory)) {}

HttpTransport::~HttpTransport() = default;

void HttpTransport::bind() {
  m_impl->bind();
}
int HttpTransport::port() const {
  return m_impl->port();
}
int HttpTransport::run() {
  return m_impl->run();
}
void HttpTransport::stop() {
  m_impl->stop();
}
std::size_t HttpTransport::session_count() const {
  return m_impl->session_count();
}

} // namespace smcp::transport
