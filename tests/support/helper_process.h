// The SSH helper (sandbox/exec/scripts/helper.pl) run here as the server runs it on a host:
// `perl -` reads the program from its stdin, which then stays open (the helper lives until it
// ends), with HOME set; optionally under a wrapper (`unshare ...`, `setpriv ...`) and with more
// environment. And one request to its socket, the frames it answered. Header-only, for the unit
// tests of the helper.
#pragma once

#include "sandbox/exec/scripts/embedded.h"

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <poll.h>
#include <stdexcept>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace smcp::testing {

// The nonce the tests' helper starts are given (the server draws a new one for each).
inline constexpr std::string_view k_nonce = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";

class LocalHelper {
public:
  // `wrapper` comes before `env HOME=... ENV... perl -` (and must exec it, e.g. `sh -c '...; exec "$@"' sh`).
  explicit LocalHelper(const std::string& home, const std::string& mode = "skip",
                       const std::vector<std::string>& wrapper = {}, const std::vector<std::string>& env = {}) {
    int in[2];
    int out[2];
    if (::pipe(in) != 0 || ::pipe(out) != 0) {
      throw std::runtime_error("pipe");
    }
    std::vector<std::string> words = wrapper;
    words.push_back("/usr/bin/env");
    words.push_back("HOME=" + home);
    words.insert(words.end(), env.begin(), env.end());
    words.push_back("perl");
    words.push_back("-");
    std::vector<char*> argv;
    for (auto& w : words) {
      argv.push_back(w.data());
    }
    argv.push_back(nullptr);
    m_pid = ::fork();
    if (m_pid == 0) {
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      ::close(in[0]);
      ::close(in[1]);
      ::close(out[0]);
      ::close(out[1]);
      ::execvp(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    m_in = in[1];
    m_out = out[0];
    const std::string program = "$mode = '" + mode + "';\n$nonce = '" + std::string(k_nonce) + "';\n" +
                                std::string(exec::scripts::helper_pl) + "\n__END__\n";
    for (std::size_t at = 0; at < program.size();) {
      const ssize_t w = ::write(m_in, program.data() + at, program.size() - at);
      if (w <= 0) {
        break;
      }
      at += static_cast<std::size_t>(w);
    }
    read_answer();
    if (m_answer.rfind("ready ", 0) == 0 && m_answer.size() > 6 + 33) {
      m_token = m_answer.substr(6, 32);
      m_socket = m_answer.substr(6 + 33);
    }
  }
  ~LocalHelper() { stop(); }
  LocalHelper(const LocalHelper&) = delete;
  LocalHelper& operator=(const LocalHelper&) = delete;

  // Its channel closes: it removes its socket and exits.
  void stop() {
    if (m_in >= 0) {
      ::close(m_in);
      m_in = -1;
    }
    if (m_pid > 0) {
      int st = 0;
      ::waitpid(m_pid, &st, 0);
      m_pid = -1;
    }
    if (m_out >= 0) {
      ::close(m_out);
      m_out = -1;
    }
  }

  const std::string& answer() const { return m_answer; } // "ready TOKEN SOCKET" or "failed WHY"
  const std::string& token() const { return m_token; }
  const std::string& socket() const { return m_socket; }
  pid_t pid() const { return m_pid; }
  // Its snapshot: s-HOST-BOOT-PID-RAND.sh beside h-HOST-BOOT-PID-RAND.sock.
  std::string snapshot() const {
    const std::filesystem::path p(m_socket);
    const std::string name = p.filename();
    return (p.parent_path() / ("s-" + name.substr(2, name.size() - 2 - 5) + ".sh")).string();
  }
  // The name of this host in the helper's file names.
  std::string host() const { return part(0); }
  // The boot in the helper's file names ("b" and 8 hex digits).
  std::string boot() const { return part(1); }

private:
  std::string part(int n) const {
    const std::string name = std::filesystem::path(m_socket).filename();
    std::size_t at = 2;
    for (int i = 0; i < n; ++i) {
      at = name.find('-', at) + 1;
    }
    return name.substr(at, name.find('-', at) - at);
  }

  // Its answer: the line after the marker.
  void read_answer() {
    const std::string k_marker = "\nsandbox-mcp-helper " + std::string(k_nonce) + ": ";
    std::string got;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      const auto at = got.find(k_marker);
      if (at != std::string::npos && got.find('\n', at + k_marker.size()) != std::string::npos) {
        m_answer = got.substr(at + k_marker.size(), got.find('\n', at + k_marker.size()) - at - k_marker.size());
        break;
      }
      pollfd p{m_out, POLLIN, 0};
      if (::poll(&p, 1, 100) > 0) {
        char buf[4096];
        const ssize_t r = ::read(m_out, buf, sizeof buf);
        if (r <= 0) {
          break;
        }
        got.append(buf, static_cast<std::size_t>(r));
      }
    }
  }

  pid_t m_pid = -1;
  int m_in = -1;
  int m_out = -1;
  std::string m_answer, m_token, m_socket;
};

// One request to a helper's socket; the frames it answered ("a", "o:hi\n", "x:exit 0"...) until
// it closed the connection.
inline std::vector<std::string> helper_request(const std::string& socket, const std::string& token,
                                               const std::string& exec) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", socket.c_str());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return {"connect failed: " + std::string(std::strerror(errno))};
  }
  std::string got;
  bool open = true;
  auto read_some = [&] {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 10000) <= 0) {
      got += "<timeout>";
      open = false;
      return;
    }
    char buf[4096];
    const ssize_t r = ::read(fd, buf, sizeof buf);
    if (r <= 0) {
      open = false;
      return;
    }
    got.append(buf, static_cast<std::size_t>(r));
  };
  // As the server does: the request only after the helper's hello (a helper that cannot fork
  // answers "r" instead, and nothing is sent).
  while (open && got.size() < 5) {
    read_some();
  }
  if (got.size() >= 5 && got[0] == 'h') {
    const std::string req = "smcp2 " + token + " " + std::to_string(exec.size()) + " 0\n" + exec;
    if (::write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) {
      ::close(fd);
      return {"write failed"};
    }
  }
  while (open) {
    read_some();
  }
  ::close(fd);
  std::vector<std::string> frames;
  std::size_t at = 0;
  while (got.size() - at >= 5) {
    const auto* b = reinterpret_cast<const unsigned char*>(got.data() + at);
    const std::size_t len = (std::size_t(b[1]) << 24) | (std::size_t(b[2]) << 16) | (std::size_t(b[3]) << 8) | b[4];
    frames.push_back(std::string(1, got[at]) + (len ? ":" + got.substr(at + 5, len) : ""));
    at += 5 + len;
  }
  return frames;
}

} // namespace smcp::testing
