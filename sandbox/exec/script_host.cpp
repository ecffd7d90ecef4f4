#include "sandbox/exec/script_host.h"

#include "sandbox/exec/helper_frames.h"
#include "sandbox/exec/remote_scripts.h"
#include "sandbox/exec/script_parsers.h"

#include <spdlog/spdlog.h>

#include <csignal>
#include <mutex>
#include <optional>
#include <random>

namespace smcp::exec {

using Kind = HostError::Kind;

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr const char* k_default_jobs_root = "~/.local/state/sandbox-mcp/jobs";
constexpr const char* k_untracked_note =
    "no process of its session, tree or marker remains, but without perl (the subreaper supervisor) this host "
    "cannot track processes that left the session (setsid), so the end is not verified";
// After the command itself ended, output from children it left behind is read until the stream
// has been quiet this long (as LocalHost does).
constexpr auto k_quiet_after_end = milliseconds(100);
constexpr auto k_drain_after_end = milliseconds(1000); // hard limit, even while they keep writing

std::string make_nonce() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char k_hex[] = "0123456789abcdef";
  std::string out;
  auto v = rng();
  for (int i = 0; i < 16; ++i) {
    out.push_back(k_hex[(v >> (i * 4)) & 0xF]);
  }
  return out;
}

std::string short_command(const std::string& command) {
  std::string one = command;
  for (auto& c : one) {
    if (c == '\n' || c == '\r' || c == '\t') {
      c = ' ';
    }
  }
  return "`" + (one.size() <= 80 ? one : one.substr(0, 80) + "...") + "`";
}

// Closes a call's channel and gives it a moment to end.
void close_call(RemoteCall& call) {
  call.cancel();
  call.wait_until(Clock::now() + std::chrono::seconds(5));
}

// The output of a foreground run as it arrives on the executor's thread: stdout goes to the sink,
// stderr through the MarkerFilter, whose records make the supervisor's report.
class ForegroundOutput {
public:
  ForegroundOutput(const std::string& nonce, OutputSink* sink) : m_sink(sink), m_filter(nonce) {}

  void on_output(Stream stream, std::string_view data) {
    std::lock_guard lock(m_mutex);
    m_last_output = Clock::now();
    if (stream == Stream::out) {
      if (m_sink) {
        m_sink->on_output(stream, data);
      }
      return;
    }
    std::string pass = m_filter.feed(data);
    for (const auto& record : m_filter.take_records()) {
      apply_record(record, m_report);
    }
    if (!pass.empty() && m_sink) {
      m_sink->on_output(Stream::err, pass);
    }
  }

  SupervisorReport report() const {
    std::lock_guard lock(m_mutex);
    return m_report;
  }

  Clock::time_point last_output() const {
    std::lock_guard lock(m_mutex);
    return m_last_output;
  }

  // Passes on what the filter held back, then drops whatever the call still delivers (it may,
  // after run returned). Returns the final report.
  SupervisorReport finish() {
    std::lock_guard lock(m_mutex);
    std::string rest = m_filter.flush();
    if (!rest.empty() && m_sink) {
      m_sink->on_output(Stream::err, rest);
    }
    m_sink = nullptr;
    return m_report;
  }

private:
  mutable std::mutex m_mutex;
  OutputSink* m_sink;
  MarkerFilter m_filter;
  SupervisorReport m_report;
  Clock::time_point m_last_output = Clock::now();
};

class ScriptHost final : public Host {
public:
  ScriptHost(ScriptHostOptions options, std::shared_ptr<RemoteExecutor> executor)
      : m_options(std::move(options)), m_executor(std::move(executor)) {}

