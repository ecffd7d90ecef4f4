// A durable job's state on its host: refresh() pulls new output and the state (running, ended,
// vanished, unreachable) into the job; kill() signals a job's whole process tree and confirms its end.
#include "tools/jobs/job.h"

#include <spdlog/spdlog.h>

#include <thread>

namespace smcp::tools {

void JobManager::refresh(Job& job) {
  {
    std::lock_guard lock(job.m);
    if (!job.rec.durable || job.attached) {
      return;
    }
    if (job.complete) {
      return; // the job ended and its final output was read
    }
  }
  std::lock_guard refresh_lock(job.refresh_mutex);
  exec::JobRef ref;
  std::uint64_t from;
  std::size_t max_bytes;
  std::shared_ptr<exec::Host> host;
  {
    std::lock_guard lock(job.m);
    ref = job.ref();
    from = job.ring.end();
    host = job.host;
    max_bytes = job.released ? 0 : m_options.ring_bytes; // released: only the state and the size
  }
  exec::JobChunk chunk;
  try {
    host = host_for(host, job.rec.host);
    chunk = host->read_job(ref, from, max_bytes);
  } catch (const std::exception& e) {
    std::lock_guard lock(job.m);
    job.host = host;
    if (job.running() || job.rec.status == "unreachable") {
      if (job.rec.status != "unreachable") {
        spdlog::warn("job {}: host {} unreachable: {}", job.rec.id, job.rec.host, e.what());
      }
      job.rec.status = "unreachable";
      job.note = std::string("cannot reach host ") + job.rec.host + ": " + e.what() +
                 " (the job may still be running there; output so far is shown)";
    } else {
      job.note = std::string("cannot read the job's output on ") + job.rec.host + ": " + e.what();
    }
    return;
  }
  std::unique_lock lock(job.m);
  job.host = host;
  const std::uint64_t end_before = job.ring.end();
  const std::string status_before = job.rec.status;
  if (job.released) {
    job.ring.skip_to(chunk.offset + chunk.data.size()); // released meanwhile: keep only the position
  }
  if (chunk.offset > job.ring.end()) {
    job.ring.skip_to(chunk.offset);
  }
  if (chunk.offset == job.ring.end()) {
    job.ring.append(chunk.data);
  }
  const bool was_running = job.running() || job.rec.status == "unreachable";
  switch (chunk.state.phase) {
  case exec::JobState::Phase::running:
    job.rec.status = "running";
    job.note.clear();
    break;
  case exec::JobState::Phase::exited:
    job.rec.status = "exited";
    job.rec.exit_code = chunk.state.exit_code;
    break;
  case exec::JobState::Phase::signaled:
    job.rec.status = "killed";
    job.rec.signal = chunk.state.signal;
    break;
  case exec::JobState::Phase::vanished:
    job.rec.status = "killed";
    if (!chunk.state.note.empty()) {
      job.note = chunk.state.note;
    } else if (job.note.empty() || was_running) {
      job.note = "the job's processes are gone and it left no exit status (the host may have rebooted, the job was "
                 "killed from outside, or its disk was full when it ended: check `df " +
                 job.rec.job_dir + "`)";
    }
    break;
  }
  if (chunk.state.output_errno != 0) {
    const int err = chunk.state.output_errno;
    job.note = write_error_text(err) + ": the job's output file " + job.rec.job_dir + "/output on " + job.rec.host +
               " stops after " + std::to_string(chunk.state.output_written) + " bytes; " +
               std::to_string(chunk.state.output_lost) +
               " more bytes of output could not be written (free at least that much on its filesystem, `df " +
               job.rec.job_dir + "`). The exit status is the job's own.";
  }
  if (!job.running()) {
    job.complete = true;
    if (was_running) {
      job.rec.ended_at_ms = now_ms();
      persist(job);
    }
  }
  job.cv.notify_all();
  const bool changed = job.ring.end() != end_before || job.rec.status != status_before;
  const std::string id = job.rec.id;
  lock.unlock();
  if (changed) {
    changed_job(id);
  }
}

KillAnswer JobManager::kill(const std::string& id, int signal) {
  auto job = find(id);
  refresh(*job);
  KillAnswer a;
  std::unique_lock lock(job->m);
  if (!job->running() && job->rec.durable && job->rec.status != "unreachable") {
    // Ended, but processes may have outlived it (a supervisor killed from outside, an earlier
    // server's job): the host checks, and ends any it finds.
    auto host = job->host;
    auto ref = job->ref();
    lock.unlock();
    host = host_for(host, job->rec.host);
    try {
      std::string detail;
      a.verified = host->kill_job(ref, signal, m_options.kill_grace, &detail);
      a.note = a.verified ? "the job had already ended; no process of it remains"
                          : "the job had already ended; " +
                                (detail.empty() ? std::string("some of its processes could not be ended") : detail);
    } catch (const exec::HostError& e) {
      a.verified = false;
      a.note =
          std::string("the job had already ended; its host could not check for processes left behind: ") + e.what();
    }
    lock.lock();
    a.job = job->rec;
    return a;
  }
  if (!job->running()) {
    a.job = job->rec;
    a.verified = job->rec.status != "unreachable" && job->done && job->tree_verified;
    if (job->rec.status != "unreachable") {
      a.note = a.verified ? "the job had already ended; nothing was signalled"
                          : "the job had already ended; " +
                                (job->tree_note.empty() ? std::string("its end was not verified") : job->tree_note);
    } else if (!job->rec.durable) {
      a.note = "this command was attached to an earlier run of the server that ended without stopping it; it "
               "cannot be signalled from here (find it with `ps` through remote_bash)";
    } else {
      a.note = "the job's host cannot be reached; nothing was signalled";
    }
    return a;
  }
  audit({now_ms(), job->rec.host, "kill", id, exec::signal_name(signal)});
  if (job->attached) {
    // A foreground command promoted to the background: its runner ends the process tree.
    job->stop.request_stop();
    a.signalled = true;
    const bool ended =
        job->cv.wait_for(lock, m_options.kill_grace + std::chrono::seconds(5), [&] { return job->done; });
    a.verified = ended && job->tree_verified;
    a.job = job->rec;
    a.note = !ended                   ? "the command did not end in time"
             : a.verified             ? "ended (TERM, then KILL after the grace period)"
             : job->tree_note.empty() ? "the command ended, but the end of its whole process tree is not verified"
                                      : job->tree_note;
    return a;
  }
  auto host = job->host;
  auto ref = job->ref();
  lock.unlock();
  host = host_for(host, job->rec.host);
  a.signalled = true;
  std::string detail;
  a.verified = host->kill_job(ref, signal, m_options.kill_grace, &detail);
  // The job's supervisor records how it ended right after the job does.
  const auto until = Clock::now() + std::chrono::seconds(3);
  do {
    refresh(*job);
    lock.lock();
    bool ended = !job->running();
    lock.unlock();
    if (ended) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  } while (Clock::now() < until);
  lock.lock();
  a.job = job->rec;
  a.note = a.verified ? "no process of the job remains"
                      : (detail.empty() ? std::string("some processes of the job could not be ended") : detail);
  return a;
}

} // namespace smcp::tools
