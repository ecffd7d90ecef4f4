#include "tools/profile_runner.h"

#include "mcp-server/core/tool.h"
#include "sandbox/exec/remote_executor.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <random>
#include <stdexcept>

namespace smcp::tools {

ProfileRunner::ProfileRunner(sandbox::ProfileSettings settings) : m_settings(std::move(settings)) {}

namespace {

constexpr std::size_t k_max_encoded_env = 120 * 1024;

std::string names(const std::map<std::string, sandbox::Profile>& profiles) {
  std::string known;
  for (const auto& [n, p] : profiles) {
    known += (known.empty() ? "" : ", ") + n;
  }
  return known;
}

} // namespace

const sandbox::Profile* ProfileRunner::resolve(const std::string& requested, const std::string& host_name) const {
  const auto host_it = m_settings.host_default.find(host_name);
  const std::string ceiling = host_it != m_settings.host_default.end() ? host_it->second : m_settings.default_profile;
  const std::string name = requested.empty() ? ceiling : requested;
  if (name.empty()) {
    return nullptr;
  }
  auto it = m_settings.profiles.find(name);
  if (it == m_settings.profiles.end()) {
    throw mcp::InvalidArgument("profile", "unknown profile '" + name + "'; profiles: " + names(m_settings.profiles));
  }
  if (ceiling.empty() || name == ceiling) {
    return &it->second;
  }
  const auto allowed_it = m_settings.host_allowed.find(host_name);
  const std::vector<std::string>& allowed =
      allowed_it != m_settings.host_allowed.end() ? allowed_it->second : m_settings.allowed;
  const auto ceiling_it = m_settings.profiles.find(ceiling);
  if (std::find(allowed.begin(), allowed.end(), name) != allowed.end() ||
      (ceiling_it != m_settings.profiles.end() && sandbox::at_least_as_strict(it->second, ceiling_it->second))) {
    return &it->second;
  }
  const std::string where = host_it != m_settings.host_default.end()
                                ? "the config's hosts[].profile for " + host_name
                                : std::string("default_profile (or SANDBOX_DEFAULT_PROFILE)");
  throw mcp::ToolError("remote_bash: profile '" + name + "' is not allowed on " + host_name +
                       ": its configured profile '" + ceiling + "' (" + where +
                       ") is a ceiling, and a call may only pick a profile at least as strict on every setting "
                       "(restrictive > standard > permissive). To let calls pick '" +
                       name + "', list it in the config's \"allowed_profiles\" (or the host's " +
                       "hosts[].allowed_profiles); or omit profile to run under '" + ceiling + "'.");
}

std::string ProfileRunner::probe(exec::Host& host) {
  std::string problem;
  const sandbox::HostSupport support = probe_support(host, problem);
  if (problem.empty() && !support.seccomp) {
    problem = sandbox::seccomp_problem(support, host.name());
  }
  return problem.empty() ? "ok" : problem;
}

sandbox::HostSupport ProfileRunner::probe_support(exec::Host& host, std::string& problem) {
  auto x = host.executor();
  if (!x) {
    problem = "this host cannot run bubblewrap";
    return {};
  }
  exec::RemoteCommand c;
  c.argv = sandbox::bwrap_probe_argv(m_settings.bwrap, host.name().rfind("sandbox:", 0) == 0);
  c.what = "checking bubblewrap";
  exec::RemoteResult r;
  try {
    r = x->run(c, std::chrono::seconds(30));
  } catch (const exec::HostError& e) {
    if (e.kind() != exec::HostError::Kind::not_found) {
      throw;
    }
    r.exit_status = 127;
    r.err = e.what();
  }
  const int status = r.exit_status.value_or(r.exit_signal ? 128 + *r.exit_signal : -1);
  if (status != 0) {
    problem = sandbox::bwrap_problem(status, r.err, host.name());
    return {};
  }
  sandbox::HostSupport support = sandbox::parse_probe(r.out);
  if (!support.seccomp) {
    support.seccomp_error = r.err;
  }
  return support;
}

void ProfileRunner::check(exec::Host& host) {
  {
    std::lock_guard lock(m_mutex);
    if (m_works.count(host.name())) {
      return;
    }
  }
  std::string problem;
  sandbox::HostSupport support = probe_support(host, problem);
  if (!problem.empty()) {
    throw mcp::ToolError("remote_bash: cannot confine the command: " + problem);
  }
  // What killed runs left behind (a SIGKILLed launcher cannot delete its work directory): once
  // per host and server, best effort.
  try {
    exec::RemoteCommand sweep;
    sweep.argv = sandbox::sweep_argv(m_settings.work_root);
    sweep.what = "sweeping stale profile work directories";
    host.executor()->run(sweep, std::chrono::seconds(60));
  } catch (const exec::HostError&) {
  }
  std::lock_guard lock(m_mutex);
  m_works[host.name()] = support;
}

std::string ProfileRunner::apply(const sandbox::Profile& profile, exec::CommandSpec& spec, exec::Host& host) {
  sandbox::HostSupport support;
  {
    std::lock_guard lock(m_mutex);
    support = m_works[host.name()];
  }
  if (!profile.unix_sockets && !support.seccomp) {
    // Fails closed: the filter is what keeps sockets the command can see (under its cwd, abstract
    // ones) from running code outside.
    throw mcp::ToolError("remote_bash: profile '" + profile.name +
                         "' cannot confine the command: " + sandbox::seccomp_problem(support, host.name()));
  }
  if (!spec.cwd.empty() && !support.fd_binds) {
    throw mcp::ToolError("remote_bash: a cwd under a profile needs bubblewrap with --ro-bind-fd (0.5 or later) on " +
                         host.name() +
                         ", which binds exactly the directory checked; update bubblewrap there, or "
                         "omit cwd (the command then starts in its work directory /work)");
  }
  std::string encoded;
  try {
    encoded = sandbox::encode_env(spec.env);
  } catch (const std::invalid_argument& e) {
    throw mcp::InvalidArgument("env", e.what());
  }
  if (encoded.size() > k_max_encoded_env) { // one variable of the launcher's: the kernel takes 128 KiB
    throw mcp::InvalidArgument("env", "the environment is too large for a profiled command (" +
                                          std::to_string(encoded.size()) + " bytes once encoded, at most " +
                                          std::to_string(k_max_encoded_env) + ")");
  }
  static std::atomic<unsigned> counter{0};
  std::random_device rd;
  std::string work = m_settings.work_root + "/exec-" +
                     std::to_string(std::chrono::system_clock::now().time_since_epoch().count() / 1000000) + "-" +
                     std::to_string(rd() % 100000) + "-" + std::to_string(counter++);
  // A cwd must not hold the server's own state: its jobs (and, on this machine, the state
  // directory they are in and the config file).
  std::vector<std::string> protect = {host.jobs_root()};
  if (host.name() == "local") {
    const std::string& jobs = protect.front();
    protect.push_back(jobs.substr(0, jobs.rfind('/')));
    protect.insert(protect.end(), m_settings.local_protected.begin(), m_settings.local_protected.end());
  }
  protect.erase(
      std::remove_if(protect.begin(), protect.end(),
                     [](const std::string& p) { return p.empty() || (p[0] != '/' && p.rfind("~/", 0) != 0); }),
      protect.end());
  std::vector<std::string> launcher =
      sandbox::profile_launcher(profile, m_settings.bwrap, work, !spec.cwd.empty(), support, protect);
  launcher.insert(launcher.end(), spec.launcher.begin(), spec.launcher.end());
  spec.launcher = std::move(launcher);
  // The host sets one variable for the launcher, which hands the values to bwrap through a file:
  // the launcher itself runs with the host's own environment.
  spec.env.clear();
  if (!encoded.empty()) {
    spec.env.emplace_back(sandbox::k_env_variable, std::move(encoded));
  }
  return work;
}

ProfileRunner::Slot::Slot(ProfileRunner& r, const std::function<void(const std::string&)>& waiting) : m_runner(r) {
  std::unique_lock lock(r.m_mutex);
  const int max = r.m_settings.max_concurrent;
  if (max > 0 && r.m_running >= max && waiting) {
    waiting("queued: " + std::to_string(r.m_running) +
            " confined commands are running (SANDBOX_MAX_CONCURRENT=" + std::to_string(max) + ")");
  }
  r.m_cv.wait(lock, [&] { return max <= 0 || r.m_running < max; });
  ++r.m_running;
}

ProfileRunner::Slot::~Slot() {
  std::lock_guard lock(m_runner.m_mutex);
  --m_runner.m_running;
  m_runner.m_cv.notify_all();
}

} // namespace smcp::tools
