// A bounded byte buffer over an unbounded stream: keeps the newest `capacity` bytes and addresses
// them by absolute stream offset, so readers can tell exactly how many bytes they missed.
//
// The bytes live in an anonymous mapping of `capacity` bytes made on the first append: pages
// become resident only as they are written, and release() (or destruction) gives them back to the
// system at once. Heap storage would stay in the allocator's arenas after being freed, so a server
// that had filled many rings would keep their size for good.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <new>
#include <string>
#include <string_view>
#include <sys/mman.h>
#include <utility>

namespace smcp::tools {

class RingBuffer {
public:
  explicit RingBuffer(std::size_t capacity) : m_capacity(std::max<std::size_t>(capacity, 1)) {}
  ~RingBuffer() { unmap(); }
  RingBuffer(const RingBuffer&) = delete;
  RingBuffer& operator=(const RingBuffer&) = delete;

  // Absolute offsets of the retained bytes: [start(), end()).
  std::uint64_t start() const { return m_end - m_size; }
  std::uint64_t end() const { return m_end; }
  std::size_t capacity() const { return m_capacity; }
  // Bytes of memory the retained output occupies (0 once released).
  std::size_t memory() const { return m_map ? m_size : 0; }

  void append(std::string_view data) {
    if (data.empty()) {
      return;
    }
    map();
    if (data.size() >= m_capacity) {
      // Only the newest `capacity` bytes survive.
      m_end += data.size();
      data.remove_prefix(data.size() - m_capacity);
      std::memcpy(m_map, data.data(), m_capacity);
      m_head = 0;
      m_size = m_capacity;
      return;
    }
    // m_head is the physical index of the oldest byte; the next byte goes to (m_head + m_size).
    for (std::size_t done = 0; done < data.size();) {
      std::size_t at = (m_head + m_size) % m_capacity;
      std::size_t n = std::min(data.size() - done, m_capacity - at);
      std::memcpy(m_map + at, data.data() + done, n);
      done += n;
      if (m_size + n <= m_capacity) {
        m_size += n;
      } else {
        std::size_t overwritten = m_size + n - m_capacity;
        m_head = (m_head + overwritten) % m_capacity;
        m_size = m_capacity;
      }
    }
    m_end += data.size();
  }

  // Forget everything and continue the stream at `offset` (>= end()): the bytes in between are lost.
  void skip_to(std::uint64_t offset) { reset(std::max(m_end, offset)); }

  // Forget everything (giving the memory back) and continue the stream at `offset`, which may be
  // earlier than end(): used to reload a released ring from the output's file.
  void reset(std::uint64_t offset) {
    unmap();
    m_end = offset;
  }

  // Gives the memory back; the stream continues at end() (nothing is retained).
  void release() { reset(m_end); }

  // Bytes [from, to) clamped to what is retained.
  std::string read(std::uint64_t from, std::uint64_t to) const {
    from = std::max(from, start());
    to = std::min(to, m_end);
    std::string out;
    if (from >= to) {
      return out;
    }
    out.reserve(static_cast<std::size_t>(to - from));
    std::size_t i = (m_head + static_cast<std::size_t>(from - start())) % m_capacity;
    std::size_t left = static_cast<std::size_t>(to - from);
    while (left > 0) {
      std::size_t n = std::min(left, m_capacity - i);
      out.append(m_map + i, n);
      left -= n;
      i = 0;
    }
    return out;
  }

private:
  void map() {
    if (m_map) {
      return;
    }
    void* p = ::mmap(nullptr, m_capacity, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
      throw std::bad_alloc();
    }
    m_map = static_cast<char*>(p);
  }
  void unmap() {
    if (m_map) {
      ::munmap(m_map, m_capacity);
      m_map = nullptr;
    }
    m_head = 0;
    m_size = 0;
  }

  std::size_t m_capacity;
  char* m_map = nullptr;
  std::size_t m_head = 0; // physical index of the oldest byte
  std::size_t m_size = 0; // bytes retained
  std::uint64_t m_end = 0;
};

} // namespace smcp::tools
