#include "tools/jobs/hosts.h"

#include <stdexcept>

namespace smcp::tools {

void HostRegistry::add(std::shared_ptr<exec::Host> host) {
  std::lock_guard lock(m_mutex);
  auto name = host->name();
  m_hosts[name] = std::move(host);
}

void HostRegistry::remove(const std::string& name) {
  std::lock_guard lock(m_mutex);
  m_hosts.erase(name);
}

void HostRegistry::set_default(std::string name) {
  std::lock_guard lock(m_mutex);
  m_default = std::move(name);
}

void HostRegistry::set_factory(Factory factory) {
  std::lock_guard lock(m_mutex);
  m_factory = std::move(factory);
}

std::shared_ptr<exec::Host> HostRegistry::get(const std::string& requested) {
  std::unique_lock lock(m_mutex);
  const std::string name = requested.empty() ? m_default : requested;
  if (auto it = m_hosts.find(name); it != m_hosts.end()) {
    return it->second;
  }
  if (m_factory) {
    auto factory = m_factory;
    lock.unlock();
    auto host = factory(name); // may be slow (ssh -G); not under the lock
    lock.lock();
    if (host) {
      auto [it, inserted] = m_hosts.emplace(name, host);
      return it->second;
    }
  }
  std::string known;
  for (const auto& [n, h] : m_hosts) {
    known += (known.empty() ? "" : ", ") + n;
  }
  throw std::out_of_range("unknown host '" + name + "'; known hosts: " + known +
                          ". Add it to ~/.ssh/config or the sandbox-mcp config file.");
}

std::string HostRegistry::default_name() const {
  std::lock_guard lock(m_mutex);
  return m_default;
}

std::vector<std::string> HostRegistry::names() const {
  std::lock_guard lock(m_mutex);
  std::vector<std::string> out;
  for (const auto& [n, h] : m_hosts) {
    out.push_back(n);
  }
  return out;
}

} // namespace smcp::tools
