// Reading a job's output: waiting reads with line filters and `until`, read positions saved once
// an answer was delivered (ReadReceipt), and peeks at the newest output that move no position.
#include "tools/jobs/job.h"

#include <spdlog/spdlog.h>

namespace smcp::tools {

namespace {

// How long a read waits for the previous answer of the same job to be confirmed sent.
constexpr std::chrono::seconds k_unconfirmed_answer_wait{10};

// The lines of `text` that `filter` matches; counts the others in `skipped`.
std::string filter_lines(const std::string& text, const Regex& filter, std::uint64_t& skipped) {
  std::string out;
  for_each_line(text, [&](std::string_view line) {
    if (filter.search(line)) {
      out.append(line);
      out.push_back('\n');
    } else {
      ++skipped;
    }
  });
  if (!text.empty() && text.back() != '\n' && !out.empty() && out.back() == '\n' && filter.search(last_line(text))) {
    out.pop_back(); // the job ended without a final newline: keep the text as written
  }
  return out;
}

// Where the whole output of a job can be read, for the marker of a cut answer.
std::string full_output_location(const state::JobRecord& rec) {
  if (rec.durable) {
    return "full output: remote_file_read {file_path: \"" + rec.job_dir + "/output\", host: \"" + rec.host + "\"}";
  }
  return rec.spill_path.empty()
             ? std::string("not kept")
             : "full output: remote_file_read {file_path: \"" + rec.spill_path + "\", host: \"local\"}";
}

} // namespace

// Marks a job as being read: its ring is not released meanwhile, and is released afterwards when
// the job has ended (its output is in a file; the next read reloads it).
class JobManager::Reading {
public:
  Reading(JobManager& manager, const std::shared_ptr<Job>& job) : m_manager(manager), m_job(job) {
    std::lock_guard lock(m_job->m);
    ++m_job->readers;
  }
  ~Reading() {
    {
      std::lock_guard lock(m_job->m);
      --m_job->readers;
    }
    m_manager.release_idle_rings();
  }
  Reading(const Reading&) = delete;
  Reading& operator=(const Reading&) = delete;

private:
  JobManager& m_manager;
  std::shared_ptr<Job> m_job;
};

class JobManager::Receipt final : public ReadReceipt {
public:
  Receipt(JobManager& manager, std::shared_ptr<Job> job, std::uint64_t from, std::uint64_t to)
      : m_manager(manager), m_job(std::move(job)), m_from(from), m_to(to) {}
  ~Receipt() override {
    if (m_done) {
      return;
    }
    // Never delivered: the next read starts at this answer's window again (unless a later read
    // already moved on, which cannot happen while this one is in flight).
    std::lock_guard lock(m_job->m);
    if (m_job->read_pos == m_to) {
      m_job->read_pos = m_from;
    }
    --m_job->inflight;
    m_job->cv.notify_all();
  }
  void commit() override {
    if (m_done) {
      return;
    }
    m_done = true;
    m_manager.commit_read(*m_job, m_to); // saved before the next read of the job may start
    std::lock_guard lock(m_job->m);
    --m_job->inflight;
    m_job->cv.notify_all();
  }

private:
  JobManager& m_manager;
  std::shared_ptr<Job> m_job;
  std::uint64_t m_from, m_to;
  bool m_done = false;
};

void JobManager::commit_read(Job& job, std::uint64_t to) {
  bool persisted;
  std::string id;
  {
    std::lock_guard lock(job.m);
    job.rec.cursor = std::max(job.rec.cursor, to);
    persisted = job.rec.durable || job.persisted || !job.attached;
    id = job.rec.id;
  }
  if (persisted) {
    try {
      m_store.set_job_cursor(id, to);
    } catch (const std::exception& e) {
      // The answer was delivered; only a restart would show this window again.
      spdlog::warn("cannot save the read position of {}: {}", id, e.what());
    }
  }
}

JobPeek JobManager::peek(const std::string& id, std::size_t max_bytes) {
  auto job = find(id);
  Reading reading(*this, job);
  refresh(*job);
  std::unique_lock lock(job->m);
  JobPeek p;
  p.job = job->rec;
  p.total_bytes = job->ring.end();
  const std::uint64_t want = p.total_bytes > max_bytes ? p.total_bytes - max_bytes : 0;
  if (!job->released && job->ring.start() <= want) {
    p.from = want;
    p.tail = job->ring.read(p.from, p.total_bytes);
    return p;
  }
  // The ring does not hold the tail (released, or reloaded from the read position): the file does.
  if (job->rec.durable) {
    auto host = job->host;
    auto ref = job->ref();
    lock.unlock();
    try {
      exec::JobChunk chunk = host_for(host, p.job.host)->read_job(ref, 0, max_bytes);
      p.from = chunk.offset;
      p.total_bytes = chunk.size;
      p.tail = std::move(chunk.data);
    } catch (const std::exception& e) {
      spdlog::debug("job {}: cannot read the tail of its output: {}", id, e.what());
    }
    return p;
  }
  if (!job->rec.spill_path.empty() && !job->spill_failed) {
    std::uint64_t from = 0;
    if (auto tail = read_file_tail(job->rec.spill_path, 0, max_bytes, from)) {
      p.from = from;
      p.tail = std::move(*tail);
      return p;
    }
  }
  p.from = std::max(job->ring.start(), want);
  p.tail = job->ring.read(p.from, p.total_bytes);
  return p;
}

OutputAnswer JobManager::output(const OutputQuery& q, std::stop_token stop) {
  auto job = find(q.bash_id);
  Reading reading(*this, job);
  ensure_loaded(*job);
  const auto deadline = Clock::now() + q.wait;
  std::uint64_t scan = 0;    // stream offset up to which lines were checked for the wait condition
  bool matched = false;      // `until` matched a line
  bool filtered_new = false; // a line passed the filter
  auto last_heartbeat = Clock::now();
  std::stop_callback wake_on_stop(stop, [&job] { job->cv.notify_all(); });
  for (;;) {
    refresh(*job);
    std::unique_lock lock(job->m);
    // The previous answer's delivery is not confirmed yet: wait for it (it is being written), so
    // this read starts where that one is known to have ended.
    job->cv.wait_for(lock, k_unconfirmed_answer_wait, [&] { return job->inflight == 0 || stop.stop_requested(); });
    const bool running = job->running();
    const std::uint64_t begin = std::max(job->read_pos, job->ring.start());
    std::uint64_t end = job->ring.end();
    std::string text = job->ring.read(begin, end);
    // While the job runs, a filtered read holds back a partial last line until it is complete.
    if (running && (q.filter || q.until)) {
      auto nl = text.find_last_of('\n');
      std::size_t keep = nl == std::string::npos ? 0 : nl + 1;
      end = begin + keep;
      text.resize(keep);
    }
    // Check the lines not checked before for the wait condition.
    std::size_t from = scan > begin ? static_cast<std::size_t>(scan - begin) : 0;
    for_each_line(std::string_view(text).substr(std::min(from, text.size())), [&](std::string_view line) {
      if (q.until) {
        matched = matched || q.until->search(line);
      } else if (q.filter) {
        filtered_new = filtered_new || q.filter->search(line);
      }
    });
    scan = end;
    const bool has_new = q.filter ? filtered_new : !text.empty();
    bool ready = q.wait.count() == 0 || !running || Clock::now() >= deadline || stop.stop_requested() ||
                 (q.until ? matched : has_new);
    if (ready) {
      OutputAnswer a;
      a.dropped_bytes = job->ring.start() > job->read_pos ? job->ring.start() - job->read_pos : 0;
      a.matched = matched;
      std::string out = q.filter ? filter_lines(text, *q.filter, a.skipped_lines) : std::move(text);
      if (out.size() > m_options.max_output_chars) {
        out = middle_cut(out, m_options.max_output_chars, full_output_location(job->rec));
        a.truncated = true;
      }
      a.output = std::move(out);
      const std::uint64_t window_from = job->read_pos;
      job->read_pos = std::max(job->read_pos, end);
      a.cursor = job->read_pos;
      a.total_bytes = job->ring.end();
      a.job = job->rec;
      a.note = job->note;
      if (q.defer_commit) {
        ++job->inflight;
        a.receipt = std::make_shared<Receipt>(*this, job, window_from, a.cursor);
      }
      lock.unlock();
      if (!q.defer_commit) {
        commit_read(*job, a.cursor);
      }
      return a;
    }
    if (q.on_progress && Clock::now() - last_heartbeat >= m_options.heartbeat_interval) {
      last_heartbeat = Clock::now();
      std::string message = "waiting on " + q.bash_id + " (" + job->rec.status + ", " +
                            std::to_string(job->ring.end()) + " bytes written so far)";
      lock.unlock();
      q.on_progress(message);
      lock.lock();
    }
    auto wake = std::min(deadline, Clock::now() + m_options.poll_interval);
    job->cv.wait_until(lock, wake);
  }
}

} // namespace smcp::tools
