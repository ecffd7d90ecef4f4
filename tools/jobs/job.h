// What the job manager keeps per job, shared by its source files (job_manager.cpp,
// foreground_run.cpp, job_host_state.cpp, job_reads.cpp, ring_memory.cpp); not an interface.
#pragma once

#include "tools/jobs/jobs.h"
#include "tools/jobs/ring_buffer.h"
#include "tools/jobs/text.h"

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <unistd.h>

namespace smcp::tools {

using Clock = std::chrono::steady_clock;

// Keeps the head and the tail of one stream of a foreground command and counts the rest.
class StreamCapture {
public:
  explicit StreamCapture(std::size_t cap) : m_half(cap / 2), m_tail(std::max<std::size_t>(cap - cap / 2, 1)) {}

  void add(std::string_view data) {
    m_total += data.size();
    if (m_head.size() < m_half) {
      std::size_t n = std::min(m_half - m_head.size(), data.size());
      m_head.append(data.substr(0, n));
      data.remove_prefix(n);
    }
    if (!data.empty()) {
      m_tail.append(data);
    }
  }

  std::uint64_t total() const { return m_total; }
  bool truncated() const { return m_total > m_head.size() + (m_tail.end() - m_tail.start()); }

  // The stream, cut in the middle with a marker saying how much was dropped.
  std::string text(const std::string& where_full) const {
    std::string tail = m_tail.read(m_tail.start(), m_tail.end());
    if (!truncated()) {
      return m_head + tail;
    }
    std::uint64_t dropped = m_total - m_head.size() - tail.size();
    std::string head = m_head;
    std::size_t head_keep = utf8_prefix_length(head, head.size());
    std::size_t tail_skip = utf8_suffix_start(tail, 0);
    dropped += (head.size() - head_keep) + tail_skip;
    head.resize(head_keep);
    return head + omission_marker(dropped, where_full) + tail.substr(tail_skip);
  }

private:
  std::size_t m_half;
  std::string m_head;
  RingBuffer m_tail;
  std::uint64_t m_total = 0;
};

struct JobManager::Job {
  explicit Job(std::size_t ring_bytes) : ring(ring_bytes) {}

  std::mutex m;
  std::condition_variable cv;
  state::JobRecord rec;
  RingBuffer ring;
  std::shared_ptr<exec::Host> host;
  std::string note;            // why the status is what it is (unreachable host, ...)
  std::uint64_t last_used = 0; // JobManager::m_use_clock when last looked up (guarded by m_mutex)
  bool complete = false;       // durable: the end was seen and all output after it was read

  // Reading. rec.cursor is the saved read position; read_pos is where the next read starts: ahead
  // of rec.cursor while an answer's delivery is unconfirmed (inflight), see ReadReceipt.
  std::uint64_t read_pos = 0;
  int inflight = 0;      // answers handed out, neither committed nor given back
  int readers = 0;       // output() / peek() calls using the ring now
  bool released = false; // the ring gave its memory back; ensure_loaded() refills it from the file

  // Durable jobs: one refresh at a time, so a chunk is never appended twice.
  std::mutex refresh_mutex;

  // Attached jobs (foreground runs in this process).
  bool attached = false;
  bool done = false;      // the runner returned
  bool persisted = false; // recorded in the store (promoted or truncated)
  std::stop_source stop;
  int spill_fd = -1;
  std::uint64_t spilled = 0; // bytes written to the spill file
  bool spill_capped = false;
  bool spill_failed = false; // a write to the spill file failed (disk full): it is incomplete
  int spill_error = 0;
  std::uint64_t spill_lost = 0; // bytes not written to the spill file after it failed
  std::string last_line;
  std::unique_ptr<StreamCapture> out, err;
  bool timed_out = false;
  std::string tree_note; // processes left behind and ended, or what may remain of the tree
  bool tree_verified = true;
  std::optional<exec::HostError> error; // the runner could not run the command

  ~Job() {
    if (spill_fd >= 0) {
      ::close(spill_fd);
    }
  }

  exec::JobRef ref() const { return exec::JobRef{rec.id, rec.job_dir, rec.pid}; }
  bool running() const { return rec.status == "running"; }
  // Ended as far as memory is concerned: a durable job's end and final output were seen, a
  // foreground one's runner returned.
  bool ended() const { return rec.durable ? complete : (!attached || done); }
};

// "disk full" for ENOSPC, else strerror(err): how the notes about lost output start.
std::string write_error_text(int err);

// The last bytes of a local file from `min_from` on, at most `max_bytes` of them; sets `from` to
// the offset of the first byte returned. nullopt when the file cannot be opened (errno is set).
std::optional<std::string> read_file_tail(const std::string& path, std::uint64_t min_from, std::uint64_t max_bytes,
                                          std::uint64_t& from);

} // namespace smcp::tools