  std::string name() const override { return m_options.name; }
  std::string jobs_root() const override;
  ExitInfo run(const CommandSpec& spec, OutputSink& sink, std::stop_token stop) override;
  JobRef start_job(const CommandSpec& spec, const std::string& job_id, const std::string& job_dir) override;
  JobChunk read_job(const JobRef& job, std::uint64_t offset, std::size_t max_bytes) override;
  bool kill_job(const JobRef& job, int signal, milliseconds grace, std::string* detail) override;
  void remove_job(const JobRef& job) override;
  FileWindow read_file(const FileReadRequest& request) override;
  HostStatus status() const override;
  std::shared_ptr<RemoteExecutor> executor() override { return m_executor; }

private:
  HostFacts facts();
  std::string command_shell(const HostFacts& f) const { return f.bash.empty() ? "/bin/sh" : f.bash; }
  std::string perl(const HostFacts& f) const;
  // The spec as sent: ~ expanded, SHLVL set when the command's bash must not source ~/.bashrc.
  CommandSpec remote_spec(const CommandSpec& spec, const HostFacts& f) const {
    CommandSpec s = spec;
    s.cwd = expand_home(spec.cwd, f.home);
    bool user_set = false;
    for (const auto& kv : s.env) {
      user_set = user_set || kv.first == "SHLVL";
    }
    if (m_options.skip_command_bashrc && !user_set) {
      s.env.insert(s.env.begin(), {"SHLVL", "1"}); // bash sources ~/.bashrc only at level 1
    }
    return s;
  }
  RemoteResult run_script(const std::string& script, const std::string& what, bool retry_safe, milliseconds timeout);

  // The steps of run(): wait for the command's end (or its timeout, or a stop), then, when it did
  // not end by itself, end its tree on the host; then tell how it ended.
  enum class RunEnd { ended, timed_out, cancelled };
  struct TreeEnd {
    bool verified = true;
    std::string note;
  };
  RunEnd wait_for_end(RemoteCall& call, const ForegroundOutput& output, Clock::time_point deadline,
                      std::stop_token stop) const;
  // One wait after the command ended (children it left may still write, or the subreaper
  // supervisor end them): true when the call is over (its channel closed, if need be).
  bool wait_after_end(RemoteCall& call, const ForegroundOutput& output, const SupervisorReport& report,
                      Clock::time_point ended_at, Clock::time_point deadline, std::stop_token stop) const;
  TreeEnd end_tree(const CommandSpec& spec, const SupervisorReport& report);
  ExitInfo exit_info(const CommandSpec& spec, RunEnd end, const TreeEnd& tree, const SupervisorReport& report,
                     RemoteCall& call) const;

  ScriptHostOptions m_options;
  std::shared_ptr<RemoteExecutor> m_executor;
  mutable std::mutex m_facts_mutex;
  std::optional<HostFacts> m_facts;
};

HostFacts ScriptHost::facts() {
  auto ex = executor();
  std::lock_guard lock(m_facts_mutex);
  if (m_facts) {
    return *m_facts;
  }
  RemoteResult r = ex->run(RemoteCommand{sh_exec(), probe_script(), "probing " + m_options.name, true, {}},
                           m_options.script_timeout);
  HostFacts f = parse_probe(r.out);
  if (f.home.empty() && r.out.find("home=") == std::string::npos) {
    throw HostError(Kind::io, "cannot run /bin/sh on " + m_options.name + ": " +
                                  (r.err.empty() ? "no answer" : r.err.substr(0, 500)));
  }
  if (f.perl.empty() && m_options.supervisor == ScriptHostOptions::Supervisor::automatic) {
    spdlog::info("host {}: no perl; a command status above 128 is reported as a signal (shell convention)",
                 m_options.name);
  }
  if (f.bash.empty()) {
    spdlog::warn("host {}: no bash; commands run with /bin/sh", m_options.name);
  }
  m_facts = f;
  return f;
}

std::string ScriptHost::perl(const HostFacts& f) const {
  switch (m_options.supervisor) {
  case ScriptHostOptions::Supervisor::automatic:
    return f.perl;
  case ScriptHostOptions::Supervisor::perl:
    if (f.perl.empty()) {
      throw HostError(Kind::invalid, "perl is not installed on " + m_options.name);
    }
    return f.perl;
  case ScriptHostOptions::Supervisor::shell:
    return {};
  }
  return f.perl;
}

