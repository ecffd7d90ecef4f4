// The job manager's lifecycle and bookkeeping: jobs of an earlier run taken up again, ids, the
// store (records and audit), starting durable jobs, finding jobs in memory or the store, listing,
// removing, and the sweeper that follows running jobs and applies retention.
#include "tools/jobs/job.h"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <map>
#include <random>
#include <stdexcept>

namespace smcp::tools {

std::string write_error_text(int err) {
  return err == ENOSPC ? std::string("disk full") : std::string(std::strerror(err));
}

std::optional<std::string> read_file_tail(const std::string& path, std::uint64_t min_from, std::uint64_t max_bytes,
                                          std::uint64_t& from) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return std::nullopt;
  }
  off_t end = ::lseek(fd, 0, SEEK_END);
  const std::uint64_t size = end > 0 ? static_cast<std::uint64_t>(end) : 0;
  from = std::max<std::uint64_t>(min_from, size > max_bytes ? size - max_bytes : 0);
  std::string buf;
  if (from < size) {
    buf.resize(static_cast<std::size_t>(size - from));
    ssize_t n = ::pread(fd, buf.data(), buf.size(), static_cast<off_t>(from));
    buf.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  }
  ::close(fd);
  return buf;
}

JobManager::JobManager(HostRegistry& hosts, state::StateStore& store, JobOptions options)
    : m_hosts(hosts), m_store(store), m_options(std::move(options)) {
  m_options.ring_bytes = std::max(m_options.ring_bytes, 2 * m_options.max_output_chars + 4096);
  // Jobs from an earlier run of the server: durable ones are tracked again; foreground runs that
  // were attached to the old process cannot be reached any more.
  for (auto& rec : m_store.list_jobs(100000)) {
    if (rec.status != "running") {
      continue;
    }
    if (!rec.durable) {
      // A foreground command attached to an earlier run that ended without stopping it (a crash):
      // its process cannot be reached from here. It ends now as far as we are concerned, so it can
      // be removed and expires like any ended job.
      rec.status = "unreachable";
      rec.ended_at_ms = now_ms();
      try {
        m_store.put_job(rec);
      } catch (const std::exception& e) {
        // A full disk must not keep the server from serving: the record is fixed on a later start.
        spdlog::warn("cannot record that job {} is unreachable: {}", rec.id, e.what());
      }
      continue;
    }
    auto job = std::make_shared<Job>(m_options.ring_bytes);
    job->rec = rec;
    job->ring.skip_to(rec.cursor);
    job->read_pos = rec.cursor;
    m_jobs.emplace(rec.id, std::move(job));
  }
  m_sweeper = std::jthread([this](std::stop_token stop) { sweep_loop(stop); });
}

JobManager::~JobManager() {
  m_sweeper.request_stop();
  m_sweep_cv.notify_all();
  if (m_sweeper.joinable()) {
    m_sweeper.join();
  }
  std::vector<std::shared_ptr<Job>> attached;
  {
    std::lock_guard lock(m_mutex);
    for (auto& [id, job] : m_jobs) {
      if (job->attached) {
        attached.push_back(job);
      }
    }
  }
  for (auto& job : attached) {
    std::lock_guard lock(job->m);
    if (!job->done) {
      spdlog::info("ending foreground job {} as the server shuts down", job->rec.id);
      job->stop.request_stop();
    }
  }
  // Runner threads use this manager until their very last statement: wait for all of them.
  std::unique_lock lock(m_mutex);
  if (!m_runners_cv.wait_for(lock, m_options.kill_grace + std::chrono::seconds(10), [&] { return m_runners == 0; })) {
    spdlog::error("{} command runner(s) did not end; exiting anyway", m_runners);
  }
}

std::int64_t JobManager::now_ms() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string JobManager::new_id() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char k_hex[] = "0123456789abcdef";
  std::string id = "bash_";
  auto v = rng();
  for (int i = 0; i < 12; ++i) {
    id.push_back(k_hex[(v >> (i * 4)) & 0xF]);
  }
  return id;
}

std::shared_ptr<JobManager::Job> JobManager::new_job(const std::shared_ptr<exec::Host>& host,
                                                     const exec::CommandSpec& spec, const std::string& description) {
  auto job = std::make_shared<Job>(m_options.ring_bytes);
  job->host = host;
  job->rec.id = new_id();
  job->rec.host = host->name();
  job->rec.command = spec.command;
  job->rec.description = description;
  job->rec.cwd = spec.cwd;
  job->rec.status = "running";
  job->rec.started_at_ms = now_ms();
  return job;
}

std::shared_ptr<JobManager::Job> JobManager::cache(const std::shared_ptr<Job>& job) {
  std::lock_guard lock(m_mutex);
  auto [it, inserted] = m_jobs.emplace(job->rec.id, job);
  it->second->last_used = ++m_use_clock;
  evict_finished_locked();
  return it->second;
}

std::shared_ptr<exec::Host> JobManager::host_for(std::shared_ptr<exec::Host> known, const std::string& name) {
  return known ? std::move(known) : m_hosts.get(name);
}

void JobManager::persist(Job& job) {
  try {
    m_store.put_job(job.rec);
  } catch (const std::exception& e) {
    spdlog::error("cannot record job {}: {}", job.rec.id, e.what());
  }
}

void JobManager::audit(const state::AuditEvent& event) {
  try {
    m_store.audit(event);
  } catch (const std::exception& e) {
    // The command still runs (on a full disk it may be the one that frees space); the log keeps it.
    spdlog::warn("audit not recorded ({}): {} {} {} {}", e.what(), event.host, event.kind, event.command, event.detail);
  }
}

