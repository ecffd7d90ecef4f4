// A bounded byte buffer over an unbounded stream: keeps the newest `capacity` bytes and addresses
// them by absolute stream offset, so readers can tell exactly how many bytes they missed.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>

namespace smcp::tools {

class RingBuffer {
public:
  explicit RingBuffer(std::size_t capacity) : m_capacity(std::max<std::size_t>(capacity, 1)) {}

  // Absolute offsets of the retained bytes: [start(), end()).
  std::uint64_t start() const { return m_end - m_size; }
  std::uint64_t end() const { return m_end; }
  std::size_t capacity() const { return m_capacity; }
  std::size_t memory() const { return m_buf.capacity(); }

  void append(std::string_view data) {
    if (data.size() >= m_capacity) {
      // Only the newest `capacity` bytes survive.
      m_end += data.size();
      data.remove_prefix(data.size() - m_capacity);
      m_buf.assign(data.begin(), data.end());
      m_head = 0;
      m_size = m_capacity;
      return;
    }
    if (m_buf.size() < m_capacity) {
      // Still growing: the buffer is linear (m_head == 0) until it reaches capacity.
      std::size_t room = m_capacity - m_buf.size();
      std::size_t n = std::min(room, data.size());
      m_buf.append(data.substr(0, n));
      m_size = m_buf.size();
      m_end += n;
      data.remove_prefix(n);
      if (data.empty()) {
        return;
      }
    }
    // Full circular buffer: overwrite the oldest bytes.
    for (std::size_t done = 0; done < data.size();) {
      std::size_t n = std::min(data.size() - done, m_capacity - m_head);
      m_buf.replace(m_head, n, data.substr(done, n));
      m_head = (m_head + n) % m_capacity;
      done += n;
    }
    m_end += data.size();
    m_size = m_capacity;
  }

  // Forget everything and continue the stream at `offset` (>= end()): the bytes in between are lost.
  void skip_to(std::uint64_t offset) {
    m_buf.clear();
    m_head = 0;
    m_size = 0;
    m_end = std::max(m_end, offset);
  }

  // Bytes [from, to) clamped to what is retained.
  std::string read(std::uint64_t from, std::uint64_t to) const {
    from = std::max(from, start());
    to = std::min(to, m_end);
    std::string out;
    if (from >= to) {
      return out;
    }
    out.reserve(static_cast<std::size_t>(to - from));
    // m_head is the physical index of the oldest byte (0 while the buffer is still growing).
    std::size_t i = (m_head + static_cast<std::size_t>(from - start())) % m_buf.size();
    std::size_t left = static_cast<std::size_t>(to - from);
    while (left > 0) {
      std::size_t n = std::min(left, m_buf.size() - i);
      out.append(m_buf, i, n);
      left -= n;
      i = 0;
    }
    return out;
  }

private:
  std::size_t m_capacity;
  std::string m_buf;
  std::size_t m_head = 0; // once full: physical index of the oldest byte (= next write position)
  std::size_t m_size = 0;
  std::uint64_t m_end = 0;
};

} // namespace smcp::tools
