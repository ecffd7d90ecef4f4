// Calling an exec::Host from tests: a foreground run with its output captured, a HostError as
// text, and many calls at once.
#pragma once

#include "sandbox/exec/host.h"

#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace smcp::testing {

// An OutputSink that keeps both streams.
struct CapturedOutput final : exec::OutputSink {
  std::mutex m;
  std::string out, err;
  void on_output(exec::Stream s, std::string_view d) override {
    std::lock_guard lock(m);
    (s == exec::Stream::out ? out : err).append(d);
  }
};

struct CapturedRun {
  exec::ExitInfo info;
  std::string out, err;
};

// Runs `spec` in the foreground on `host`; its exit and output.
CapturedRun run_captured(exec::Host& host, const exec::CommandSpec& spec);
// Runs `command` in the foreground on `host`, with `timeout`.
CapturedRun run_command(exec::Host& host, const std::string& command, std::chrono::milliseconds timeout);

// Runs `f`: the message of the exec::HostError it throws, its kind in `kind`; "(no error)" when
// it throws none.
std::string host_error_of(const std::function<void()>& f, exec::HostError::Kind* kind = nullptr);

// Runs body(0) .. body(n - 1) on n threads at once; what each reported ("" for nothing): the text
// body returned, or the message of the exception it threw.
std::vector<std::string> run_in_parallel(int n, const std::function<std::string(int)>& body);

} // namespace smcp::testing
