#include "sandbox/exec/script_host.h"

#include "sandbox/exec/remote_scripts.h"

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

private:
  const std::shared_ptr<RemoteExecutor>& executor() const { return m_executor; }
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
  auto ex = executor();
  const HostFacts f = facts();
  CommandSpec s = remote_spec(spec, f);
  const std::string nonce = make_nonce();
  ForegroundScript fs = foreground_script(s, command_shell(f), nonce, perl(f), m_options.kill_grace);

  struct Shared {
    explicit Shared(const std::string& n, OutputSink* out) : sink(out), filter(n) {}
    std::mutex m;
    OutputSink* sink;
    MarkerFilter filter;
    SupervisorReport report;
    Clock::time_point last_output = Clock::now();
  };
  auto shared = std::make_shared<Shared>(nonce, &sink);
  RemoteCommand cmd;
  cmd.exec = fs.exec;
  cmd.input = std::move(fs.input);
  cmd.what = short_command(spec.command);
  cmd.on_output = [shared](Stream stream, std::string_view data) {
    std::lock_guard lock(shared->m);
    shared->last_output = Clock::now();
    if (stream == Stream::out) {
      if (shared->sink) {
        shared->sink->on_output(stream, data);
      }
      return;
    }
    std::string pass = shared->filter.feed(data);
    for (const auto& record : shared->filter.take_records()) {
      apply_record(record, shared->report);
    }
    if (!pass.empty() && shared->sink) {
      shared->sink->on_output(Stream::err, pass);
    }
  };
  auto call = ex->start(std::move(cmd));

  const auto deadline = spec.timeout.count() > 0 ? Clock::now() + spec.timeout : Clock::time_point::max();
  bool timed_out = false, cancelled = false;
  std::optional<Clock::time_point> ended_at; // when the supervisor reported the command's end
  for (;;) {
    bool ended_marker = false;
    Clock::time_point last;
    {
      std::lock_guard lock(shared->m);
      ended_marker = shared->report.exit_code || shared->report.signal || shared->report.cwd_missing;
      last = shared->last_output;
    }
    const auto now = Clock::now();
    if (ended_marker) {
      if (!ended_at) {
        ended_at = now;
      }
      bool tracking = false;
      {
        std::lock_guard lock(shared->m);
        tracking = shared->report.subreaper && !shared->report.tree_done;
      }
      if (tracking) {
        // The subreaper supervisor ends what the command left running, says so, and exits.
        const auto limit = *ended_at + k_drain_after_end + m_options.kill_grace + std::chrono::seconds(6);
        if (call->wait_until(std::min(now + milliseconds(50), limit), stop)) {
          break;
        }
        if (stop.stop_requested() || Clock::now() >= limit) {
          call->cancel();
          call->wait_until(Clock::now() + std::chrono::seconds(5));
          break;
        }
        continue;
      }
      // The command ended; its channel stays open only while children it left behind hold its
      // output. Read what they write until the stream is quiet (at most k_drain_after_end), then
      // let them be (without a subreaper, they cannot all be found).
      const auto drain_limit = *ended_at + k_drain_after_end;
      auto quiet_until = std::min(std::max(last, now) + k_quiet_after_end, drain_limit);
      if (call->wait_until(std::min(quiet_until, deadline), stop)) {
        break;
      }
      bool quiet = false;
      {
        std::lock_guard lock(shared->m);
        quiet = Clock::now() - shared->last_output >= k_quiet_after_end;
      }
      if (quiet || stop.stop_requested() || Clock::now() >= deadline || Clock::now() >= drain_limit) {
        call->cancel();
        call->wait_until(Clock::now() + std::chrono::seconds(5));
        break;
      }
      continue;
    }
    if (call->wait_until(std::min(deadline, now + milliseconds(100)), stop)) {
      break;
    }
    if (stop.stop_requested()) {
      cancelled = true;
      break;
    }
    if (Clock::now() >= deadline) {
      timed_out = true;
      break;
    }
  }

  bool tree_verified = true;
  std::string tree_note;
  if (timed_out || cancelled) {
    SupervisorReport rep;
    {
      std::lock_guard lock(shared->m);
      rep = shared->report;
    }
    if (rep.sid && *rep.sid > 1) {
      try {
        RemoteResult r =
            run_script(kill_session_script(*rep.sid, rep.supervisor_pid.value_or(0), SIGTERM, m_options.kill_grace, "",
                                           "", rep.subreaper),
                       "ending " + short_command(spec.command), true, m_options.kill_grace + std::chrono::seconds(15));
        KillOutcome k = parse_kill(r.out);
        if (!k.gone) {
          spdlog::warn("host {}: some processes of session {} survived SIGKILL:{}", m_options.name, *rep.sid, k.left);
          tree_verified = false;
          tree_note = "some processes of the command survived SIGKILL";
        } else if (k.untracked) {
          tree_verified = false;
          tree_note = "the command's session was ended, but without perl (the subreaper supervisor) this host cannot "
                      "track processes that left the session (setsid), so the end of the whole tree is not verified";
        }
      } catch (const HostError& e) {
        spdlog::warn("host {}: cannot end the processes of {}: {}", m_options.name, short_command(spec.command),
                     e.what());
        tree_verified = false;
        tree_note = std::string("the command's processes could not be ended: ") + e.what();
      }
    } else {
      spdlog::warn("host {}: {} did not report its session; closing its channel without a kill", m_options.name,
                   short_command(spec.command));
      tree_verified = false;
      tree_note = "the command did not report its session; its channel was closed without a verified kill";
    }
    if (!call->wait_until(Clock::now() + std::chrono::seconds(3))) {
      call->cancel();
      call->wait_until(Clock::now() + std::chrono::seconds(5));
    }
  }

  SupervisorReport rep;
  {
    std::lock_guard lock(shared->m);
    std::string rest = shared->filter.flush();
    if (!rest.empty() && shared->sink) {
      shared->sink->on_output(Stream::err, rest);
    }
    shared->sink = nullptr; // the call may still deliver bytes after we return: drop them
    rep = shared->report;
  }
  RemoteResult rr;
  std::optional<HostError> error;
  try {
    rr = call->result();
  } catch (const HostError& e) {
    error = e;
  }
  if (rep.cwd_missing) {
    throw HostError(Kind::invalid, "working directory " + spec.cwd + " does not exist on " + m_options.name);
  }
  ExitInfo info;
  info.timed_out = timed_out;
  info.cancelled = cancelled;
  info.leftovers = rep.leftovers;
  info.leftover_names = rep.leftover_names;
  info.tree_verified = tree_verified && !rep.survivors;
  info.tree_note = rep.survivors ? "some processes the command left running survived SIGKILL" : tree_note;
  if (rep.exit_code) {
    info.exit_code = rep.exit_code;
  } else if (rep.signal) {
    info.signal = rep.signal;
  } else if (error && !timed_out && !cancelled) {
    throw *error;
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
