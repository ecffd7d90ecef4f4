// How much of a command's output an executor keeps when it collects it (RemoteCommand without
// on_output, as RemoteExecutor::run and sandbox::run_argv use it): the head of each stream, up to
// k_max_captured_output bytes, then a note saying it was cut. The executor keeps reading the rest
// and drops it, so the command never blocks on a full pipe and memory stays bounded whatever a
// program (or a git fsmonitor in a sandbox) writes.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace smcp::exec {

constexpr std::size_t k_max_captured_output = 16 * 1024 * 1024; // per stream
constexpr std::string_view k_output_cut_note =
    "\n[sandbox-mcp: output cut here; only the first 16 MiB of this stream were kept, the rest was read and "
    "dropped]\n";

// Appends `data` to `to`, one stream's collected output, keeping at most `limit` bytes of it; the
// first time it is cut, the note ends `to`, which then takes nothing more (its size is over the
// limit only then).
inline void append_captured(std::string& to, std::string_view data, std::size_t limit = k_max_captured_output) {
  if (to.size() > limit) {
    return;
  }
  if (data.size() <= limit - to.size()) {
    to.append(data);
    return;
  }
  to.append(data.substr(0, limit - to.size()));
  to.append(k_output_cut_note);
}

} // namespace smcp::exec