state::JobRecord JobManager::start(const std::string& host_name, const exec::CommandSpec& spec,
                                   const std::string& description) {
  auto host = m_hosts.get(host_name);
  auto job = new_job(host, spec, description);
  job->rec.durable = true;
  std::string dir = host->jobs_root() + "/" + job->rec.id;
  // Recorded before it starts: a job the store cannot track (a full disk) is refused, not orphaned.
  job->rec.job_dir = dir;
  m_store.put_job(job->rec);
  exec::JobRef ref;
  try {
    ref = host->start_job(spec, job->rec.id, dir);
  } catch (...) {
    try {
      m_store.delete_job(job->rec.id);
    } catch (const std::exception& e) {
      spdlog::warn("cannot forget job {} that did not start: {}", job->rec.id, e.what());
    }
    throw;
  }
  job->rec.job_dir = ref.dir;
  job->rec.pid = ref.pid;
  persist(*job);
  audit({job->rec.started_at_ms, job->rec.host, "job", spec.command, job->rec.id});
  cache(job);
  return job->rec;
}

std::shared_ptr<JobManager::Job> JobManager::find(const std::string& id) {
  {
    std::lock_guard lock(m_mutex);
    if (auto it = m_jobs.find(id); it != m_jobs.end()) {
      it->second->last_used = ++m_use_clock;
      return it->second;
    }
  }
  auto rec = m_store.get_job(id);
  if (!rec) {
    throw std::out_of_range("unknown bash_id '" + id +
                            "'. Job ids look like bash_0123456789ab; list jobs with the remote_bash_list tool.");
  }
  auto job = std::make_shared<Job>(m_options.ring_bytes);
  job->rec = *rec;
  // Its output is loaded from its file when read (ensure_loaded), from where the last reader stopped.
  job->read_pos = rec->cursor;
  job->ring.reset(rec->cursor);
  job->released = true;
  return cache(job);
}

void JobManager::set_change_listener(std::function<void(const std::string&)> listener) {
  std::lock_guard lock(m_listener_mutex);
  m_listener = std::move(listener);
}

void JobManager::changed_job(const std::string& id) {
  std::function<void(const std::string&)> listener;
  {
    std::lock_guard lock(m_listener_mutex);
    listener = m_listener;
  }
  if (listener) {
    listener(id);
  }
}

std::vector<state::JobRecord> JobManager::list(std::size_t limit, bool refresh) {
  if (refresh) {
    refresh_all(live_durable_jobs());
  }
  auto records = m_store.list_jobs(limit);
  std::lock_guard lock(m_mutex);
  for (auto& r : records) {
    if (auto it = m_jobs.find(r.id); it != m_jobs.end()) {
      std::lock_guard job_lock(it->second->m);
      r = it->second->rec;
    }
  }
  return records;
}

void JobManager::remove(const std::string& id) {
  auto job = find(id);
  refresh(*job);
  state::JobRecord rec;
  std::shared_ptr<exec::Host> host;
  {
    std::lock_guard lock(job->m);
    if (job->running() || (job->attached && !job->done)) {
      throw std::logic_error("job " + id + " is still running; kill it first (remote_bash_kill)");
    }
    rec = job->rec;
    host = job->host;
  }
  if (rec.durable) {
    host_for(host, rec.host)->remove_job(exec::JobRef{rec.id, rec.job_dir, rec.pid});
  } else if (!rec.spill_path.empty()) {
    std::error_code ec;
    std::filesystem::remove(rec.spill_path, ec);
  }
  m_store.delete_job(id);
  audit({now_ms(), rec.host, "remove", id, rec.job_dir.empty() ? rec.spill_path : rec.job_dir});
  std::lock_guard lock(m_mutex);
  m_jobs.erase(id);
}

std::vector<std::shared_ptr<JobManager::Job>> JobManager::live_durable_jobs() {
  std::vector<std::shared_ptr<Job>> out;
  std::lock_guard lock(m_mutex);
  for (auto& [id, job] : m_jobs) {
    std::lock_guard job_lock(job->m);
    if (job->rec.durable && (job->running() || job->rec.status == "unreachable")) {
      out.push_back(job);
    }
  }
  return out;
}

void JobManager::refresh_all(const std::vector<std::shared_ptr<Job>>& jobs) {
  // One thread per host, so a host that hangs until its connect timeout delays no other host.
  std::map<std::string, std::vector<std::shared_ptr<Job>>> by_host;
  for (const auto& job : jobs) {
    std::lock_guard lock(job->m);
    by_host[job->rec.host].push_back(job);
  }
  auto refresh_group = [this](const std::vector<std::shared_ptr<Job>>& group) {
    for (const auto& job : group) {
      refresh(*job);
    }
  };
  if (by_host.size() <= 1) {
    for (const auto& [host, group] : by_host) {
      refresh_group(group);
    }
    return;
  }
  std::vector<std::jthread> threads;
  for (const auto& [host, group] : by_host) {
    threads.emplace_back([&refresh_group, &group = group] { refresh_group(group); });
  }
}

void JobManager::sweep_loop(std::stop_token stop) {
  std::mutex mutex;
  auto next_expiry = Clock::now();
  while (!stop.stop_requested()) {
    if (Clock::now() >= next_expiry) {
      try {
        expire();
      } catch (const std::exception& e) {
        spdlog::warn("retention: {}", e.what());
      }
      next_expiry = Clock::now() + std::chrono::minutes(10);
    }
    {
      std::unique_lock lock(mutex);
      m_sweep_cv.wait_for(lock, stop, m_options.sweep_interval, [] { return false; });
    }
    if (stop.stop_requested()) {
      return;
    }
    refresh_all(live_durable_jobs());
    release_idle_rings();
  }
}

} // namespace smcp::tools
