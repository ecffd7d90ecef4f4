// Windows of lines of a text file on this machine (LocalHost::read_file): a cost proportional to
// the window, not the file (the tail of a 2 GB log reads only the tail). ScriptHost's remote
// script (sandbox/exec/remote_scripts.cpp) answers the same requests line for line.
#pragma once

#include "sandbox/exec/host.h"

#include <cstdint>

namespace smcp::exec {

// Throws HostError: not_found, refused (permission), invalid (directory, device, binary file), io.
FileWindow read_file_window(const FileReadRequest& request, std::uint64_t count_lines_below);

} // namespace smcp::exec
