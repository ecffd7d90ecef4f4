// Commands and jobs on any host: foreground runs with capped, middle-cut output (promoted to a
// background job when they outlive a budget), durable background jobs (detached on the host,
// tracked in the state store), per-job ring buffers with absolute offsets and a per-job read
// cursor, filtered and waiting reads, and verified kills. Hosts are reached only through
// exec::Host, so this code does not know whether a job runs here, over SSH or in a sandbox.
#pragma once

#include "mcp-server/store/state_store.h"
#include "sandbox/exec/host.h"
#include "tools/jobs/hosts.h"
#include "tools/jobs/regex.h"

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

namespace smcp::tools {

struct JobOptions {
  std::size_t ring_bytes = 8 * 1024 * 1024; // per job, in memory (about 80k lines of a training log)
  std::size_t ring_budget = 0;          // all running jobs' rings together (beyond it the least recently read ones are
                                        // released and refilled from their files when read); 0: 32 rings' worth
  std::size_t max_output_chars = 30000; // per stream of a foreground answer; per output answer
  std::chrono::milliseconds promote_after{55000}; // a foreground command still running then becomes a job; 0: never
  std::chrono::milliseconds poll_interval{100};   // how often a waiting read looks for new output
  std::chrono::milliseconds sweep_interval{2000}; // how often running jobs are checked for their end
  std::chrono::milliseconds kill_grace{3000};     // TERM -> KILL
  std::chrono::milliseconds progress_interval{500};
  // A foreground command sends no progress before it has run this long: a quick call needs none,
  // and a notification written just before its response can reach a client after it.
  std::chrono::milliseconds first_progress_after{1000};
  // While a call waits, progress notifications (for callers that sent a progressToken) come at
  // least this often, so clients that reset their request timeout on progress keep waiting.
  std::chrono::milliseconds heartbeat_interval{10000};
  std::chrono::hours retention{24 * 7}; // ended jobs older than this are removed with their files; 0: keep

  std::string spill_dir;                // where the server keeps the full output of foreground commands
  std::uint64_t spill_cap = 1ull << 30; // a spill file stops here (a marker says so)
};

struct ForegroundResult {
  std::string host;
  std::string bash_id;  // set when promoted to the background or when the output was truncated
  bool running = false; // promoted: still running as bash_id
  std::string status;   // "running", "exited" or "killed", as the job record says
  std::optional<int> exit_code;
  std::optional<int> signal;
  bool timed_out = false;
  // How the process tree ended: processes the command left running that were ended when it
  // returned, or what may remain ("" when the whole tree is verified gone and nothing was left).
  std::string tree_note;
  bool tree_verified = true;
  std::string stdout_text;
  std::string stderr_text;
  std::uint64_t stdout_bytes = 0;
  std::uint64_t stderr_bytes = 0;
  bool truncated = false;
  std::string spill_path; // the full combined output when truncated or promoted (on the server)
  std::int64_t duration_ms = 0;
  std::string note; // e.g. the spill file could not be written (disk full)
};

struct OutputQuery {
  std::string bash_id;
  const Regex* filter = nullptr;
  const Regex* until = nullptr;
  std::chrono::milliseconds wait{0};
  std::function<void(const std::string&)> on_progress; // heartbeats while waiting
  // The caller saves the read position itself, through the answer's receipt, once the answer has
  // reached the client (remote_bash_output: when the response was sent). Without it the position
  // is saved before output() returns.
  bool defer_commit = false;
};

// The read position an answer moved its job to. commit() saves it (once the answer was delivered);
// destroyed without commit() (the answer never left), the window is given back to the next read.
// Until one of the two, a new read of the same job waits (briefly), so reads never overlap and a
// restart re-delivers an answer whose delivery was not confirmed.
class ReadReceipt {
public:
  virtual ~ReadReceipt() = default;
  virtual void commit() = 0;
};

struct OutputAnswer {
  state::JobRecord job; // status/exit_code/signal are current
  std::string output;
  std::uint64_t skipped_lines = 0;
  std::uint64_t dropped_bytes = 0;
  bool truncated = false;        // cut to max_output_chars
  bool matched = false;          // `until` matched a new line
  std::uint64_t cursor = 0;      // stream offset after this read
  std::uint64_t total_bytes = 0; // bytes the job has written so far (as far as known)
  std::string note;
  std::shared_ptr<ReadReceipt> receipt; // with defer_commit
};

struct JobPeek {
  state::JobRecord job;
  std::string tail;       // the newest output, at most the requested bytes
  std::uint64_t from = 0; // stream offset of tail[0]
  std::uint64_t total_bytes = 0;
};

struct KillAnswer {
  state::JobRecord job;
  bool signalled = false; // we sent a signal (the job was running)
  bool verified = false;  // no process of the job remains
  std::string note;
};

class JobManager {
public:
  JobManager(HostRegistry& hosts, state::StateStore& store, JobOptions options);
  ~JobManager(); // ends foreground runs still attached to this process
  JobManager(const JobManager&) = delete;
  JobManager& operator=(const JobManager&) = delete;

