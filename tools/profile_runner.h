// How remote_bash confines a command with a bubblewrap profile (sandbox/bwrap/profiles.h): which
// profile applies (the call's, else the host's default, else SANDBOX_DEFAULT_PROFILE), whether
// bwrap works on that host (checked once per host; a failure is re-checked on the next call and is
// an error naming the fix, never an unconfined run), the launcher, and SANDBOX_MAX_CONCURRENT.
#pragma once

#include "sandbox/bwrap/profiles.h"
#include "sandbox/exec/host.h"

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>

namespace smcp::tools {

class ProfileRunner {
public:
  explicit ProfileRunner(sandbox::ProfileSettings settings);

  // The profile a call runs under, or null for none; throws mcp::InvalidArgument for an unknown name.
  const sandbox::Profile* resolve(const std::string& requested, const std::string& host_name) const;
  // Throws mcp::ToolError when bwrap or prlimit cannot confine commands on `host`.
  void check(exec::Host& host);
  // Sets spec.launcher; returns the execution's work directory on the host.
  std::string apply(const sandbox::Profile& profile, exec::CommandSpec& spec);
  // What remote_hosts reports: "ok", or the problem.
  std::string probe(exec::Host& host);

  // A slot among SANDBOX_MAX_CONCURRENT profiled runs; `waiting` is told when the call queues.
  class Slot {
  public:
    Slot(ProfileRunner& r, const std::function<void(const std::string&)>& waiting);
    ~Slot();
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;

  private:
    ProfileRunner& m_runner;
  };

  const sandbox::ProfileSettings& settings() const { return m_settings; }

private:
  sandbox::ProfileSettings m_settings;
  std::mutex m_mutex;
  std::condition_variable m_cv;
  int m_running = 0;
  std::map<std::string, bool> m_works; // host -> bwrap checked and working
};

} // namespace smcp::tools