std::string ScriptHost::jobs_root() const {
  std::string root = m_options.jobs_root.empty() ? k_default_jobs_root : m_options.jobs_root;
  std::lock_guard lock(m_facts_mutex);
  return m_facts ? expand_home(root, m_facts->home) : root;
}

RemoteResult ScriptHost::run_script(const std::string& script, const std::string& what, bool retry_safe,
                                    milliseconds timeout) {
  auto ex = executor();
  RemoteResult r = ex->run(RemoteCommand{sh_exec(), script, what, retry_safe, {}}, timeout);
  if (r.out.empty() && (r.exit_signal || (r.exit_status && *r.exit_status != 0))) {
    throw HostError(Kind::io, what + " failed on " + m_options.name + ": " +
                                  (r.err.empty() ? "exit status " + std::to_string(r.exit_status.value_or(-1))
                                                 : r.err.substr(0, 1000)));
  }
  return r;
}

ExitInfo ScriptHost::run(const CommandSpec& spec, OutputSink& sink, std::stop_token stop) {
  const HostFacts f = facts();
  const std::string nonce = make_nonce();
  ForegroundScript fs = foreground_script(remote_spec(spec, f), command_shell(f), nonce, perl(f), m_options.kill_grace);
  auto output = std::make_shared<ForegroundOutput>(nonce, &sink);
  RemoteCommand cmd;
  cmd.exec = fs.exec;
  cmd.input = std::move(fs.input);
  cmd.what = short_command(spec.command);
  cmd.on_output = [output](Stream stream, std::string_view data) { output->on_output(stream, data); };
  auto call = executor()->start(std::move(cmd));

  const auto deadline = spec.timeout.count() > 0 ? Clock::now() + spec.timeout : Clock::time_point::max();
  const RunEnd end = wait_for_end(*call, *output, deadline, stop);
  TreeEnd tree;
  if (end != RunEnd::ended) {
    tree = end_tree(spec, output->report());
    // Without a session there is nothing to wait for: what did not start must not start now (a
    // resend). With one, the call gets 3 s to end after its tree was ended.
    if (!output->report().sid || !call->wait_until(Clock::now() + std::chrono::seconds(3))) {
      close_call(*call);
    }
  } else if (const SupervisorReport report = output->report();
             !report.exit_code && !report.signal && report.sid && *report.sid > 1) {
    // The stream was lost after the command started (the helper's process that served it died)
    // and before its end, the connection being up: it may still run. Ended through the session
    // it reported. (A lost connection is not waited on here: the supervisor ends the command at
    // its timeout by itself.)
    try {
      call->result();
    } catch (const HostError& e) {
      if (e.kind() == Kind::unreachable &&
          std::string_view(e.what()).find(helper::k_stream_lost) != std::string::npos) {
        tree = end_tree(spec, report);
        throw HostError(
            Kind::unreachable,
            std::string(e.what()) + "; " +
                (tree.verified ? "its processes (session " + std::to_string(*report.sid) + ") were ended" : tree.note));
      }
    }
  }
  return exit_info(spec, end, tree, output->finish(), *call);
}

ScriptHost::RunEnd ScriptHost::wait_for_end(RemoteCall& call, const ForegroundOutput& output,
                                            Clock::time_point deadline, std::stop_token stop) const {
  std::optional<Clock::time_point> ended_at; // when the supervisor reported the command's end
  for (;;) {
    const SupervisorReport report = output.report();
    const auto now = Clock::now();
    if (report.exit_code || report.signal || report.cwd_missing) {
      if (!ended_at) {
        ended_at = now;
      }
      if (wait_after_end(call, output, report, *ended_at, deadline, stop)) {
        return RunEnd::ended;
      }
      continue;
    }
    if (call.wait_until(std::min(deadline, now + milliseconds(100)), stop)) {
      return RunEnd::ended;
    }
    if (stop.stop_requested()) {
      return RunEnd::cancelled;
    }
    if (Clock::now() >= deadline) {
      return RunEnd::timed_out;
    }
  }
}

