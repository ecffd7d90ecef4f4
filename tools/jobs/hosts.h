// The hosts the tools can reach, by the name the agent uses ("local", an ssh alias). The default
// host is "local" unless configured (SSH_HOST). Unknown names may be created on demand by a
// factory (the SSH layer resolves any alias the user's ssh config knows).
#pragma once

#include "sandbox/exec/host.h"

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace smcp::tools {

class HostRegistry {
public:
  using Factory = std::function<std::shared_ptr<exec::Host>(const std::string& name)>;

  void add(std::shared_ptr<exec::Host> host);
  void set_default(std::string name);
  // Forgets a host made by the factory (a removed sandbox); the next get() makes it again.
  void remove(const std::string& name);
  // Called for names that are not registered; returns null when the name is not a host.
  void set_factory(Factory factory);

  // `name` empty: the default host. Throws std::out_of_range with a message listing known hosts.
  std::shared_ptr<exec::Host> get(const std::string& name);
  std::string default_name() const;
  std::vector<std::string> names() const;

private:
  mutable std::mutex m_mutex;
  std::map<std::string, std::shared_ptr<exec::Host>> m_hosts;
  std::string m_default = "local";
  Factory m_factory;
};

} // namespace smcp::tools
