// A scripted exec::Host for unit tests: foreground runs replay configured output (optionally
// blocking until released or stopped), durable jobs live in memory and are driven by the test,
// and every call is recorded for assertions.
#pragma once

#include "sandbox/exec/host.h"

#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace smcp::testing {

class FakeHost : public exec::Host {
public:
  explicit FakeHost(std::string name = "fake") : m_name(std::move(name)) {}

  // ---- foreground script ----
  struct Chunk {
    exec::Stream stream;
    std::string data;
  };
  std::vector<Chunk> run_output;
  exec::ExitInfo run_result{0, std::nullopt, false, false};
  bool block_until_released = false;    // run() waits for release() or stop
  std::chrono::milliseconds chatter{0}; // while blocked, print "tick N" lines this often
  void release();

  // ---- durable jobs, driven by the test ----
  void job_append(const std::string& id, const std::string& data);
  void job_finish(const std::string& id, exec::JobState state);
  std::string job_output(const std::string& id);

  // ---- failure injection ----
  void set_unreachable(bool unreachable);
  // read_job() blocks (like a host that drops packets) until hang_reads(false).
  void hang_reads(bool hang);

  // ---- recording ----
  std::vector<exec::CommandSpec> runs;
  std::vector<std::string> started_jobs;
  std::vector<std::pair<std::string, int>> kills;
  int read_job_calls = 0;

  std::string name() const override { return m_name; }
  std::string jobs_root() const override { return "/fake/jobs"; }
  exec::ExitInfo run(const exec::CommandSpec& spec, exec::OutputSink& sink, std::stop_token stop) override;
  exec::JobRef start_job(const exec::CommandSpec& spec, const std::string& job_id, const std::string& job_dir) override;
  exec::JobChunk read_job(const exec::JobRef& job, std::uint64_t offset, std::size_t max_bytes) override;
  bool kill_job(const exec::JobRef& job, int signal, std::chrono::milliseconds grace,
                std::string* detail = nullptr) override;
  void remove_job(const exec::JobRef& job) override;
  exec::FileWindow read_file(const exec::FileReadRequest& request) override;

  exec::FileWindow file_window; // what read_file returns

private:
  struct FakeJob {
    std::string output;
    exec::JobState state;
  };
  void throw_if_unreachable() const;

  std::string m_name;
  mutable std::mutex m_mutex;
  std::condition_variable_any m_cv;
  bool m_released = false;
  bool m_unreachable = false;
  bool m_hang_reads = false;
  std::map<std::string, FakeJob> m_jobs;
};

} // namespace smcp::testing