bool ScriptHost::wait_after_end(RemoteCall& call, const ForegroundOutput& output, const SupervisorReport& report,
                                Clock::time_point ended_at, Clock::time_point deadline, std::stop_token stop) const {
  const auto now = Clock::now();
  if (report.subreaper && !report.tree_done) {
    // The subreaper supervisor ends what the command left running, says so, and exits.
    const auto limit = ended_at + k_drain_after_end + m_options.kill_grace + std::chrono::seconds(6);
    if (call.wait_until(std::min(now + milliseconds(50), limit), stop)) {
      return true;
    }
    if (stop.stop_requested() || Clock::now() >= limit) {
      close_call(call);
      return true;
    }
    return false;
  }
  // The command ended; its channel stays open only while children it left behind hold its
  // output. Read what they write until the stream is quiet (at most k_drain_after_end), then
  // let them be (without a subreaper, they cannot all be found).
  const auto drain_limit = ended_at + k_drain_after_end;
  auto quiet_until = std::min(std::max(output.last_output(), now) + k_quiet_after_end, drain_limit);
  if (call.wait_until(std::min(quiet_until, deadline), stop)) {
    return true;
  }
  const bool quiet = Clock::now() - output.last_output() >= k_quiet_after_end;
  if (quiet || stop.stop_requested() || Clock::now() >= deadline || Clock::now() >= drain_limit) {
    close_call(call);
    return true;
  }
  return false;
}

ScriptHost::TreeEnd ScriptHost::end_tree(const CommandSpec& spec, const SupervisorReport& report) {
  if (!report.sid || *report.sid <= 1) {
    spdlog::warn("host {}: {} did not report its session; closing its channel without a kill", m_options.name,
                 short_command(spec.command));
    return {false, "the command did not report its session; its channel was closed without a verified kill"};
  }
  try {
    RemoteResult r =
        run_script(kill_session_script(*report.sid, report.supervisor_pid.value_or(0), SIGTERM, m_options.kill_grace,
                                       "", "", report.subreaper),
                   "ending " + short_command(spec.command), true, m_options.kill_grace + std::chrono::seconds(15));
    KillOutcome k = parse_kill(r.out);
    if (!k.gone) {
      spdlog::warn("host {}: some processes of session {} survived SIGKILL:{}", m_options.name, *report.sid, k.left);
      return {false, "some processes of the command survived SIGKILL"};
    }
    if (k.untracked) {
      return {false, "the command's session was ended, but without perl (the subreaper supervisor) this host cannot "
                     "track processes that left the session (setsid), so the end of the whole tree is not verified"};
    }
    return {};
  } catch (const HostError& e) {
    spdlog::warn("host {}: cannot end the processes of {}: {}", m_options.name, short_command(spec.command), e.what());
    return {false, std::string("the command's processes could not be ended: ") + e.what()};
  }
}

ExitInfo ScriptHost::exit_info(const CommandSpec& spec, RunEnd end, const TreeEnd& tree, const SupervisorReport& report,
                               RemoteCall& call) const {
  const bool timed_out = end == RunEnd::timed_out, cancelled = end == RunEnd::cancelled;
  RemoteResult rr;
  std::optional<HostError> error;
  try {
    rr = call.result();
  } catch (const HostError& e) {
    error = e;
  }
  if (report.cwd_missing) {
    throw HostError(Kind::invalid, "working directory " + spec.cwd + " does not exist on " + m_options.name);
  }
  ExitInfo info;
  info.timed_out = timed_out;
  info.cancelled = cancelled;
  info.leftovers = report.leftovers;
  info.leftover_names = report.leftover_names;
  info.tree_verified = tree.verified && !report.survivors;
  info.tree_note = report.survivors ? "some processes the command left running survived SIGKILL" : tree.note;
  if (report.exit_code) {
    info.exit_code = report.exit_code;
  } else if (report.signal) {
    info.signal = report.signal;
  } else if (error && (!(timed_out || cancelled) || (!report.sid && error->kind() == Kind::unreachable))) {
    throw *error; // (timed out with no session reported and the host unreachable: nothing ran, nothing was killed)
  } else if (rr.exit_signal) {
    info.signal = rr.exit_signal;
  } else if (rr.exit_status && !timed_out && !cancelled) {
    info.exit_code = rr.exit_status;
  } else if (timed_out || cancelled) {
    info.signal = SIGTERM; // we ended it; how exactly it ended was not reported
  } else {
    info.exit_code = rr.exit_status.value_or(0);
  }
  return info;
}