  // Runs in the foreground; `on_progress` receives the latest output line now and then.
  // Throws exec::HostError, std::out_of_range (unknown host).
  ForegroundResult run(const std::string& host, const exec::CommandSpec& spec, const std::string& description,
                       const std::function<void(const std::string&)>& on_progress, std::stop_token stop);

  // Starts a durable background job and returns its record at once.
  state::JobRecord start(const std::string& host, const exec::CommandSpec& spec, const std::string& description);

  // New output since the last read. Throws std::out_of_range for an unknown bash_id.
  OutputAnswer output(const OutputQuery& query, std::stop_token stop);

  // Signals the job's whole process tree and confirms its end.
  KillAnswer kill(const std::string& bash_id, int signal);

  // Deletes an ended job's files (on its host) and its record. Throws std::logic_error when the
  // job still runs, exec::HostError when its host cannot delete the files.
  void remove(const std::string& bash_id);

  // Removes ended jobs older than the retention period; returns how many were removed. The sweeper
  // calls it every 10 minutes; tests call it directly.
  std::size_t expire();

  // Newest first. With `refresh`, running jobs are asked for their state first (their hosts are
  // contacted in parallel); without, the state is the last one seen (at most a sweep old).
  std::vector<state::JobRecord> list(std::size_t limit, bool refresh = true);

  // The job's newest output and state, without moving its read cursor.
  JobPeek peek(const std::string& bash_id, std::size_t max_bytes);

  // Called (from any thread, no lock held) with a job id when its output grows or its status
  // changes: durable jobs as they are refreshed, kept foreground jobs when they end.
  void set_change_listener(std::function<void(const std::string&)> listener);

  const JobOptions& options() const { return m_options; }
  // What the manager holds in memory, for the tests that check its bounds. Jobs held now (running
  // ones, plus a few recently used ended ones):
  std::size_t cached_jobs();
  // Bytes of job output held in memory now (the rings of cached jobs).
  std::size_t ring_memory();

private:
  struct Job;
  class ForegroundSink;
  class Receipt;
  class Reading;

  void commit_read(Job& job, std::uint64_t to); // saves the read position (no lock held)
  void ensure_loaded(Job& job);                 // reloads a released ring from the output's file
  bool release_ring_locked(Job& job);           // job.m held; false when it must stay
  void release_idle_rings();                    // ended jobs nobody reads give their rings back
  void audit(const state::AuditEvent& event);   // a failure to record is logged, not fatal

  std::shared_ptr<Job> find(const std::string& id); // memory, then the store
  // A running job's record for `spec` on `host`, with a new id (not yet cached nor stored).
  std::shared_ptr<Job> new_job(const std::shared_ptr<exec::Host>& host, const exec::CommandSpec& spec,
                               const std::string& description);
  std::shared_ptr<Job> cache(const std::shared_ptr<Job>& job); // into m_jobs (the one there if any)
  // The job's host as known, else looked up by name (throws std::out_of_range for an unknown one).
  std::shared_ptr<exec::Host> host_for(std::shared_ptr<exec::Host> known, const std::string& name);
  void evict_finished_locked(); // m_mutex held
  void refresh(Job& job);       // pulls new output and state from the host
  void launch_runner(std::shared_ptr<Job> job, std::shared_ptr<exec::Host> host, exec::CommandSpec spec);
  void finish_attached(Job& job, const exec::ExitInfo& info, const std::optional<exec::HostError>& error);
  void finish_and_notify(Job& job, const exec::ExitInfo& info, const std::optional<exec::HostError>& error);
  void changed_job(const std::string& id);
  void persist(Job& job);
  std::vector<std::shared_ptr<Job>> live_durable_jobs(); // running or unreachable
  void refresh_all(const std::vector<std::shared_ptr<Job>>& jobs);
  void sweep_loop(std::stop_token stop);
  std::string new_id();
  std::int64_t now_ms() const;

  HostRegistry& m_hosts;
  state::StateStore& m_store;
  JobOptions m_options;

  std::mutex m_mutex;
  std::map<std::string, std::shared_ptr<Job>> m_jobs;
  std::uint64_t m_use_clock = 0; // guarded by m_mutex
  std::size_t m_runners = 0;     // foreground runner threads alive (guarded by m_mutex)
  std::condition_variable m_runners_cv;
  std::mutex m_listener_mutex;
  std::function<void(const std::string&)> m_listener;
  std::condition_variable_any m_sweep_cv;
  std::jthread m_sweeper;
};

} // namespace smcp::tools
