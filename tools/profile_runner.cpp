#include "tools/profile_runner.h"

#include "mcp-server/core/tool.h"
#include "sandbox/exec/remote_executor.h"

#include <atomic>
#include <chrono>
#include <random>

namespace smcp::tools {

ProfileRunner::ProfileRunner(sandbox::ProfileSettings settings) : m_settings(std::move(settings)) {}

const sandbox::Profile* ProfileRunner::resolve(const std::string& requested, const std::string& host_name) const {
  std::string name = requested;
  if (name.empty()) {
    auto it = m_settings.host_default.find(host_name);
    name = it != m_settings.host_default.end() ? it->second : m_settings.default_profile;
  }
  if (name.empty()) {
    return nullptr;
  }
  auto it = m_settings.profiles.find(name);
  if (it == m_settings.profiles.end()) {
    std::string known;
    for (const auto& [n, p] : m_settings.profiles) {
      known += (known.empty() ? "" : ", ") + n;
    }
    throw mcp::InvalidArgument("profile", "unknown profile '" + name + "'; profiles: " + known);
  }
  return &it->second;
}

std::string ProfileRunner::probe(exec::Host& host) {
  auto x = host.executor();
  if (!x) {
    return "this host cannot run bubblewrap";
  }
  exec::RemoteCommand c;
  c.argv = sandbox::bwrap_probe_argv(m_settings.bwrap);
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
  int status = r.exit_status.value_or(r.exit_signal ? 128 + *r.exit_signal : -1);
  if (status == 0) {
    exec::RemoteCommand p;
    p.argv = {"prlimit", "--version"};
    p.what = "checking prlimit";
    try {
      if (x->run(p, std::chrono::seconds(30)).exit_status.value_or(1) != 0) {
        return "prlimit (util-linux) does not work on " + host.name() + ": apt-get install util-linux";
      }
    } catch (const exec::HostError& e) {
      return "prlimit (util-linux) is not installed on " + host.name() + ": apt-get install util-linux";
    }
    return "ok";
  }
  return sandbox::bwrap_problem(status, r.err, host.name());
}

void ProfileRunner::check(exec::Host& host) {
  {
    std::lock_guard lock(m_mutex);
    if (m_works[host.name()]) {
      return;
    }
  }
  std::string result = probe(host);
  if (result != "ok") {
    throw mcp::ToolError("remote_bash: cannot confine the command: " + result);
  }
  std::lock_guard lock(m_mutex);
  m_works[host.name()] = true;
}

std::string ProfileRunner::apply(const sandbox::Profile& profile, exec::CommandSpec& spec) {
  static std::atomic<unsigned> counter{0};
  std::random_device rd;
  const std::string work = m_settings.work_root + "/exec-" +
                           std::to_string(std::chrono::system_clock::now().time_since_epoch().count() / 1000000) + "-" +
                           std::to_string(rd() % 100000) + "-" + std::to_string(counter++);
  std::vector<std::string> launcher = sandbox::profile_launcher(profile, m_settings.bwrap, work, spec.cwd, spec.env);
  launcher.insert(launcher.end(), spec.launcher.begin(), spec.launcher.end());
  spec.launcher = std::move(launcher);
  spec.env.clear(); // set inside bwrap only: the launcher runs with the host's own environment
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
