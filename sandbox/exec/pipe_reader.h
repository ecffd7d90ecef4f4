// Reading a pipe on an EventLoop until its end: what every caller that follows a child's output
// does (LocalHost's foreground runs, run_process, the tests' local shell executor).
#pragma once

#include "sandbox/exec/event_loop.h"
#include "sandbox/exec/fd.h"

#include <functional>
#include <memory>
#include <string_view>

namespace smcp::exec {

// Owns the descriptor. Each chunk read goes to `on_data` as it arrives (on the loop's thread);
// at end of file or on a read error the descriptor is closed, then `on_end` runs once. The
// callbacks may close() this reader, but not destroy it.
class PipeReader {
public:
  PipeReader(EventLoop& loop, UniqueFd fd, std::function<void(std::string_view)> on_data,
             std::function<void()> on_end = {});
  ~PipeReader();
  PipeReader(const PipeReader&) = delete;
  PipeReader& operator=(const PipeReader&) = delete;

  bool open() const { return static_cast<bool>(m_fd); } // its end was not reached (or close()d) yet
  void close();                                         // stops reading and closes the descriptor

private:
  void arm();

  UniqueFd m_fd;
  std::unique_ptr<EventLoop::Watch> m_watch;
  std::function<void(std::string_view)> m_on_data;
  std::function<void()> m_on_end;
};

} // namespace smcp::exec
