// How sandbox-mcp starts a child process, in one place: posix_spawn with every signal reset to its
// default and none blocked (the server ignores SIGPIPE, which a child would otherwise inherit),
// optionally in a new session so its whole tree can be ended; plus the file actions. RAII.
#pragma once

#include <spawn.h>
#include <string>
#include <sys/types.h>
#include <vector>

namespace smcp::exec {

// argv/envp arrays for execve and posix_spawn, valid while the object lives.
class CStrings {
public:
  explicit CStrings(std::vector<std::string> items);
  CStrings(const CStrings&) = delete;
  CStrings& operator=(const CStrings&) = delete;
  char* const* get() { return m_ptrs.data(); }

private:
  std::vector<std::string> m_items;
  std::vector<char*> m_ptrs;
};

class SpawnSetup {
public:
  explicit SpawnSetup(bool new_session);
  ~SpawnSetup();
  SpawnSetup(const SpawnSetup&) = delete;
  SpawnSetup& operator=(const SpawnSetup&) = delete;

  SpawnSetup& stdin_from_null();
  SpawnSetup& dup_to(int fd, int target);
  SpawnSetup& chdir(const std::string& dir); // `dir` must outlive spawn()
  SpawnSetup& close_from(int lowest_fd);

  // posix_spawn (search_path: posix_spawnp); 0 or an errno value.
  int spawn(pid_t& pid, const char* program, char* const* argv, char* const* envp, bool search_path = false);

private:
  posix_spawn_file_actions_t m_actions;
  posix_spawnattr_t m_attr;
};

} // namespace smcp::exec
