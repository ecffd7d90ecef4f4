// Running one program on a sandbox's host through its executor, with its outcome made plain.
#pragma once

#include "mcp-server/base/text.h"
#include "sandbox/exec/remote_executor.h"

#include <chrono>
#include <string>
#include <vector>

namespace smcp::sandbox {

struct CommandOutcome {
  int status = -1; // exit status; -1 when a signal ended it; 127 when the program is not installed
  std::string out;
  std::string err;
  bool ok() const { return status == 0; }
  // stderr (else stdout), trimmed and cut to a few hundred bytes, for messages.
  std::string message() const;
};

// Runs `argv` (never through a local shell); throws exec::HostError when the host cannot be
// reached or the call timed out. A program that is not installed gives status 127.
CommandOutcome run_argv(exec::RemoteExecutor& x, const std::vector<std::string>& argv,
                        std::chrono::milliseconds timeout, const std::string& input = {});

// A step failed on the host: throws SandboxError (Kind::failed) with `message`.
[[noreturn]] void step_failed(const std::string& message);

// How long a short step (a check, a listing, a removal) may take on a host.
constexpr std::chrono::milliseconds k_quick_step{60000};

using text::trim;
// The non-blank lines of a program's output, trimmed.
std::vector<std::string> lines_of(const std::string& text);
// Whether `text` contains `what` (lower case), ignoring case: for the runtimes' error messages.
bool mentions(const std::string& text, const char* what);
std::string join(const std::vector<std::string>& words, const char* separator);
// The argv as a human would type it (each word shell-quoted when needed), for messages and attach.
std::string display_command(const std::vector<std::string>& argv);

} // namespace smcp::sandbox
