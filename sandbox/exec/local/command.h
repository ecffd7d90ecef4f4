// What LocalHost prepares before it forks a supervisor: the program, argv and environment of a
// command (`launcher... SHELL -c COMMAND`), in arrays that stay valid until the supervisor is
// started, and the check that the working directory exists.
#pragma once

#include "sandbox/exec/fd.h"
#include "sandbox/exec/host.h"
#include "sandbox/exec/spawn.h"

#include <string>
#include <utility>
#include <vector>

namespace smcp::exec {

struct LocalCommand {
  LocalCommand(const CommandSpec& spec, const std::string& shell,
               const std::vector<std::pair<std::string, std::string>>& extra_env = {});
  std::string program; // what to execute: the launcher's first word (found in PATH), or the shell
  CStrings argv;
  CStrings envp; // the server's environment with spec.env (and `extra_env`) over it
};

// Throws HostError (invalid) when `cwd` is given and is not an existing directory.
void check_cwd(const std::string& cwd);

std::string errno_text(int err);

// A pipe (both ends close-on-exec); throws HostError (io) when none can be made.
Pipe make_pipe();

} // namespace smcp::exec
