// The HTTP/1.1 client pieces the benchmark clients share (http_load and soak): loopback sockets,
// one keep-alive connection that sends MCP requests one at a time and reads whole answers
// (Content-Length or chunked bodies). Header-only; benchmarks only.
#pragma once

#include "http_head.h"

#include <arpa/inet.h>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <optional>
#include <poll.h>
#include <stdexcept>
#include <string>
#include <sys/socket.h>
#include <unistd.h>

namespace smcp::bench {

// No answer within the connection's timeout.
struct NoAnswer : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline sockaddr_in loopback_address(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

// A socket connected to 127.0.0.1:`port`; -1 when the connection failed (errno tells why).
inline int connect_loopback(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr = loopback_address(port);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    if (fd >= 0) {
      int saved = errno;
      ::close(fd);
      errno = saved;
    }
    return -1;
  }
  return fd;
}

// One keep-alive HTTP/1.1 connection to the MCP endpoint; requests are sent one at a time.
class HttpConnection {
public:
  struct Response {
    int status = 0;
    bool sse = false; // Content-Type: text/event-stream
    std::string session;
    std::string body;
  };

  // `timeout`: how long an answer may take (NoAnswer beyond it); none: wait as long as it takes.
  explicit HttpConnection(int port, std::optional<std::chrono::seconds> timeout = std::nullopt)
      : m_port(port), m_timeout(timeout) {
    m_fd = connect_loopback(port);
    if (m_fd < 0) {
      throw std::runtime_error(std::string("connect: ") + std::strerror(errno));
    }
    int one = 1;
    ::setsockopt(m_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~HttpConnection() { ::close(m_fd); }
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  // `method` /mcp with `body`, in `session` when not empty, with a bearer `token` when not empty.
  Response post(const std::string& session, const std::string& body, const char* method = "POST",
                const std::string& token = "") {
    std::string req = std::string(method) + " /mcp HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(m_port) +
                      "\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n";
    if (!session.empty()) {
      req += "Mcp-Session-Id: " + session + "\r\nMCP-Protocol-Version: 2025-11-25\r\n";
    }
    if (!token.empty()) {
      req += "Authorization: Bearer " + token + "\r\n";
    }
    req += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    for (std::size_t sent = 0; sent < req.size();) {
      ssize_t n = ::send(m_fd, req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) {
        throw std::runtime_error("send failed");
      }
      sent += static_cast<std::size_t>(n);
    }
    return read_response();
  }

private:
  using Clock = std::chrono::steady_clock;

  void fill(Clock::time_point deadline) {
    if (m_timeout) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      pollfd p{m_fd, POLLIN, 0};
      if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) <= 0) {
        throw NoAnswer("no answer within " + std::to_string(m_timeout->count()) + " s");
      }
    }
    char buf[65536];
    ssize_t n = ::recv(m_fd, buf, sizeof buf, 0);
    if (n <= 0) {
      throw std::runtime_error("connection closed");
    }
    m_buf.append(buf, static_cast<std::size_t>(n));
  }

  Response read_response() {
    const auto deadline = m_timeout ? Clock::now() + *m_timeout : Clock::time_point::max();
    Response r;
    std::size_t end;
    while ((end = m_buf.find("\r\n\r\n")) == std::string::npos) {
      fill(deadline);
    }
    const auto head = parse_response_head(m_buf.substr(0, end));
    m_buf.erase(0, end + 4);
    r.status = head.status;
    r.session = head.session;
    r.sse = head.sse;
    if (!head.chunked) {
      while (m_buf.size() < head.length) {
        fill(deadline);
      }
      r.body = m_buf.substr(0, head.length);
      m_buf.erase(0, head.length);
      return r;
    }
    for (;;) {
      std::size_t crlf;
      while ((crlf = m_buf.find("\r\n")) == std::string::npos) {
        fill(deadline);
      }
      std::size_t size = std::stoul(m_buf.substr(0, crlf), nullptr, 16);
      while (m_buf.size() < crlf + 2 + size + 2) {
        fill(deadline);
      }
      r.body += m_buf.substr(crlf + 2, size);
      m_buf.erase(0, crlf + 2 + size + 2);
      if (size == 0) {
        return r;
      }
    }
  }

  int m_port;
  std::optional<std::chrono::seconds> m_timeout;
  int m_fd = -1;
  std::string m_buf;
};

} // namespace smcp::bench
