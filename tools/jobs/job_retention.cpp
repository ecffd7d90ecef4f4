// What the job manager lets go of: rings of jobs nobody reads (refilled from the output's file
// when read again), ended jobs kept in memory beyond a few recent ones, and ended jobs past the
// retention period with their files.
#include "tools/jobs/job.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace smcp::tools {

namespace {

// Ended jobs kept in memory beyond the ones in use (their rings are released; records are small).
constexpr std::size_t k_cached_finished_jobs = 16;

} // namespace

std::size_t JobManager::cached_jobs() {
  std::lock_guard lock(m_mutex);
  return m_jobs.size();
}

std::size_t JobManager::ring_memory() {
  std::lock_guard lock(m_mutex);
  std::size_t total = 0;
  for (const auto& [id, job] : m_jobs) {
    std::lock_guard job_lock(job->m);
    total += job->ring.memory();
  }
  return total;
}

void JobManager::ensure_loaded(Job& job) {
  std::lock_guard refresh_lock(job.refresh_mutex); // a refresh in flight must not skip what we reload
  std::lock_guard lock(job.m);
  if (!job.released) {
    return;
  }
  job.released = false;
  job.ring.reset(job.read_pos);
  if (job.rec.durable) {
    job.complete = false; // refresh() reads the output again from the host, from read_pos on
    return;
  }
  if (job.rec.spill_path.empty()) {
    return; // nothing was kept beyond what was read
  }
  std::uint64_t from = 0;
  auto tail = read_file_tail(job.rec.spill_path, job.read_pos, m_options.ring_bytes, from);
  if (!tail) {
    job.note = "the spill file " + job.rec.spill_path + " is gone: " + std::strerror(errno);
    return;
  }
  if (!tail->empty()) {
    job.ring.reset(from);
    job.ring.append(*tail);
  }
}

bool JobManager::release_ring_locked(Job& job) {
  if (job.released) {
    return true;
  }
  if (job.readers > 0 || (job.attached && !job.done)) {
    return false;
  }
  bool reloadable = job.rec.durable; // the host keeps the whole output in the job's directory
  if (!job.rec.durable) {
    // A kept foreground command: its spill file has everything unless it was capped or failed.
    reloadable = job.read_pos >= job.ring.end() ||
                 (!job.rec.spill_path.empty() && job.spill_fd < 0 && !job.spill_capped && !job.spill_failed);
  }
  if (!reloadable) {
    return false;
  }
  job.ring.release();
  job.released = true;
  return true;
}

void JobManager::release_idle_rings() {
  // Ended jobs nobody is reading give their rings back at once (their output is in a file); the
  // rings of running jobs too, least recently used first, while all rings together exceed the
  // budget. A released ring is refilled from the file by the next read.
  std::lock_guard lock(m_mutex);
  std::vector<std::pair<std::uint64_t, Job*>> running;
  std::size_t total = 0;
  for (const auto& [id, job] : m_jobs) {
    std::lock_guard job_lock(job->m);
    if (job->ended() && job->rec.status != "running" && release_ring_locked(*job)) {
      continue;
    }
    total += job->ring.memory();
    if (job->rec.durable && job->rec.status == "running" && job->ring.memory() > 0) {
      running.emplace_back(job->last_used, job.get());
    }
  }
  const std::size_t budget = m_options.ring_budget ? m_options.ring_budget : 32 * m_options.ring_bytes;
  std::sort(running.begin(), running.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [used, job] : running) {
    if (total <= budget) {
      break;
    }
    std::lock_guard job_lock(job->m);
    const std::size_t held = job->ring.memory();
    if (release_ring_locked(*job)) {
      total -= held;
    }
  }
  evict_finished_locked();
}

void JobManager::evict_finished_locked() {
  // Ended jobs are kept in memory only while recently used: their record is in the store and
  // their output on disk, so find() reloads them (only as much as the ring holds) when read again.
  std::vector<std::pair<std::uint64_t, std::string>> finished;
  for (const auto& [id, job] : m_jobs) {
    std::lock_guard job_lock(job->m);
    // A job being read, or whose last answer is not yet confirmed, keeps its place: a copy loaded
    // afresh from the store would start again from the saved read position.
    const bool busy = job->readers > 0 || job->inflight > 0;
    if (job->ended() && !busy && job->rec.status != "running" && job->rec.status != "unreachable") {
      finished.emplace_back(job->last_used, id);
    }
  }
  if (finished.size() <= k_cached_finished_jobs) {
    return;
  }
  std::sort(finished.begin(), finished.end());
  for (std::size_t i = 0; i + k_cached_finished_jobs < finished.size(); ++i) {
    m_jobs.erase(finished[i].second);
  }
}

std::size_t JobManager::expire() {
  if (m_options.retention.count() <= 0) {
    return 0;
  }
  const auto cutoff = now_ms() - std::chrono::duration_cast<std::chrono::milliseconds>(m_options.retention).count();
  std::size_t removed = 0;
  for (const auto& rec : m_store.list_jobs(1000000)) {
    const bool live = rec.status == "running" || (rec.status == "unreachable" && rec.durable);
    if (live || rec.ended_at_ms == 0 || rec.ended_at_ms > cutoff) {
      continue;
    }
    try {
      remove(rec.id);
      ++removed;
    } catch (const std::exception& e) {
      spdlog::debug("retention: cannot remove job {} yet: {}", rec.id, e.what());
    }
  }
  if (removed) {
    spdlog::info("retention: removed {} job(s) that ended more than {} h ago", removed, m_options.retention.count());
  }
  return removed;
}

} // namespace smcp::tools
