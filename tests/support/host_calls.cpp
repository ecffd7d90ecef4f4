#include "tests/support/host_calls.h"

#include <exception>
#include <thread>

namespace smcp::testing {

CapturedRun run_captured(exec::Host& host, const exec::CommandSpec& spec) {
  CapturedOutput c;
  CapturedRun r;
  r.info = host.run(spec, c, {});
  r.out = c.out;
  r.err = c.err;
  return r;
}

CapturedRun run_command(exec::Host& host, const std::string& command, std::chrono::milliseconds timeout) {
  exec::CommandSpec spec;
  spec.command = command;
  spec.timeout = timeout;
  return run_captured(host, spec);
}

std::string host_error_of(const std::function<void()>& f, exec::HostError::Kind* kind) {
  try {
    f();
  } catch (const exec::HostError& e) {
    if (kind) {
      *kind = e.kind();
    }
    return e.what();
  }
  return "(no error)";
}

std::vector<std::string> run_in_parallel(int n, const std::function<std::string(int)>& body) {
  std::vector<std::string> reports(static_cast<std::size_t>(n));
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      try {
        reports[static_cast<std::size_t>(i)] = body(i);
      } catch (const std::exception& e) {
        reports[static_cast<std::size_t>(i)] = e.what();
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  return reports;
}

} // namespace smcp::testing
