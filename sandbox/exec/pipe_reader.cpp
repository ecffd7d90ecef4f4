#include "sandbox/exec/pipe_reader.h"

#include <cerrno>
#include <unistd.h>

namespace smcp::exec {

PipeReader::PipeReader(EventLoop& loop, UniqueFd fd, std::function<void(std::string_view)> on_data,
                       std::function<void()> on_end)
    : m_fd(std::move(fd)), m_on_data(std::move(on_data)), m_on_end(std::move(on_end)) {
  if (m_fd) {
    m_watch = std::make_unique<EventLoop::Watch>(loop, m_fd.get());
    arm();
  }
}

PipeReader::~PipeReader() {
  close();
}

void PipeReader::close() {
  m_watch.reset(); // before the descriptor it watches
  m_fd.reset();
}

void PipeReader::arm() {
  m_watch->on_readable([this](bool) {
    char buf[64 * 1024];
    ssize_t n = ::read(m_fd.get(), buf, sizeof buf);
    if (n > 0) {
      m_on_data(std::string_view(buf, static_cast<std::size_t>(n)));
    }
    if (!m_fd) {
      return; // closed by on_data
    }
    if (n > 0 || (n < 0 && (errno == EINTR || errno == EAGAIN))) {
      arm();
      return;
    }
    close(); // end of file, or an error: this pipe is done
    if (m_on_end) {
      m_on_end();
    }
  });
}

} // namespace smcp::exec
