#include "tests/support/local_host_fixture.h"

#include "tests/support/processes.h"

#include <algorithm>
#include <thread>
#include <unistd.h>

namespace smcp::testing {

using namespace std::chrono_literals;

std::filesystem::path fresh_test_dir(const std::string& prefix) {
  const std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  auto path = std::filesystem::temp_directory_path() / (prefix + "-" + std::to_string(::getpid()) + "-" + test);
  std::filesystem::remove_all(path);
  std::filesystem::create_directories(path);
  return path;
}

void Collect::on_output(exec::Stream s, std::string_view d) {
  std::lock_guard lock(m);
  (s == exec::Stream::out ? out : err).append(d);
}

void LocalHostFixture::SetUp() {
  dir = fresh_test_dir("smcp-local");
  exec::LocalHostOptions o;
  o.jobs_root = (dir / "jobs").string();
  o.kill_grace = 500ms;
  host = exec::make_local_host(o);
}

void LocalHostFixture::TearDown() {
  // A supervisor may still be writing its status: retry instead of failing on a vanished file.
  std::error_code ec;
  for (int i = 0; i < 50 && std::filesystem::remove_all(dir, ec) == static_cast<std::uintmax_t>(-1); ++i) {
    std::this_thread::sleep_for(20ms);
  }
}

exec::ExitInfo LocalHostFixture::run(const std::string& command, Collect& c, std::chrono::milliseconds timeout,
                                     std::stop_token stop) {
  exec::CommandSpec spec;
  spec.command = command;
  spec.timeout = timeout;
  return host->run(spec, c, stop);
}

exec::ExitInfo LocalHostFixture::run_within(const std::string& command, Collect& c, std::chrono::milliseconds limit) {
  const auto t0 = std::chrono::steady_clock::now();
  exec::ExitInfo info = run(command, c);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, limit) << command;
  return info;
}

exec::ExitInfo LocalHostFixture::run_stopped_after(const std::string& command, std::chrono::milliseconds delay,
                                                   Collect& c) {
  std::stop_source stop;
  std::thread t([&] {
    std::this_thread::sleep_for(delay);
    stop.request_stop();
  });
  exec::ExitInfo info = run(command, c, 0ms, stop.get_token());
  t.join();
  return info;
}

exec::JobRef LocalHostFixture::start(const exec::CommandSpec& spec, const std::string& name) {
  const std::string id = name + "_" + std::to_string(::getpid());
  return host->start_job(spec, id, (dir / "jobs" / id).string());
}

exec::JobRef LocalHostFixture::start_and_wait_for(const std::string& command, const std::string& name,
                                                  const std::vector<std::string>& processes) {
  exec::CommandSpec spec;
  spec.command = command;
  exec::JobRef ref = start(spec, name);
  auto missing = [&] {
    return std::any_of(processes.begin(), processes.end(),
                       [](const std::string& p) { return count_processes(p) == 0; });
  };
  for (int i = 0; i < 300 && missing(); ++i) {
    std::this_thread::sleep_for(10ms);
  }
  return ref;
}

exec::JobState LocalHostFixture::wait_for_end(const exec::JobRef& ref, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  exec::JobChunk c;
  do {
    c = host->read_job(ref, 0, 1 << 20);
    if (c.state.phase != exec::JobState::Phase::running) {
      break;
    }
    std::this_thread::sleep_for(10ms);
  } while (std::chrono::steady_clock::now() < deadline);
  return c.state;
}

} // namespace smcp::testing
