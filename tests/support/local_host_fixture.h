// The fixture of the local host tests (tests/integration/local_*_test.cpp): a fresh directory per
// test, a LocalHost with a short kill grace whose jobs live below it, and helpers to run commands,
// start jobs and wait for processes.
#pragma once

#include "sandbox/exec/local_host.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <vector>

namespace smcp::testing {

// An empty directory of its own for the running test: /tmp/PREFIX-PID-TESTNAME.
std::filesystem::path fresh_test_dir(const std::string& prefix);

// Collects a foreground command's output.
class Collect : public exec::OutputSink {
public:
  void on_output(exec::Stream s, std::string_view d) override;
  std::mutex m;
  std::string out, err;
};

class LocalHostFixture : public ::testing::Test {
protected:
  void SetUp() override;
  void TearDown() override;

  exec::ExitInfo run(const std::string& command, Collect& c,
                     std::chrono::milliseconds timeout = std::chrono::seconds(10), std::stop_token stop = {});
  // Runs `command` (10 s timeout) and expects it to return within `limit`.
  exec::ExitInfo run_within(const std::string& command, Collect& c, std::chrono::milliseconds limit);
  // Runs `command` without a timeout and requests a stop after `delay`.
  exec::ExitInfo run_stopped_after(const std::string& command, std::chrono::milliseconds delay, Collect& c);
  // Starts a durable job named NAME_PID in the fixture's jobs directory.
  exec::JobRef start(const exec::CommandSpec& spec, const std::string& name);
  // Starts a job running `command` and waits until a process runs for each of `processes`.
  exec::JobRef start_and_wait_for(const std::string& command, const std::string& name,
                                  const std::vector<std::string>& processes);
  exec::JobState wait_for_end(const exec::JobRef& ref, std::chrono::milliseconds limit = std::chrono::seconds(10));

  std::filesystem::path dir;
  std::shared_ptr<exec::Host> host;
};

} // namespace smcp::testing
