// How remote_bash confines a command with a bubblewrap profile (sandbox/bwrap/profiles.h): which
// profile applies (the host's configured one, else SANDBOX_DEFAULT_PROFILE, is a ceiling a call
// cannot weaken: it may name one at least as strict, or one the config's allowed_profiles lists),
// whether bwrap works on that host and how (checked once per host, with a sweep of the work
// directories killed runs left; a failure is re-checked on the next call and is an error naming
// the fix, never an unconfined run), the launcher, and SANDBOX_MAX_CONCURRENT.
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

  // The profile a call runs under, or null for none; throws mcp::InvalidArgument for an unknown
  // name and mcp::ToolError for one weaker than (or not comparable to) the host's ceiling.
  const sandbox::Profile* resolve(const std::string& requested, const std::string& host_name) const;
  // Throws mcp::ToolError when bwrap or prlimit cannot confine commands on `host`.
  void check(exec::Host& host);
  // Sets spec.launcher and moves spec.env into it (sandbox::encode_env); returns the execution's
  // work directory on the host. Throws mcp::ToolError when the host's bwrap cannot bind a cwd,
  // mcp::InvalidArgument for an environment variable a profile cannot take. After check(host).
  std::string apply(const sandbox::Profile& profile, exec::CommandSpec& spec, exec::Host& host);
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
  // The probe's answer; `problem` is set (and the answer empty) when profiles cannot run there.
  sandbox::HostSupport probe_support(exec::Host& host, std::string& problem);

  sandbox::ProfileSettings m_settings;
  std::mutex m_mutex;
  std::condition_variable m_cv;
  int m_running = 0;
  std::map<std::string, sandbox::HostSupport> m_works; // host -> bwrap checked and working, and how
};

} // namespace smcp::tools