JobRef ScriptHost::start_job(const CommandSpec& spec, const std::string& job_id, const std::string& job_dir) {
  auto ex = executor();
  const HostFacts f = facts();
  CommandSpec s = remote_spec(spec, f);
  const std::string dir = expand_home(job_dir, f.home);
  s.env.emplace_back(k_job_marker_name, job_id); // finds the job's processes after its supervisor is gone
  ForegroundScript fs =
      job_start_script(s, dir, command_shell(f), perl(f), m_options.job_output_cap, m_options.kill_grace);
  RemoteResult r = ex->run(RemoteCommand{fs.exec, std::move(fs.input), "starting job " + job_id, false, {}},
                           m_options.script_timeout);
  try {
    long pid = parse_job_start(r.out, dir);
    return JobRef{job_id, dir, pid};
  } catch (const HostError& e) {
    if (r.err.empty()) {
      throw;
    }
    throw HostError(e.kind(), std::string(e.what()) + ": " + r.err.substr(0, 1000));
  }
}

JobChunk ScriptHost::read_job(const JobRef& job, std::uint64_t offset, std::size_t max_bytes) {
  RemoteResult r =
      run_script(job_read_script(job, offset, max_bytes), "reading job " + job.id, true, m_options.script_timeout);
  return parse_job_read(r.out, job);
}

bool ScriptHost::kill_job(const JobRef& job, int signal, milliseconds grace, std::string* detail) {
  if (job.pid <= 0) {
    return false;
  }
  RemoteResult r = run_script(kill_session_script(job.pid, job.pid, signal, grace, job.dir, job_marker(job.id)),
                              "killing job " + job.id, true, grace + std::chrono::seconds(15));
  KillOutcome k = parse_kill(r.out);
  if (!k.gone) {
    spdlog::warn("host {}: job {}: processes survived SIGKILL:{}", m_options.name, job.id, k.left);
  } else if (k.untracked && detail) {
    *detail = k_untracked_note;
  }
  return k.gone && !k.untracked;
}

void ScriptHost::remove_job(const JobRef& job) {
  try {
    JobChunk state = read_job(job, 0, 0);
    if (state.state.phase == JobState::Phase::running) {
      throw HostError(Kind::invalid, "job " + job.id + " is still running; kill it first");
    }
  } catch (const HostError& e) {
    if (e.kind() == Kind::not_found) {
      return;
    }
    throw;
  }
  RemoteResult r = run_script(remove_job_script(job.dir), "removing job " + job.id, true, m_options.script_timeout);
  if (r.out.find("removed") == std::string::npos && r.out.find("gone") == std::string::npos) {
    throw HostError(Kind::io, "cannot remove " + job.dir + " on " + m_options.name + ": " + r.out + r.err);
  }
}

FileWindow ScriptHost::read_file(const FileReadRequest& request) {
  const HostFacts f = facts();
  FileReadRequest req = request;
  req.path = expand_home(request.path, f.home);
  RemoteResult r = run_script(file_window_script(req, m_options.count_lines_below), "reading " + request.path, true,
                              m_options.script_timeout);
  return parse_file_window(r.out, request, m_options.count_lines_below);
}

HostStatus ScriptHost::status() const {
  HostStatus st = m_executor->status();
  st.name = m_options.name;
  return st;
}

} // namespace

std::shared_ptr<Host> make_script_host(ScriptHostOptions options, std::shared_ptr<RemoteExecutor> executor) {
  return std::make_shared<ScriptHost>(std::move(options), std::move(executor));
}

} // namespace smcp::exec
