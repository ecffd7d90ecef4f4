#include "tests/support/fake_host.h"

#include <csignal>

namespace smcp::testing {

void FakeHost::release() {
  {
    std::lock_guard lock(m_mutex);
    m_released = true;
  }
  m_cv.notify_all();
}

void FakeHost::job_append(const std::string& id, const std::string& data) {
  std::lock_guard lock(m_mutex);
  m_jobs[id].output += data;
}

void FakeHost::job_finish(const std::string& id, exec::JobState state) {
  std::lock_guard lock(m_mutex);
  m_jobs[id].state = state;
}

std::string FakeHost::job_output(const std::string& id) {
  std::lock_guard lock(m_mutex);
  return m_jobs[id].output;
}

void FakeHost::set_unreachable(bool unreachable) {
  std::lock_guard lock(m_mutex);
  m_unreachable = unreachable;
}

void FakeHost::hang_reads(bool hang) {
  {
    std::lock_guard lock(m_mutex);
    m_hang_reads = hang;
  }
  m_cv.notify_all();
}

void FakeHost::throw_if_unreachable() const {
  if (m_unreachable) {
    throw exec::HostError(exec::HostError::Kind::unreachable, "fake host " + m_name + " is unreachable");
  }
}

exec::ExitInfo FakeHost::run(const exec::CommandSpec& spec, exec::OutputSink& sink, std::stop_token stop) {
  {
    std::lock_guard lock(m_mutex);
    throw_if_unreachable();
    runs.push_back(spec);
  }
  for (const auto& c : run_output) {
    sink.on_output(c.stream, c.data);
  }
  if (block_until_released) {
    std::unique_lock lock(m_mutex);
    for (int tick = 1; chatter.count() > 0 && !m_released && !stop.stop_requested(); ++tick) {
      lock.unlock();
      sink.on_output(exec::Stream::out, "tick " + std::to_string(tick) + "\n");
      lock.lock();
      m_cv.wait_for(lock, stop, chatter, [&] { return m_released; });
    }
    m_cv.wait(lock, stop, [&] { return m_released; });
    if (stop.stop_requested() && !m_released) {
      exec::ExitInfo killed;
      killed.signal = SIGTERM;
      killed.cancelled = true;
      return killed;
    }
  }
  return run_result;
}

exec::JobRef FakeHost::start_job(const exec::CommandSpec&, const std::string& job_id, const std::string& job_dir) {
  std::lock_guard lock(m_mutex);
  throw_if_unreachable();
  started_jobs.push_back(job_id);
  m_jobs[job_id];
  return exec::JobRef{job_id, job_dir, 4242};
}

exec::JobChunk FakeHost::read_job(const exec::JobRef& job, std::uint64_t offset, std::size_t max_bytes) {
  std::unique_lock lock(m_mutex);
  m_cv.wait(lock, [&] { return !m_hang_reads; });
  ++read_job_calls;
  throw_if_unreachable();
  auto it = m_jobs.find(job.id);
  if (it == m_jobs.end()) {
    throw exec::HostError(exec::HostError::Kind::not_found, "no job " + job.id);
  }
  exec::JobChunk chunk;
  chunk.state = it->second.state;
  const std::string& out = it->second.output;
  chunk.size = out.size();
  std::uint64_t from = std::max<std::uint64_t>(offset, out.size() > max_bytes ? out.size() - max_bytes : 0);
  chunk.offset = std::min<std::uint64_t>(from, out.size());
  chunk.data = out.substr(static_cast<std::size_t>(chunk.offset));
  return chunk;
}

bool FakeHost::kill_job(const exec::JobRef& job, int signal, std::chrono::milliseconds, std::string*) {
  std::lock_guard lock(m_mutex);
  throw_if_unreachable();
  kills.emplace_back(job.id, signal);
  auto& j = m_jobs[job.id];
  if (j.state.phase == exec::JobState::Phase::running) {
    j.state.phase = exec::JobState::Phase::signaled;
    j.state.signal = signal;
  }
  return true;
}

void FakeHost::remove_job(const exec::JobRef& job) {
  std::lock_guard lock(m_mutex);
  m_jobs.erase(job.id);
}

exec::FileWindow FakeHost::read_file(const exec::FileReadRequest&) {
  std::lock_guard lock(m_mutex);
  throw_if_unreachable();
  return file_window;
}

} // namespace smcp::testing
