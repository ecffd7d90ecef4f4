// Foreground commands: the runner thread and the sink that captures a command's output (head and
// tail per stream, the ring, the spill file), progress and heartbeats while the caller waits,
// promotion to a background job when the command outlives its budget, and how it ended.
#include "tools/jobs/job.h"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <thread>
#include <unistd.h>

namespace smcp::tools {

namespace {

std::string status_of(const exec::ExitInfo& info) {
  return info.signal ? "killed" : "exited";
}

} // namespace

// Feeds a foreground command's output into its job: per-stream captures for the answer, the
// ring for later reads, and the spill file once the output outgrows the answer.
class JobManager::ForegroundSink final : public exec::OutputSink {
public:
  ForegroundSink(Job& job, const JobOptions& options) : m_job(job), m_options(options) {}

  void on_output(exec::Stream stream, std::string_view data) override {
    std::lock_guard lock(m_job.m);
    (stream == exec::Stream::out ? m_job.out : m_job.err)->add(data);
    // Spill before the ring can drop anything: the ring still holds everything up to here.
    if (m_job.spill_fd < 0 && m_job.ring.end() + data.size() > m_options.max_output_chars) {
      open_spill_locked(m_job, m_options);
    }
    if (m_job.spill_fd >= 0) {
      spill_locked(m_job, m_options, data);
    }
    m_job.ring.append(data);
    // The newest complete line, for progress notifications.
    std::string_view d = data;
    if (auto nl = d.find_last_of('\n'); nl != std::string_view::npos) {
      std::string_view before = d.substr(0, nl);
      auto prev = before.find_last_of('\n');
      std::string_view line = prev == std::string_view::npos ? before : before.substr(prev + 1);
      if (!line.empty()) {
        m_job.last_line.assign(line.substr(0, 500));
      }
    }
    m_job.cv.notify_all();
  }

  // Called with job.m held: writes what the ring has so far, then follows the stream.
  static void open_spill_locked(Job& job, const JobOptions& options) {
    if (job.spill_fd >= 0 || !job.rec.spill_path.empty() || job.spill_failed || options.spill_dir.empty()) {
      return; // already spilling (or spilled and closed)
    }
    std::error_code ec;
    std::filesystem::create_directories(options.spill_dir, ec);
    std::string path = options.spill_dir + "/" + job.rec.id + ".out";
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
      const int err = errno;
      spdlog::warn("cannot create spill file {}: {}", path, std::strerror(err));
      job.spill_failed = true;
      job.spill_error = err;
      job.note = write_error_text(err) + ": cannot create " + path + " to keep the full output (`df " +
                 options.spill_dir + "`)";
      return;
    }
    job.spill_fd = fd;
    job.rec.spill_path = path;
    spill_locked(job, options, job.ring.read(job.ring.start(), job.ring.end()));
  }

  // Appends to the spill file up to the cap; past it, a marker once, then nothing. A failed write
  // (disk full) ends the spill: the note says where and how much was not kept.
  static void spill_locked(Job& job, const JobOptions& options, std::string_view data) {
    const std::uint64_t room = job.spilled < options.spill_cap ? options.spill_cap - job.spilled : 0;
    const auto keep = static_cast<std::size_t>(std::min<std::uint64_t>(room, data.size()));
    if (job.spill_failed) {
      job.spill_lost += keep;
    } else if (int err = write_all(job.spill_fd, data.substr(0, keep)); err != 0) {
      job.spill_failed = true;
      job.spill_error = err;
      job.spill_lost += keep;
    } else {
      job.spilled += keep;
    }
    if (job.spill_failed) {
      job.note = write_error_text(job.spill_error) + ": the full output file " + job.rec.spill_path + " stops after " +
                 std::to_string(job.spilled) + " bytes; " + std::to_string(job.spill_lost) +
                 " more bytes could not be kept there (free at least that "
                 "much on its filesystem, `df " +
                 options.spill_dir + "`)";
      return;
    }
    if (keep < data.size() && !job.spill_capped) {
      job.spill_capped = true;
      write_all(job.spill_fd, "\n[sandbox-mcp: output cap of " + std::to_string(options.spill_cap) +
                                  " bytes reached; further output is not kept]\n");
    }
  }

  // 0, or the errno of the write that failed.
  static int write_all(int fd, std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::write(fd, data.data(), data.size());
      if (n < 0) {
        if (errno == EINTR) {
          continue;
        }
        return errno;
      }
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return 0;
  }

private:
  Job& m_job;
  const JobOptions& m_options;
};

// The runner owns a reference to the job; it outlives run() when the command is promoted.
void JobManager::launch_runner(std::shared_ptr<Job> job, std::shared_ptr<exec::Host> host, exec::CommandSpec spec) {
  {
    std::lock_guard lock(m_mutex);
    ++m_runners;
  }
  std::thread([this, job = std::move(job), host = std::move(host), spec = std::move(spec)] {
    ForegroundSink sink(*job, m_options);
    exec::ExitInfo info;
    std::optional<exec::HostError> error;
    try {
      info = host->run(spec, sink, job->stop.get_token());
    } catch (const exec::HostError& e) {
      error = e;
    } catch (const std::exception& e) {
      error = exec::HostError(exec::HostError::Kind::io, e.what());
    }
    finish_and_notify(*job, info, error);
    // Last use of the manager: notify with the lock held, so ~JobManager cannot finish before it.
    std::lock_guard lock(m_mutex);
    --m_runners;
    m_runners_cv.notify_all();
  }).detach();
}

