#include "sandbox/exec/local/file_window.h"

#include "sandbox/exec/fd.h"
#include "sandbox/exec/local/command.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace smcp::exec {

namespace {

bool is_continuation(char c) {
  return (static_cast<unsigned char>(c) & 0xC0) == 0x80;
}

struct Collected {
  std::vector<std::string> lines;
  std::uint64_t end = 0; // file position after the last collected line
  bool cut = false;
  bool has_nul = false;
};

// Reads up to `limit` lines starting at file position `pos`.
Collected collect_lines(int fd, std::uint64_t pos, std::uint64_t size, const FileReadRequest& req) {
  Collected c;
  c.end = pos; // an empty window (at the end of the file) has nothing after it
  std::string current;
  std::uint64_t current_len = 0;
  std::size_t total = 0;
  char buf[64 * 1024];
  bool in_line = false;
  auto finish_line = [&](std::uint64_t end_pos) {
    if (current_len > req.max_line_bytes) {
      std::size_t keep = req.max_line_bytes;
      while (keep > 0 && keep < current.size() && is_continuation(current[keep])) {
        --keep;
      }
      current.resize(keep);
      current += " [... line cut: " + std::to_string(current_len - keep) + " more bytes]";
      c.cut = true;
    }
    total += current.size() + 8;
    c.lines.push_back(std::move(current));
    current.clear();
    current_len = 0;
    in_line = false;
    c.end = end_pos;
  };
  while (pos < size && c.lines.size() < req.limit && total < req.max_total_bytes) {
    ssize_t n = ::pread(fd, buf, std::min<std::uint64_t>(sizeof buf, size - pos), static_cast<off_t>(pos));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      break;
    }
    std::size_t i = 0;
    const auto got = static_cast<std::size_t>(n);
    while (i < got && c.lines.size() < req.limit && total < req.max_total_bytes) {
      const char* start = buf + i;
      const void* nl = std::memchr(start, '\n', got - i);
      std::size_t len = nl ? static_cast<std::size_t>(static_cast<const char*>(nl) - start) : got - i;
      if (std::memchr(start, '\0', len)) {
        c.has_nul = true;
        return c;
      }
      if (current.size() < req.max_line_bytes + 4) {
        current.append(start, std::min(len, req.max_line_bytes + 4 - current.size()));
      }
      current_len += len;
      in_line = true;
      i += len;
      if (nl) {
        ++i;
        finish_line(pos + i);
      }
    }
    pos += i;
  }
  if (in_line && pos >= size && c.lines.size() < req.limit) {
    finish_line(size); // a last line without a newline
  }
  return c;
}

std::uint64_t count_newlines(int fd, std::uint64_t from, std::uint64_t to) {
  std::uint64_t count = 0;
  char buf[256 * 1024];
  while (from < to) {
    ssize_t n = ::pread(fd, buf, std::min<std::uint64_t>(sizeof buf, to - from), static_cast<off_t>(from));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      break;
    }
    count += static_cast<std::uint64_t>(std::count(buf, buf + n, '\n'));
    from += static_cast<std::uint64_t>(n);
  }
  return count;
}

// Position where the line `back` lines from the end starts (1 = the last line), scanning
// backwards; `found` is how many lines exist from there to the end.
std::uint64_t find_tail_start(int fd, std::uint64_t size, std::uint64_t back, std::uint64_t& found) {
  found = 0;
  if (size == 0) {
    return 0;
  }
  char last = 0;
  if (::pread(fd, &last, 1, static_cast<off_t>(size - 1)) != 1) {
    last = 0;
  }
  std::uint64_t pos = last == '\n' ? size - 1 : size; // the final newline ends the last line
  char buf[64 * 1024];
  while (pos > 0) {
    std::uint64_t len = std::min<std::uint64_t>(sizeof buf, pos);
    std::uint64_t at = pos - len;
    ssize_t n = ::pread(fd, buf, len, static_cast<off_t>(at));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      break;
    }
    for (std::uint64_t i = static_cast<std::uint64_t>(n); i > 0; --i) {
      if (buf[i - 1] == '\n') {
        if (++found == back) {
          return at + i;
        }
      }
    }
    pos = at;
  }
  ++found; // the first line of the file
  return 0;
}

// Files that report no size (procfs) are read up to this much.
constexpr std::uint64_t k_unsized_file_limit = 16ull * 1024 * 1024;

