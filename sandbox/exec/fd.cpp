#include "sandbox/exec/fd.h"

#include <cerrno>
#include <fcntl.h>
#include <unistd.h>

namespace smcp::exec {

void UniqueFd::reset(int fd) {
  if (m_fd >= 0) {
    ::close(m_fd);
  }
  m_fd = fd;
}

bool open_pipe(Pipe& pipe) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return false;
  }
  pipe.read.reset(fds[0]);
  pipe.write.reset(fds[1]);
  return true;
}

int write_all(int fd, const char* p, std::size_t n, std::uint64_t* done) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) {
        continue;
      }
      return errno;
    }
    p += w;
    n -= static_cast<std::size_t>(w);
    if (done) {
      *done += static_cast<std::uint64_t>(w);
    }
  }
  return 0;
}

std::string read_small_file(const std::string& path, std::size_t max) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    return {};
  }
  std::string out(max, '\0');
  ssize_t n;
  while ((n = ::read(fd.get(), out.data(), out.size())) < 0 && errno == EINTR) {
  }
  out.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  return out;
}

} // namespace smcp::exec
