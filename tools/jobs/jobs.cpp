#include "tools/jobs/jobs.h"

#include "tools/jobs/ring_buffer.h"
#include "tools/jobs/text.h"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <random>
#include <stdexcept>
#include <unistd.h>

namespace smcp::tools {

namespace {

using Clock = std::chrono::steady_clock;

// Ended jobs kept in memory beyond the ones in use (their rings are released; records are small).
constexpr std::size_t k_cached_finished_jobs = 16;

// How long a read waits for the previous answer of the same job to be confirmed sent.
constexpr std::chrono::seconds k_unconfirmed_answer_wait{10};

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

std::string status_of(const exec::ExitInfo& info) {
  return info.signal ? "killed" : "exited";
}

} // namespace

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
};

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
      job.note = (err == ENOSPC ? std::string("disk full") : std::strerror(err)) + ": cannot create " + path +
                 " to keep the full output (`df " + options.spill_dir + "`)";
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
      job.note = (job.spill_error == ENOSPC ? std::string("disk full") : std::strerror(job.spill_error)) +
                 ": the full output file " + job.rec.spill_path + " stops after " + std::to_string(job.spilled) +
                 " bytes; " + std::to_string(job.spill_lost) +
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

ForegroundResult JobManager::run(const std::string& host_name, const exec::CommandSpec& spec,
                                 const std::string& description,
                                 const std::function<void(const std::string&)>& on_progress, std::stop_token stop) {
  auto host = m_hosts.get(host_name);
  auto job = std::make_shared<Job>(m_options.ring_bytes);
  job->attached = true;
  job->host = host;
  job->out = std::make_unique<StreamCapture>(m_options.max_output_chars);
  job->err = std::make_unique<StreamCapture>(m_options.max_output_chars);
  job->rec.id = new_id();
  job->rec.host = host->name();
  job->rec.command = spec.command;
  job->rec.description = description;
  job->rec.cwd = spec.cwd;
  job->rec.status = "running";
  job->rec.started_at_ms = now_ms();
  const auto started = Clock::now();
  audit({job->rec.started_at_ms, job->rec.host, "run", spec.command, job->rec.id});

  // The runner owns a reference to the job; it outlives this call when the command is promoted.
  {
    std::lock_guard lock(m_mutex);
    ++m_runners;
  }
  std::thread([this, job, host, spec] {
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
    std::lock_guard jobs_lock(m_mutex);
    m_jobs.emplace(job->rec.id, job);
    job->last_used = ++m_use_clock;
    evict_finished_locked();
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

state::JobRecord JobManager::start(const std::string& host_name, const exec::CommandSpec& spec,
                                   const std::string& description) {
  auto host = m_hosts.get(host_name);
  auto job = std::make_shared<Job>(m_options.ring_bytes);
  job->host = host;
  job->rec.id = new_id();
  job->rec.host = host->name();
  job->rec.command = spec.command;
  job->rec.description = description;
  job->rec.cwd = spec.cwd;
  job->rec.status = "running";
  job->rec.durable = true;
  job->rec.started_at_ms = now_ms();
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
  std::lock_guard lock(m_mutex);
  m_jobs.emplace(job->rec.id, job);
  job->last_used = ++m_use_clock;
  evict_finished_locked();
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
  std::lock_guard lock(m_mutex);
  auto [it, inserted] = m_jobs.emplace(id, job);
  it->second->last_used = ++m_use_clock;
  evict_finished_locked();
  return it->second;
}

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
  int fd = ::open(job.rec.spill_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    job.note = "the spill file " + job.rec.spill_path + " is gone: " + std::strerror(errno);
    return;
  }
  off_t end = ::lseek(fd, 0, SEEK_END);
  std::uint64_t size = end > 0 ? static_cast<std::uint64_t>(end) : 0;
  std::uint64_t from =
      std::max<std::uint64_t>(job.read_pos, size > m_options.ring_bytes ? size - m_options.ring_bytes : 0);
  if (from < size) {
    std::string buf(static_cast<std::size_t>(size - from), '\0');
    ssize_t n = ::pread(fd, buf.data(), buf.size(), static_cast<off_t>(from));
    buf.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    job.ring.reset(from);
    job.ring.append(buf);
  }
  ::close(fd);
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
    const bool ended = job->rec.durable ? job->complete : (!job->attached || job->done);
    if (ended && job->rec.status != "running" && release_ring_locked(*job)) {
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
    const bool ended = job->rec.durable ? job->complete : (!job->attached || job->done);
    // A job being read, or whose last answer is not yet confirmed, keeps its place: a copy loaded
    // afresh from the store would start again from the saved read position.
    const bool busy = job->readers > 0 || job->inflight > 0;
    if (ended && !busy && job->rec.status != "running" && job->rec.status != "unreachable") {
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
    if (!host) {
      host = m_hosts.get(job.rec.host);
    }
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
    job.note = (err == ENOSPC ? std::string("disk full") : std::string(std::strerror(err))) +
               ": the job's output file " + job.rec.job_dir + "/output on " + job.rec.host + " stops after " +
               std::to_string(chunk.state.output_written) + " bytes; " + std::to_string(chunk.state.output_lost) +
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
      if (!host) {
        host = m_hosts.get(p.job.host);
      }
      exec::JobChunk chunk = host->read_job(ref, 0, max_bytes);
      p.from = chunk.offset;
      p.total_bytes = chunk.size;
      p.tail = std::move(chunk.data);
    } catch (const std::exception& e) {
      spdlog::debug("job {}: cannot read the tail of its output: {}", id, e.what());
    }
    return p;
  }
  if (!job->rec.spill_path.empty() && !job->spill_failed) {
    int fd = ::open(job->rec.spill_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      off_t end = ::lseek(fd, 0, SEEK_END);
      const std::uint64_t size = end > 0 ? static_cast<std::uint64_t>(end) : 0;
      p.from = size > max_bytes ? size - max_bytes : 0;
      p.tail.resize(static_cast<std::size_t>(size - p.from));
      ssize_t n = ::pread(fd, p.tail.data(), p.tail.size(), static_cast<off_t>(p.from));
      p.tail.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
      ::close(fd);
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
      std::string out;
      if (q.filter) {
        for_each_line(text, [&](std::string_view line) {
          if (q.filter->search(line)) {
            out.append(line);
            out.push_back('\n');
          } else {
            ++a.skipped_lines;
          }
        });
        if (!text.empty() && text.back() != '\n' && !out.empty() && out.back() == '\n' &&
            q.filter->search(last_line(text))) {
          out.pop_back(); // the job ended without a final newline: keep the text as written
        }
      } else {
        out = std::move(text);
      }
      if (out.size() > m_options.max_output_chars) {
        std::string where = job->rec.durable
                                ? "full output: remote_file_read {file_path: \"" + job->rec.job_dir +
                                      "/output\", host: \"" + job->rec.host + "\"}"
                                : (job->rec.spill_path.empty() ? std::string("not kept")
                                                               : "full output: remote_file_read {file_path: \"" +
                                                                     job->rec.spill_path + "\", host: \"local\"}");
        out = middle_cut(out, m_options.max_output_chars, where);
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
    if (!host) {
      host = m_hosts.get(job->rec.host);
    }
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
  if (!host) {
    host = m_hosts.get(job->rec.host);
  }
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
    if (!host) {
      host = m_hosts.get(rec.host);
    }
    host->remove_job(exec::JobRef{rec.id, rec.job_dir, rec.pid});
  } else if (!rec.spill_path.empty()) {
    std::error_code ec;
    std::filesystem::remove(rec.spill_path, ec);
  }
  m_store.delete_job(id);
  audit({now_ms(), rec.host, "remove", id, rec.job_dir.empty() ? rec.spill_path : rec.job_dir});
  std::lock_guard lock(m_mutex);
  m_jobs.erase(id);
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