// The file opened for reading, with its size; refuses what is not a regular file. procfs and
// friends report size 0 for files with content: what a read gives (bounded) is copied into memory
// and windowed instead.
UniqueFd open_text_file(const std::string& path, std::uint64_t& size) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (!fd) {
    int err = errno;
    if (err == ENOENT || err == ENOTDIR) {
      throw HostError(HostError::Kind::not_found, "no such file: " + path);
    }
    if (err == EACCES || err == EPERM) {
      throw HostError(HostError::Kind::refused, "permission denied: " + path);
    }
    throw HostError(HostError::Kind::io, "cannot open " + path + ": " + errno_text(err));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    throw HostError(HostError::Kind::io, "cannot stat " + path + ": " + errno_text(errno));
  }
  if (S_ISDIR(st.st_mode)) {
    throw HostError(HostError::Kind::invalid,
                    path + " is a directory; list it with remote_bash {command: \"ls -la " + path + "\"}");
  }
  if (!S_ISREG(st.st_mode)) {
    throw HostError(HostError::Kind::invalid, path + " is not a regular file (device, FIFO or socket)");
  }
  size = static_cast<std::uint64_t>(st.st_size);
  if (size > 0) {
    return fd;
  }
  UniqueFd copy(::memfd_create("sandbox-mcp-window", MFD_CLOEXEC));
  char buf[64 * 1024];
  std::uint64_t total = 0;
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0 || !copy) {
      break;
    }
    write_all(copy.get(), buf, static_cast<std::size_t>(n));
    total += static_cast<std::uint64_t>(n);
    if (total >= k_unsized_file_limit) {
      break;
    }
  }
  if (copy && total > 0) {
    size = total;
    return copy;
  }
  return fd;
}

// Position after the first `skip` lines; `seen` is how many lines were skipped (fewer at the end).
std::uint64_t skip_lines(int fd, std::uint64_t size, std::uint64_t skip, std::uint64_t& seen) {
  std::uint64_t pos = 0;
  seen = 0;
  char buf[256 * 1024];
  while (seen < skip && pos < size) {
    ssize_t n = ::pread(fd, buf, std::min<std::uint64_t>(sizeof buf, size - pos), static_cast<off_t>(pos));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      break;
    }
    const char* p = buf;
    const char* end = buf + n;
    while (seen < skip) {
      const void* nl = std::memchr(p, '\n', static_cast<std::size_t>(end - p));
      if (!nl) {
        break;
      }
      ++seen;
      p = static_cast<const char*>(nl) + 1;
    }
    pos += static_cast<std::uint64_t>(seen < skip ? n : p - buf);
  }
  return pos;
}

char last_byte(int fd, std::uint64_t size) {
  char last = '\n';
  if (size > 0 && ::pread(fd, &last, 1, static_cast<off_t>(size - 1)) != 1) {
    last = '\n';
  }
  return last;
}

} // namespace

FileWindow read_file_window(const FileReadRequest& req, std::uint64_t count_lines_below) {
  std::uint64_t size = 0;
  UniqueFd fd = open_text_file(req.path, size);
  {
    char head[8192];
    ssize_t n = ::pread(fd.get(), head, sizeof head, 0);
    if (n > 0 && std::memchr(head, '\0', static_cast<std::size_t>(n))) {
      throw HostError(HostError::Kind::invalid, req.path + " looks like a binary file (it contains NUL bytes); "
                                                           "inspect it with remote_bash, e.g. `xxd | head`");
    }
  }
  FileWindow w;
  std::uint64_t start_pos = 0;
  if (req.offset > 0) {
    const auto skip = static_cast<std::uint64_t>(req.offset - 1);
    std::uint64_t seen = 0;
    start_pos = skip_lines(fd.get(), size, skip, seen);
    w.start_line = req.offset;
    if (seen < skip) {
      // Fewer lines than the offset: an empty window past the end.
      w.more_before = size > 0;
      w.total_lines = static_cast<long>(seen + (last_byte(fd.get(), size) != '\n' ? 1 : 0));
      return w;
    }
  } else {
    std::uint64_t found = 0;
    start_pos = find_tail_start(fd.get(), size, static_cast<std::uint64_t>(-req.offset), found);
    if (start_pos == 0 || size <= count_lines_below) {
      std::uint64_t before = start_pos == 0 ? 0 : count_newlines(fd.get(), 0, start_pos);
      w.start_line = static_cast<long>(before + 1);
      w.total_lines = static_cast<long>(before + found);
    } else {
      w.start_line = -static_cast<long>(found);
    }
  }
  Collected c = collect_lines(fd.get(), start_pos, size, req);
  if (c.has_nul) {
    throw HostError(HostError::Kind::invalid, req.path + " looks like a binary file (it contains NUL bytes)");
  }
  w.lines = std::move(c.lines);
  w.cut_lines = c.cut;
  w.more_before = start_pos > 0;
  w.more_after = c.end < size;
  if (!w.total_lines && !w.more_after && w.start_line > 0) {
    w.total_lines = w.start_line - 1 + static_cast<long>(w.lines.size());
  }
  return w;
}

} // namespace smcp::exec