ForegroundResult JobManager::run(const std::string& host_name, const exec::CommandSpec& spec,
                                 const std::string& description,
                                 const std::function<void(const std::string&)>& on_progress, std::stop_token stop) {
  auto host = m_hosts.get(host_name);
  auto job = new_job(host, spec, description);
  job->attached = true;
  job->out = std::make_unique<StreamCapture>(m_options.max_output_chars);
  job->err = std::make_unique<StreamCapture>(m_options.max_output_chars);
  const auto started = Clock::now();
  audit({job->rec.started_at_ms, job->rec.host, "run", spec.command, job->rec.id});

  launch_runner(job, host, spec);

  std::stop_callback on_stop(stop, [job] { job->stop.request_stop(); });
  const auto promote_at =
      m_options.promote_after.count() > 0 ? started + m_options.promote_after : Clock::time_point::max();
  std::string last_reported;
  auto last_report_at = started;
  std::unique_lock lock(job->m);
  while (!job->done) {
    auto next = std::min(promote_at, Clock::now() + m_options.progress_interval);
    job->cv.wait_until(lock, next);
    if (job->done) {
      break;
    }
    const auto now = Clock::now();
    if (on_progress && now - started >= m_options.first_progress_after &&
        (job->last_line != last_reported || now - last_report_at >= m_options.heartbeat_interval)) {
      // The newest line, or a heartbeat so clients that reset their timeout on progress keep waiting.
      std::string message =
          job->last_line != last_reported
              ? job->last_line
              : "still running after " +
                    std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now - started).count()) + " s";
      last_reported = job->last_line;
      last_report_at = now;
      lock.unlock();
      on_progress(message);
      lock.lock();
    }
    if (now >= promote_at && !stop.stop_requested()) {
      break; // promote
    }
  }
  // A command the host could not run at all surfaces as the host's error.
  if (job->done && job->error) {
    // A fresh copy: exception objects made on the runner's thread share their message buffer.
    throw exec::HostError(job->error->kind(), std::string(job->error->what()));
  }

  ForegroundResult r;
  r.host = job->rec.host;
  r.duration_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count();
  r.stdout_bytes = job->out->total();
  r.stderr_bytes = job->err->total();
  r.truncated = job->out->truncated() || job->err->truncated();
  r.running = !job->done;
  if (r.running || r.truncated) {
    ForegroundSink::open_spill_locked(*job, m_options);
    r.bash_id = job->rec.id;
    r.spill_path = job->rec.spill_path;
    job->persisted = true;
    persist(*job);
  }
  std::string where = r.spill_path.empty()
                          ? "the output was too large to keep"
                          : "full output: remote_bash_output {bash_id: \"" + r.bash_id +
                                "\"} or remote_file_read {file_path: \"" + r.spill_path + "\", host: \"local\"}";
  r.stdout_text = job->out->text(where);
  r.stderr_text = job->err->text(where);
  if (!r.running) {
    r.exit_code = job->rec.exit_code;
    r.signal = job->rec.signal;
    r.timed_out = job->timed_out;
    r.tree_note = job->tree_note;
    r.tree_verified = job->tree_verified;
  }
  r.status = r.running ? "running" : job->rec.status;
  if (job->spill_failed) {
    r.note = job->note;
  }
  lock.unlock();
  if (job->persisted) {
    cache(job);
  }
  return r;
}

void JobManager::finish_attached(Job& job, const exec::ExitInfo& info, const std::optional<exec::HostError>& error) {
  std::lock_guard lock(job.m);
  job.done = true;
  job.rec.ended_at_ms = now_ms();
  if (error) {
    job.error = error;
    job.rec.status = error->kind() == exec::HostError::Kind::unreachable ? "unreachable" : "exited";
    job.note = error->what();
  } else {
    job.rec.status = status_of(info);
    job.rec.exit_code = info.exit_code;
    job.rec.signal = info.signal;
    job.timed_out = info.timed_out;
    job.tree_verified = info.tree_verified;
    if (!info.tree_verified) {
      job.tree_note = info.tree_note.empty() ? "some processes of the command may still be running" : info.tree_note;
    } else if (info.leftovers > 0) {
      job.tree_note = "the command left " + std::to_string(info.leftovers) +
                      (info.leftovers == 1 ? " process" : " processes") + " running in the background (" +
                      info.leftover_names + "); " + (info.leftovers == 1 ? "it was" : "they were") +
                      " ended when the command returned. A foreground command ends with its whole process tree: "
                      "start processes that must keep running with run_in_background";
    }
    const std::string ended = info.tree_verified ? "the process tree was ended" : job.tree_note;
    if (info.timed_out) {
      job.note = "timed out: " + ended;
    } else if (info.cancelled) {
      job.note = "cancelled: " + ended;
    } else if (!job.tree_note.empty()) {
      job.note = job.tree_note;
    }
  }
  if (job.spill_fd >= 0) {
    ::close(job.spill_fd);
    job.spill_fd = -1;
  }
  if (job.persisted) {
    persist(job);
  }
  std::string detail = job.rec.status;
  if (info.exit_code) {
    detail += " " + std::to_string(*info.exit_code);
  }
  if (info.signal) {
    detail += " " + exec::signal_name(*info.signal);
  }
  if (error) {
    detail += std::string(" ") + error->what();
  }
  audit({job.rec.ended_at_ms, job.rec.host, "end", job.rec.id, detail});
  job.cv.notify_all();
}

void JobManager::finish_and_notify(Job& job, const exec::ExitInfo& info, const std::optional<exec::HostError>& error) {
  finish_attached(job, info, error);
  bool persisted;
  std::string id;
  {
    std::lock_guard lock(job.m);
    persisted = job.persisted;
    id = job.rec.id;
  }
  if (persisted) {
    changed_job(id);
  }
}

} // namespace smcp::tools
