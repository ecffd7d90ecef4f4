// Owning file descriptors and the few things done with raw ones: a pipe, writing everything,
// reading a small file. write_all is async-signal-safe (used between fork and exec/_exit).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

namespace smcp::exec {

// Closes the descriptor it holds (-1: none) when destroyed or reset.
class UniqueFd {
public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : m_fd(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& o) noexcept : m_fd(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    reset(o.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return m_fd; }
  int release() { return std::exchange(m_fd, -1); }
  void reset(int fd = -1);
  explicit operator bool() const { return m_fd >= 0; }

private:
  int m_fd = -1;
};

struct Pipe {
  UniqueFd read;
  UniqueFd write;
};

// A pipe with both ends close-on-exec; false (errno set) when it cannot be made.
bool open_pipe(Pipe& pipe);

// Writes all `n` bytes (retrying on EINTR). Returns 0, or the errno of the write that failed;
// `done` (if given) counts the bytes written. Async-signal-safe.
int write_all(int fd, const char* p, std::size_t n, std::uint64_t* done = nullptr);

// The first `max` bytes of a small file (/proc, records of a job); empty when it cannot be read.
std::string read_small_file(const std::string& path, std::size_t max = 256);

} // namespace smcp::exec
