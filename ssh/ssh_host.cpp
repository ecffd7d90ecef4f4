#include "ssh/ssh_host.h"

#include "sandbox/exec/helper_executor.h"

#include <spdlog/spdlog.h>

#include <mutex>

namespace smcp::ssh {

namespace {

// Resolves the alias and makes the pool on the first call; until then (or when resolution
// failed) status() reports the configured limits and the resolution error.
class LazySshExecutor final : public exec::RemoteExecutor {
public:
  explicit LazySshExecutor(SshHostOptions options) : m_options(std::move(options)) {}

  std::shared_ptr<exec::RemoteCall> start(exec::RemoteCommand command) override {
    exec::argv_to_exec(command); // SSH carries one string, run by the remote login shell
    return pool()->start(std::move(command));
  }

  exec::HostStatus status() const override {
    std::lock_guard lock(m_mutex);
    if (m_pool) {
      return m_pool->status();
    }
    exec::HostStatus st;
    st.kind = "ssh";
    st.has_connection = true;
    st.state = m_resolve_error.empty() ? "idle" : "error";
    st.last_error = m_resolve_error;
    st.last_error_at_ms = m_resolve_error_at;
    st.max_sessions = m_options.limits.max_sessions;
    st.max_channels_per_session = m_options.limits.max_channels_per_session;
    st.max_concurrency = m_options.limits.max_concurrency;
    st.host_key_policy = policy_name(m_options.host_key_policy);
    return st;
  }

private:
  std::shared_ptr<SshPool> pool() {
    std::lock_guard lock(m_mutex);
    if (m_pool) {
      return m_pool;
    }
    try {
      PoolOptions po;
      po.name = m_options.name;
      po.target = resolve_target(m_options.name, m_options.resolve);
      po.host_key_policy = m_options.host_key_policy;
      po.passphrase = m_options.passphrase;
      po.limits = m_options.limits;
      std::string via;
      for (const auto& j : po.target.jumps) {
        via += " via " + j.alias;
      }
      spdlog::info("ssh host {}: {}{}", m_options.name, po.target.endpoint(), via);
      m_pool = std::make_shared<SshPool>(std::move(po));
      m_resolve_error.clear();
    } catch (const exec::HostError& e) {
      m_resolve_error = e.what();
      m_resolve_error_at =
          std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
              .count();
      throw;
    }
    return m_pool;
  }

  const SshHostOptions m_options;
  mutable std::mutex m_mutex;
  std::shared_ptr<SshPool> m_pool;
  std::string m_resolve_error;
  std::int64_t m_resolve_error_at = 0;
};

} // namespace

std::optional<ShellEnv> parse_shell_env(const std::string& text) {
  if (text == "snapshot") {
    return ShellEnv::snapshot;
  }
  if (text == "skip") {
    return ShellEnv::skip;
  }
  if (text == "source") {
    return ShellEnv::source;
  }
  return std::nullopt;
}

std::shared_ptr<exec::Host> make_ssh_host(SshHostOptions options) {
  std::shared_ptr<exec::RemoteExecutor> executor = std::make_shared<LazySshExecutor>(options);
  // Without the helper (and when it cannot run), "skip" keeps the command's bash from sourcing
  // ~/.bashrc a second time.
  options.skip_command_bashrc = options.shell_env == ShellEnv::skip;
  if (options.shell_env != ShellEnv::source) {
    exec::HelperOptions ho;
    ho.name = options.name;
    ho.snapshot = options.shell_env == ShellEnv::snapshot;
    executor = exec::make_helper_executor(std::move(executor), std::move(ho));
  }
  return exec::make_script_host(std::move(options), std::move(executor));
}

} // namespace smcp::ssh
