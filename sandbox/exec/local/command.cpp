#include "sandbox/exec/local/command.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <sys/stat.h>
#include <unistd.h>

extern char** environ;

namespace smcp::exec {

namespace {

std::vector<std::string> build_env(const std::vector<std::pair<std::string, std::string>>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string_view entry(*e);
    auto eq = entry.find('=');
    std::string_view key = entry.substr(0, eq);
    bool overridden = std::any_of(extra.begin(), extra.end(), [&](const auto& kv) { return kv.first == key; });
    if (!overridden) {
      env.emplace_back(entry);
    }
  }
  for (const auto& [k, v] : extra) {
    env.push_back(k + "=" + v);
  }
  return env;
}

// `name` as the server's PATH finds it (an executable regular file); `name` itself when it has a
// slash or is not found (then executing it fails and the command reports exit status 127).
std::string find_program(const std::string& name) {
  if (name.find('/') != std::string::npos) {
    return name;
  }
  const char* path = std::getenv("PATH");
  std::string_view dirs = path && *path ? path : "/usr/local/bin:/usr/bin:/bin";
  while (!dirs.empty()) {
    auto colon = dirs.find(':');
    std::string dir(dirs.substr(0, colon));
    dirs = colon == std::string_view::npos ? std::string_view() : dirs.substr(colon + 1);
    std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
  }
  return name;
}

std::vector<std::string> command_argv(const CommandSpec& spec, const std::string& shell) {
  std::vector<std::string> argv = spec.launcher;
  argv.insert(argv.end(), {shell, "-c", spec.command});
  return argv;
}

std::vector<std::pair<std::string, std::string>> joined(std::vector<std::pair<std::string, std::string>> env,
                                                        const std::vector<std::pair<std::string, std::string>>& more) {
  env.insert(env.end(), more.begin(), more.end());
  return env;
}

} // namespace

LocalCommand::LocalCommand(const CommandSpec& spec, const std::string& shell,
                           const std::vector<std::pair<std::string, std::string>>& extra_env)
    : program(spec.launcher.empty() ? shell : find_program(spec.launcher.front())), argv(command_argv(spec, shell)),
      envp(build_env(joined(spec.env, extra_env))) {}

void check_cwd(const std::string& cwd) {
  if (cwd.empty()) {
    return;
  }
  struct stat st {};
  if (::stat(cwd.c_str(), &st) != 0) {
    throw HostError(HostError::Kind::invalid,
                    "working directory " + cwd + " does not exist (" + errno_text(errno) + ")");
  }
  if (!S_ISDIR(st.st_mode)) {
    throw HostError(HostError::Kind::invalid, "working directory " + cwd + " is not a directory");
  }
}

std::string errno_text(int err) {
  return std::strerror(err);
}

Pipe make_pipe() {
  Pipe p;
  if (!open_pipe(p)) {
    throw HostError(HostError::Kind::io, "pipe: " + errno_text(errno));
  }
  return p;
}

} // namespace smcp::exec
