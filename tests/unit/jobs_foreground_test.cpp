// JobManager's foreground runs against a FakeHost and a real (temporary) SQLite store: capture
// and truncation, the spill file, promotion to a background job, cancellation, progress and
// heartbeats.
#include "tests/support/jobs_fixture.h"

#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <thread>

namespace smcp::tools {
namespace {

using namespace std::chrono_literals;
using testing::FakeHost;
using testing::JobsTest;

TEST_F(JobsTest, ForegroundKeepsStreamsApartAndReportsExit) {
  host->run_output = {{exec::Stream::out, "hello\n"}, {exec::Stream::err, "warn\n"}, {exec::Stream::out, "bye\n"}};
  host->run_result.exit_code = 3;
  auto r = manager().run("", spec("x"), "test", nullptr, std::stop_token());
  EXPECT_EQ(r.stdout_text, "hello\nbye\n");
  EXPECT_EQ(r.stderr_text, "warn\n");
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_FALSE(r.signal);
  EXPECT_FALSE(r.truncated);
  EXPECT_TRUE(r.bash_id.empty()) << "a small finished command needs no job";
  EXPECT_EQ(r.host, "fake");
  ASSERT_EQ(host->runs.size(), 1u);
  EXPECT_EQ(host->runs[0].command, "x");
  auto audit = store->recent_audit(10);
  ASSERT_GE(audit.size(), 2u);
  EXPECT_EQ(audit.back().kind, "run");
  EXPECT_EQ(audit.back().command, "x");
}

TEST_F(JobsTest, LargeOutputIsCutInTheMiddleAndStaysReadableInFull) {
  std::string big;
  for (int i = 0; i < 2000; ++i) {
    big += "line " + std::to_string(i) + "\n";
  }
  host->run_output = {{exec::Stream::out, big}};
  auto r = manager().run("", spec("big"), "", nullptr, std::stop_token());
  EXPECT_TRUE(r.truncated);
  EXPECT_EQ(r.stdout_bytes, big.size());
  EXPECT_LT(r.stdout_text.size(), 1500u);
  EXPECT_EQ(r.stdout_text.rfind("line 0\n", 0), 0u) << "the head is kept";
  EXPECT_NE(r.stdout_text.find("line 1999\n"), std::string::npos) << "the tail is kept";
  EXPECT_NE(r.stdout_text.find("bytes omitted from the middle"), std::string::npos);
  ASSERT_FALSE(r.bash_id.empty());
  ASSERT_FALSE(r.spill_path.empty());
  std::ifstream spill(r.spill_path);
  std::string spilled((std::istreambuf_iterator<char>(spill)), std::istreambuf_iterator<char>());
  EXPECT_EQ(spilled, big) << "the spill file holds the whole output";
  auto rec = store->get_job(r.bash_id);
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->status, "exited");
}

TEST_F(JobsTest, SpillFileStopsAtItsCapWithAMarker) {
  options.spill_cap = 5000;
  host->run_output = {{exec::Stream::out, std::string(3000, 'a')}, {exec::Stream::out, std::string(20000, 'b')}};
  auto r = manager().run("", spec("flood"), "", nullptr, std::stop_token());
  EXPECT_EQ(r.stdout_bytes, 23000u) << "the answer still counts everything";
  ASSERT_FALSE(r.spill_path.empty());
  std::ifstream spill(r.spill_path);
  std::string spilled((std::istreambuf_iterator<char>(spill)), std::istreambuf_iterator<char>());
  EXPECT_EQ(spilled.substr(0, 5000), std::string(3000, 'a') + std::string(2000, 'b'));
  EXPECT_EQ(spilled.substr(5000), "\n[sandbox-mcp: output cap of 5000 bytes reached; further output is not kept]\n");
}

TEST_F(JobsTest, EndedJobsDoNotAccumulateInMemoryAndReloadWhenRead) {
  host->run_output = {{exec::Stream::out, std::string(5000, 'x') + "\nlast line\n"}};
  std::vector<std::string> ids;
  for (int i = 0; i < 40; ++i) {
    ids.push_back(manager().run("", spec("big"), "", nullptr, std::stop_token()).bash_id);
    ASSERT_FALSE(ids.back().empty()) << "truncated output is kept as a job";
  }
  EXPECT_LE(manager().cached_jobs(), 16u) << "ended jobs must not pile up in memory";
  auto first = read(ids.front()); // evicted long ago: reloaded from the store and its spill file
  EXPECT_EQ(first.job.status, "exited");
  EXPECT_NE(first.output.find("last line"), std::string::npos);
  EXPECT_LE(manager().cached_jobs(), 16u);
}

TEST_F(JobsTest, SlowForegroundCommandIsPromotedToABackgroundJob) {
  options.promote_after = 50ms;
  host->block_until_released = true;
  host->run_output = {{exec::Stream::out, "started\n"}};
  auto r = manager().run("", spec("train"), "", nullptr, std::stop_token());
  EXPECT_TRUE(r.running);
  ASSERT_FALSE(r.bash_id.empty());
  EXPECT_EQ(r.stdout_text, "started\n");
  auto first = read(r.bash_id);
  EXPECT_EQ(first.job.status, "running");
  EXPECT_EQ(first.output, "started\n");
  host->release();
  auto end = read(r.bash_id, nullptr, nullptr, 2s);
  EXPECT_EQ(end.job.status, "exited");
  EXPECT_EQ(end.job.exit_code, 0);
  EXPECT_EQ(end.output, "") << "already read";
}

TEST_F(JobsTest, CancellingAForegroundRunStopsIt) {
  host->block_until_released = true;
  std::stop_source stop;
  std::thread canceller([&] {
    std::this_thread::sleep_for(50ms);
    stop.request_stop();
  });
  auto r = manager().run("", spec("sleep"), "", nullptr, stop.get_token());
  canceller.join();
  EXPECT_FALSE(r.running);
  EXPECT_EQ(r.signal, SIGTERM);
}

TEST_F(JobsTest, ProgressReportsTheLatestLine) {
  options.promote_after = 2s;
  host->block_until_released = true;
  host->run_output = {{exec::Stream::out, "epoch 1 loss 0.5\nepoch 2 loss 0.4\n"}};
  std::vector<std::string> lines;
  std::thread releaser([&] {
    std::this_thread::sleep_for(150ms);
    host->release();
  });
  manager().run(
      "", spec("train"), "", [&](const std::string& l) { lines.push_back(l); }, std::stop_token());
  releaser.join();
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines.front(), "epoch 2 loss 0.4");
}

