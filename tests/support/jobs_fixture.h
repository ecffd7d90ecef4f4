// The fixture of the job manager tests: a JobManager (made on first use, so a test can change
// its options first) over a FakeHost named "fake" and a real SQLite store in a temporary
// directory, with helpers to read output and run commands.
#pragma once

#include "tests/support/fake_host.h"
#include "tests/support/test_tools.h"
#include "tools/jobs/jobs.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace smcp::testing {

using namespace std::chrono_literals;

class JobsTest : public ::testing::Test {
protected:
  using HostRegistry = tools::HostRegistry;
  using JobManager = tools::JobManager;
  using JobOptions = tools::JobOptions;
  using OutputAnswer = tools::OutputAnswer;
  using OutputQuery = tools::OutputQuery;
  using Regex = tools::Regex;

  void SetUp() override {
    dir = std::filesystem::temp_directory_path() / ("smcp-jobs-" + std::to_string(::getpid()) + "-" +
                                                    ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    store = state::open_sqlite_store((dir / "state.db").string());
    host = std::make_shared<FakeHost>("fake");
    hosts.add(host);
    hosts.set_default("fake");
    options = quick_job_options((dir / "spill").string());
    options.progress_interval = 20ms;
    options.first_progress_after = 0ms;
  }
  void TearDown() override {
    jobs.reset();
    store.reset();
    std::filesystem::remove_all(dir);
  }
  JobManager& manager() {
    if (!jobs) {
      jobs = std::make_unique<JobManager>(hosts, *store, options);
    }
    return *jobs;
  }
  OutputAnswer read(const std::string& id, const Regex* filter = nullptr, const Regex* until = nullptr,
                    std::chrono::milliseconds wait = 0ms) {
    OutputQuery q;
    q.bash_id = id;
    q.filter = filter;
    q.until = until;
    q.wait = wait;
    return manager().output(q, std::stop_token());
  }
  exec::CommandSpec spec(const std::string& command) {
    exec::CommandSpec s;
    s.command = command;
    return s;
  }

  std::filesystem::path dir;
  std::unique_ptr<state::StateStore> store;
  std::shared_ptr<FakeHost> host;
  HostRegistry hosts;
  JobOptions options;
  std::unique_ptr<JobManager> jobs;
  // The progress lines of a foreground command that runs for `runs_for` (promotion far away).
  std::vector<std::string> progress_of_a_run(std::chrono::milliseconds runs_for) {
    options.promote_after = 5s;
    host->block_until_released = true;
    host->run_output = {{exec::Stream::out, "epoch 1 loss 0.5\n"}};
    std::vector<std::string> lines;
    std::thread releaser([&] {
      std::this_thread::sleep_for(runs_for);
      host->release();
    });
    manager().run(
        "", spec("train"), "", [&](const std::string& l) { lines.push_back(l); }, std::stop_token());
    releaser.join();
    return lines;
  }
};

} // namespace smcp::testing
