#include "transport/stdio_transport.h"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <string>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

namespace smcp::transport {

namespace {

// Writes each message plus '\n' atomically with respect to other writers.
class FdSink final : public MessageSink {
public:
  explicit FdSink(int fd) : m_fd(fd) {}

  void send(std::string message) override {
    message.push_back('\n');
    std::lock_guard lock(m_mutex);
    if (m_broken) {
      return;
    }
    const char* p = message.data();
    std::size_t left = message.size();
    while (left > 0) {
      ssize_t n = ::write(m_fd, p, left);
      if (n < 0) {
        if (errno == EINTR) {
          continue;
        }
        spdlog::warn("stdio: cannot write to output ({}); dropping further output", std::strerror(errno));
        m_broken = true;
        return;
      }
      p += n;
      left -= static_cast<std::size_t>(n);
    }
  }

private:
  int m_fd;
  std::mutex m_mutex;
  bool m_broken = false;
};

} // namespace

StdioTransport::StdioTransport(StdioOptions options)
    : m_options(options), m_stop_fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

StdioTransport::~StdioTransport() {
  if (m_stop_fd >= 0) {
    ::close(m_stop_fd);
  }
}

void StdioTransport::stop() {
  std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(m_stop_fd, &one, sizeof one);
}

int StdioTransport::run(EndpointFactory& factory) {
  auto sink = std::make_shared<FdSink>(m_options.out_fd);
  auto endpoint = factory.open(sink);

  std::string line;
  bool discarding = false;   // inside an oversized line
  std::size_t discarded = 0; // bytes of the oversized line so far
  char buf[64 * 1024];
  int rc = 0;

  auto deliver = [&](std::string& msg) {
    if (!msg.empty() && msg.back() == '\r') {
      msg.pop_back();
    }
    bool blank = msg.find_first_not_of(" \t\r") == std::string::npos;
    if (!blank) {
      endpoint->receive(msg, sink);
    }
    msg.clear();
  };

  for (;;) {
    pollfd fds[2] = {{m_options.in_fd, POLLIN, 0}, {m_stop_fd, POLLIN, 0}};
    if (::poll(fds, m_stop_fd >= 0 ? 2 : 1, -1) < 0) {
      if (errno == EINTR) {
        continue;
      }
      spdlog::error("stdio: poll error: {}", std::strerror(errno));
      rc = 1;
      break;
    }
    if (m_stop_fd >= 0 && (fds[1].revents & POLLIN)) {
      spdlog::info("stdio: stopping");
      break;
    }
    ssize_t n = ::read(m_options.in_fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      spdlog::error("stdio: read error: {}", std::strerror(errno));
      rc = 1;
      break;
    }
    if (n == 0) {
      break;
    }
    std::size_t start = 0;
    const auto len = static_cast<std::size_t>(n);
    while (start < len) {
      const void* nl = std::memchr(buf + start, '\n', len - start);
      std::size_t end = nl ? static_cast<std::size_t>(static_cast<const char*>(nl) - buf) : len;
      std::size_t chunk = end - start;
      if (discarding) {
        discarded += chunk;
      } else if (line.size() + chunk > m_options.max_message_bytes) {
        discarding = true;
        discarded = line.size() + chunk;
        line.clear();
        line.shrink_to_fit();
      } else {
        line.append(buf + start, chunk);
      }
      if (!nl) {
        break;
      }
      if (discarding) {
        spdlog::warn("stdio: refused a {}-byte message (limit {})", discarded, m_options.max_message_bytes);
        endpoint->receive_oversized(discarded, m_options.max_message_bytes, sink);
        discarding = false;
        discarded = 0;
      } else {
        deliver(line);
      }
      start = end + 1;
    }
  }
  if (discarding) {
    endpoint->receive_oversized(discarded, m_options.max_message_bytes, sink);
  } else if (!line.empty()) {
    deliver(line); // a last message without its newline
  }
  spdlog::info("stdio: end of input, shutting down");
  endpoint->close();
  return rc;
}

} // namespace smcp::transport
