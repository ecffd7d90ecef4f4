#include "sandbox/exec/helper_frames.h"

#include "sandbox/exec/captured_output.h"
#include "sandbox/exec/quote.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sys/random.h>

namespace smcp::exec::helper {

namespace {
constexpr std::size_t k_max_frame = 16 * 1024 * 1024;
}

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

void Decoder::feed(std::string_view data) {
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

void Decoder::frame(char type, std::string_view data) {
  switch (type) {
  case 'h':
    if (!m_state.hello) {
      m_state.hello = true;
      if (m_on_hello) {
        m_on_hello();
      }
    }
    break;
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
  case 'r':
    m_state.busy = data.empty() ? std::string("busy") : std::string(data);
    break;
  case 'f':
    m_state.failed = std::string(data);
    break;
  default:
    m_state.broken = true;
  }
}

void StartOutput::feed(Stream stream, std::string_view data) {
  std::lock_guard lock(m_mutex);
  std::string& to = stream == Stream::out ? m_out : m_err;
  to.append(data);
  if (to.size() > 64 * 1024) {
    to.erase(0, to.size() - 4096); // the marker and answer are at the end
  }
  m_cv.notify_all();
}

std::optional<std::string> StartOutput::line(std::chrono::milliseconds wait) {
  std::unique_lock lock(m_mutex);
  m_cv.wait_for(lock, wait, [&] { return answer().has_value(); });
  return answer();
}

std::optional<std::string> StartOutput::answer() const {
  auto at = m_out.find(m_marker);
  if (at == std::string::npos) {
    return std::nullopt;
  }
  at += m_marker.size();
  auto nl = m_out.find('\n', at);
  if (nl == std::string::npos) {
    return std::nullopt;
  }
  return m_out.substr(at, nl - at);
}

std::string socket_probe_program(const std::string& socket, const std::string& nonce) {
  return "use Socket; my $n = '" + nonce + "'; my $p = " + perl_quote(socket) +
         ";\nmy $s;\nmy $up = -S $p && socket($s, AF_UNIX, SOCK_STREAM, 0) && connect($s, pack_sockaddr_un($p));\n"
         "print \"\\nsmcp-probe $n \", ($up ? 'present' : 'gone'), \"\\n\";\n__END__\n";
}

std::optional<bool> socket_probe_answer(const std::string& out, const std::string& nonce) {
  const std::string marker = "\nsmcp-probe " + nonce + " ";
  if (out.find(marker + "present\n") != std::string::npos) {
    return true;
  }
  if (out.find(marker + "gone\n") != std::string::npos) {
    return false;
  }
  return std::nullopt;
}

std::string random_nonce() {
  unsigned char bytes[16];
  std::size_t got = 0;
  while (got < sizeof bytes) {
    const ssize_t n = ::getrandom(bytes + got, sizeof bytes - got, 0);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      throw HostError(HostError::Kind::io, std::string("getrandom failed: ") + std::strerror(errno));
    }
    got += static_cast<std::size_t>(n);
  }
  static constexpr char k_hex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : bytes) {
    out += k_hex[b >> 4];
    out += k_hex[b & 15];
  }
  return out;
}

} // namespace smcp::exec::helper