// A call that ends within first_progress_after reports no progress at all (a notification sent
// just before the response can reach a client after it); a longer one does.
TEST_F(JobsTest, QuickCommandsReportNoProgress) {
  options.first_progress_after = 400ms;
  auto lines = progress_of_a_run(100ms);
  EXPECT_TRUE(lines.empty()) << "a quick call got progress: " << lines.front();
}

TEST_F(JobsTest, CommandsRunningPastTheFirstProgressDelayReportProgress) {
  options.first_progress_after = 400ms;
  auto lines = progress_of_a_run(800ms);
  EXPECT_FALSE(lines.empty());
}

TEST_F(JobsTest, ChattyCommandIsStillPromoted) {
  options.promote_after = 300ms;
  host->block_until_released = true;
  host->chatter = 5ms;
  std::vector<std::string> lines;
  auto r = manager().run(
      "", spec("chatty"), "", [&](const std::string& m) { lines.push_back(m); }, std::stop_token());
  EXPECT_TRUE(r.running) << "promotion must not wait for the output to go quiet";
  ASSERT_GE(lines.size(), 3u);
  EXPECT_EQ(lines.back().rfind("tick ", 0), 0u);
  host->release();
}

TEST_F(JobsTest, SilentForegroundCommandGetsHeartbeats) {
  options.promote_after = 300ms;
  options.heartbeat_interval = 50ms;
  host->block_until_released = true;
  std::vector<std::string> messages;
  auto r = manager().run(
      "", spec("quiet"), "", [&](const std::string& m) { messages.push_back(m); }, std::stop_token());
  EXPECT_TRUE(r.running);
  ASSERT_GE(messages.size(), 2u);
  EXPECT_NE(messages.back().find("still running after"), std::string::npos) << messages.back();
  host->release();
}

TEST_F(JobsTest, WaitingReadSendsHeartbeats) {
  options.heartbeat_interval = 30ms;
  auto rec = manager().start("", spec("quiet"), "");
  std::vector<std::string> beats;
  OutputQuery q;
  q.bash_id = rec.id;
  q.wait = 200ms;
  q.on_progress = [&](const std::string& m) { beats.push_back(m); };
  manager().output(q, std::stop_token());
  ASSERT_GE(beats.size(), 2u);
  EXPECT_NE(beats.front().find("waiting on " + rec.id), std::string::npos);
}

} // namespace
} // namespace smcp::tools
