#include "sandbox/exec/spawn.h"

#include <csignal>
#include <fcntl.h>
#include <utility>

namespace smcp::exec {

CStrings::CStrings(std::vector<std::string> items) : m_items(std::move(items)) {
  for (auto& s : m_items) {
    m_ptrs.push_back(s.data());
  }
  m_ptrs.push_back(nullptr);
}

SpawnSetup::SpawnSetup(bool new_session) {
  posix_spawn_file_actions_init(&m_actions);
  posix_spawnattr_init(&m_attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&m_attr, &none);
  posix_spawnattr_setsigdefault(&m_attr, &all);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  if (new_session) {
    flags |= POSIX_SPAWN_SETSID;
  }
  posix_spawnattr_setflags(&m_attr, flags);
}

SpawnSetup::~SpawnSetup() {
  posix_spawn_file_actions_destroy(&m_actions);
  posix_spawnattr_destroy(&m_attr);
}

SpawnSetup& SpawnSetup::stdin_from_null() {
  posix_spawn_file_actions_addopen(&m_actions, 0, "/dev/null", O_RDONLY, 0);
  return *this;
}

SpawnSetup& SpawnSetup::dup_to(int fd, int target) {
  posix_spawn_file_actions_adddup2(&m_actions, fd, target);
  return *this;
}

SpawnSetup& SpawnSetup::chdir(const std::string& dir) {
  posix_spawn_file_actions_addchdir_np(&m_actions, dir.c_str());
  return *this;
}

SpawnSetup& SpawnSetup::close_from(int lowest_fd) {
  posix_spawn_file_actions_addclosefrom_np(&m_actions, lowest_fd);
  return *this;
}

int SpawnSetup::spawn(pid_t& pid, const char* program, char* const* argv, char* const* envp, bool search_path) {
  return search_path ? ::posix_spawnp(&pid, program, &m_actions, &m_attr, argv, envp)
                     : ::posix_spawn(&pid, program, &m_actions, &m_attr, argv, envp);
}

} // namespace smcp::exec
