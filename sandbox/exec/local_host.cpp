#include "sandbox/exec/local_host.h"

#include "sandbox/exec/local/file_window.h"
#include "sandbox/exec/local/foreground.h"
#include "sandbox/exec/local/jobs.h"
#include "sandbox/exec/local_executor.h"

namespace smcp::exec {

namespace {

class LocalHost final : public Host {
public:
  explicit LocalHost(LocalHostOptions options)
      : m_options(std::move(options)), m_executor(std::make_shared<LocalExecutor>()) {}

  std::string name() const override { return m_options.name; }
  std::string jobs_root() const override { return m_options.jobs_root; }
  HostStatus status() const override {
    HostStatus s;
    s.name = m_options.name;
    s.kind = "local";
    return s;
  }

  ExitInfo run(const CommandSpec& spec, OutputSink& sink, std::stop_token stop) override {
    return run_foreground(spec, m_options, sink, stop);
  }
  JobRef start_job(const CommandSpec& spec, const std::string& job_id, const std::string& job_dir) override {
    return start_local_job(m_options, spec, job_id, job_dir);
  }
  JobChunk read_job(const JobRef& job, std::uint64_t offset, std::size_t max_bytes) override {
    return read_local_job(m_options, job, offset, max_bytes);
  }
  bool kill_job(const JobRef& job, int signal, std::chrono::milliseconds grace, std::string*) override {
    return kill_local_job(m_options, job, signal, grace);
  }
  void remove_job(const JobRef& job) override { remove_local_job(m_options, job); }
  FileWindow read_file(const FileReadRequest& request) override {
    return read_file_window(request, m_options.count_lines_below);
  }
  std::shared_ptr<RemoteExecutor> executor() override { return m_executor; }

private:
  LocalHostOptions m_options;
  std::shared_ptr<RemoteExecutor> m_executor;
};

} // namespace

std::shared_ptr<Host> make_local_host(LocalHostOptions options) {
  return std::make_shared<LocalHost>(std::move(options));
}

} // namespace smcp::exec
