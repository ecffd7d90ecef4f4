// JobManager against a FakeHost and a real (temporary) SQLite store: foreground capture and
// truncation, promotion, background reads with cursors, filters, waiting, the ring's dropped
// bytes, unreachable hosts, kills, and a restart of the manager.
#include "tests/support/fake_host.h"
#include "tools/jobs/jobs.h"

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

class JobsTest : public ::testing::Test {
protected:
  void SetUp() override {
    dir = std::filesystem::temp_directory_path() / ("smcp-jobs-" + std::to_string(::getpid()) + "-" +
                                                    ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    store = state::open_sqlite_store((dir / "state.db").string());
    host = std::make_shared<FakeHost>("fake");
    hosts.add(host);
    hosts.set_default("fake");
    options.spill_dir = (dir / "spill").string();
    options.max_output_chars = 1000;
    options.ring_bytes = 4096;
    options.poll_interval = 5ms;
    options.sweep_interval = 50ms;
    options.promote_after = 0ms;
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

TEST_F(JobsTest, BackgroundReadsReturnOnlyWhatIsNew) {
  auto rec = manager().start("", spec("train"), "training");
  EXPECT_EQ(rec.status, "running");
  EXPECT_TRUE(rec.durable);
  EXPECT_EQ(rec.job_dir, "/fake/jobs/" + rec.id);
  ASSERT_TRUE(store->get_job(rec.id));
  host->job_append(rec.id, "a\nb\n");
  auto r1 = read(rec.id);
  EXPECT_EQ(r1.output, "a\nb\n");
  EXPECT_EQ(r1.job.status, "running");
  host->job_append(rec.id, "c\n");
  auto r2 = read(rec.id);
  EXPECT_EQ(r2.output, "c\n");
  auto r3 = read(rec.id);
  EXPECT_EQ(r3.output, "");
  EXPECT_EQ(store->get_job(rec.id)->cursor, 6u) << "the cursor is saved";
}

TEST_F(JobsTest, FilterKeepsMatchingLinesAndCountsTheRest) {
  auto rec = manager().start("", spec("train"), "");
  host->job_append(rec.id, "epoch 1\nnoise\nloss 0.3\nnoise\npartial lo");
  Regex filter("epoch|loss");
  auto r = read(rec.id, &filter);
  EXPECT_EQ(r.output, "epoch 1\nloss 0.3\n");
  EXPECT_EQ(r.skipped_lines, 2u);
  host->job_append(rec.id, "ss 0.2\n");
  auto r2 = read(rec.id, &filter);
  EXPECT_EQ(r2.output, "partial loss 0.2\n") << "a partial line is held back until complete";
}

TEST_F(JobsTest, RingDropsOldOutputAndCountsIt) {
  auto rec = manager().start("", spec("spam"), "");
  std::string lots;
  for (int i = 0; i < 1000; ++i) {
    lots += "0123456789\n";
  }
  host->job_append(rec.id, lots); // 11000 bytes, more than the ring holds
  host->job_finish(rec.id, {exec::JobState::Phase::exited, 0, 0});
  const std::size_t ring = manager().options().ring_bytes;
  ASSERT_LT(ring, lots.size());
  auto r = read(rec.id);
  EXPECT_EQ(r.dropped_bytes, lots.size() - ring);
  EXPECT_EQ(r.total_bytes, lots.size());
  EXPECT_EQ(r.job.status, "exited");
  EXPECT_LE(r.output.size(), options.max_output_chars + 300);
  EXPECT_TRUE(r.truncated);
}

TEST_F(JobsTest, WaitReturnsAsSoonAsUntilMatches) {
  auto rec = manager().start("", spec("train"), "");
  std::thread writer([&] {
    std::this_thread::sleep_for(100ms);
    host->job_append(rec.id, "step 1\n");
    std::this_thread::sleep_for(100ms);
    host->job_append(rec.id, "Saved checkpoint\nstep 2\n");
  });
  Regex until("Saved checkpoint");
  auto t0 = std::chrono::steady_clock::now();
  auto r = read(rec.id, nullptr, &until, 5s);
  auto waited = std::chrono::steady_clock::now() - t0;
  writer.join();
  EXPECT_TRUE(r.matched);
  EXPECT_NE(r.output.find("step 1\nSaved checkpoint\n"), std::string::npos) << r.output;
  EXPECT_LT(waited, 3s);
  EXPECT_GE(waited, 150ms);
}

TEST_F(JobsTest, WaitEndsWhenTheJobEnds) {
  auto rec = manager().start("", spec("train"), "");
  std::thread finisher([&] {
    std::this_thread::sleep_for(100ms);
    host->job_append(rec.id, "bye\n");
    host->job_finish(rec.id, {exec::JobState::Phase::exited, 7, 0});
  });
  Regex until("never-matches");
  auto r = read(rec.id, nullptr, &until, 5s);
  finisher.join();
  EXPECT_EQ(r.job.status, "exited");
  EXPECT_EQ(r.job.exit_code, 7);
  EXPECT_EQ(r.output, "bye\n");
  EXPECT_FALSE(r.matched);
  EXPECT_EQ(store->get_job(rec.id)->exit_code, 7) << "the end is recorded";
}

TEST_F(JobsTest, WaitWithoutNewOutputTimesOut) {
  auto rec = manager().start("", spec("idle"), "");
  auto t0 = std::chrono::steady_clock::now();
  auto r = read(rec.id, nullptr, nullptr, 200ms);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 200ms);
  EXPECT_EQ(r.output, "");
  EXPECT_EQ(r.job.status, "running");
}

TEST_F(JobsTest, UnreachableHostKeepsLastOutputAndRecovers) {
  auto rec = manager().start("", spec("train"), "");
  host->job_append(rec.id, "before\n");
  EXPECT_EQ(read(rec.id).output, "before\n");
  host->job_append(rec.id, "during\n");
  host->set_unreachable(true);
  auto r = read(rec.id);
  EXPECT_EQ(r.job.status, "unreachable");
  EXPECT_NE(r.note.find("unreachable"), std::string::npos);
  host->set_unreachable(false);
  auto back = read(rec.id);
  EXPECT_EQ(back.job.status, "running");
  EXPECT_EQ(back.output, "during\n") << "no gap, no duplicate after the host comes back";
}

TEST_F(JobsTest, KillSignalsAndConfirms) {
  auto rec = manager().start("", spec("train"), "");
  auto k = manager().kill(rec.id, SIGINT);
  EXPECT_TRUE(k.signalled);
  EXPECT_TRUE(k.verified);
  EXPECT_EQ(k.job.status, "killed");
  EXPECT_EQ(k.job.signal, SIGINT);
  ASSERT_EQ(host->kills.size(), 1u);
  EXPECT_EQ(host->kills[0], std::make_pair(rec.id, SIGINT));
  auto again = manager().kill(rec.id, SIGTERM);
  EXPECT_FALSE(again.signalled) << "an ended job is not signalled again";
}

TEST_F(JobsTest, UnknownJobIdIsAClearError) {
  try {
    read("bash_doesnotexist");
    FAIL() << "expected an error";
  } catch (const std::out_of_range& e) {
    EXPECT_NE(std::string(e.what()).find("remote_bash_list"), std::string::npos);
  }
}

TEST_F(JobsTest, RestartedManagerContinuesFromTheSavedCursor) {
  auto rec = manager().start("", spec("train"), "");
  host->job_append(rec.id, "one\ntwo\n");
  EXPECT_EQ(read(rec.id).output, "one\ntwo\n");
  jobs.reset(); // the server goes away; the job keeps running on the host
  host->job_append(rec.id, "three\n");
  host->job_finish(rec.id, {exec::JobState::Phase::exited, 0, 0});
  auto r = read(rec.id); // a new manager over the same store
  EXPECT_EQ(r.output, "three\n");
  EXPECT_EQ(r.job.status, "exited");
  EXPECT_EQ(r.job.exit_code, 0);
}

TEST_F(JobsTest, RemoveDeletesAnEndedJobButNotARunningOne) {
  auto rec = manager().start("", spec("train"), "");
  EXPECT_THROW(manager().remove(rec.id), std::logic_error);
  manager().kill(rec.id, SIGTERM);
  manager().remove(rec.id);
  EXPECT_FALSE(store->get_job(rec.id));
  EXPECT_THROW(read(rec.id), std::out_of_range);
}

TEST_F(JobsTest, RetentionRemovesOnlyOldEndedJobs) {
  options.retention = std::chrono::hours(1);
  // No background sweep: it could write the job's in-memory record back over the aged one below.
  options.sweep_interval = std::chrono::hours(1);
  auto old_job = manager().start("", spec("old"), "");
  auto fresh = manager().start("", spec("fresh"), "");
  auto running = manager().start("", spec("running"), "");
  host->job_finish(old_job.id, {exec::JobState::Phase::exited, 0, 0});
  host->job_finish(fresh.id, {exec::JobState::Phase::exited, 0, 0});
  read(old_job.id);
  read(fresh.id);
  // Age the old job's record as if it ended two hours ago. The manager may still be persisting the
  // job's end (from the read) and write its own record over ours: age it again until it sticks.
  std::size_t expired = 0;
  for (int attempt = 0; attempt < 50 && expired == 0; ++attempt) {
    auto rec = *store->get_job(old_job.id);
    rec.ended_at_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count() -
        2 * 3600 * 1000;
    store->put_job(rec);
    expired = manager().expire();
    if (expired == 0) {
      std::this_thread::sleep_for(20ms);
    }
  }
  EXPECT_EQ(expired, 1u);
  EXPECT_FALSE(store->get_job(old_job.id));
  EXPECT_TRUE(store->get_job(fresh.id));
  EXPECT_TRUE(store->get_job(running.id));
}

TEST_F(JobsTest, AHangingHostDoesNotStopOtherHostsJobsFromBeingTracked) {
  auto hanging = std::make_shared<FakeHost>("a-hangs");
  auto healthy = std::make_shared<FakeHost>("b-ok");
  hosts.add(hanging);
  hosts.add(healthy);
  auto stuck = manager().start("a-hangs", spec("train"), "");
  auto fine = manager().start("b-ok", spec("train"), "");
  hanging->hang_reads(true);
  healthy->job_finish(fine.id, {exec::JobState::Phase::exited, 3, 0});
  // The background sweep refreshes hosts in parallel: b-ok's end is recorded while a-hangs hangs.
  bool recorded = false;
  for (int i = 0; i < 200 && !recorded; ++i) {
    std::this_thread::sleep_for(10ms);
    recorded = store->get_job(fine.id)->status == "exited";
  }
  EXPECT_TRUE(recorded) << "the job on the healthy host was not tracked while another host hung";
  EXPECT_EQ(store->get_job(stuck.id)->status, "running");
  hanging->hang_reads(false);
}

TEST_F(JobsTest, ForegroundJobLeftByACrashedRunCanBeRemovedAndExpires) {
  state::JobRecord rec;
  rec.id = "bash_0000000000aa";
  rec.host = "fake";
  rec.command = "sleep 1000";
  rec.status = "running";
  rec.durable = false; // a promoted foreground command of a run that crashed
  rec.started_at_ms = 1;
  store->put_job(rec);
  auto r = read(rec.id);
  EXPECT_EQ(r.job.status, "unreachable");
  auto k = manager().kill(rec.id, SIGTERM);
  EXPECT_FALSE(k.signalled);
  EXPECT_NE(k.note.find("earlier run of the server"), std::string::npos) << k.note;
  manager().remove(rec.id);
  EXPECT_FALSE(store->get_job(rec.id));

  rec.id = "bash_0000000000bb";
  store->put_job(rec);
  jobs.reset();
  options.retention = std::chrono::hours(1);
  manager(); // marks it unreachable and ended now
  auto loaded = *store->get_job(rec.id);
  EXPECT_EQ(loaded.status, "unreachable");
  loaded.ended_at_ms -= 2 * 3600 * 1000;
  store->put_job(loaded);
  EXPECT_EQ(manager().expire(), 1u) << "such records expire like ended jobs";
}

TEST_F(JobsTest, ListShowsJobsNewestFirst) {
  auto a = manager().start("", spec("first"), "");
  std::this_thread::sleep_for(5ms);
  auto b = manager().start("", spec("second"), "");
  auto all = manager().list(10);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].id, b.id);
  EXPECT_EQ(all[1].id, a.id);
}

TEST_F(JobsTest, UnknownHostIsAClearError) {
  try {
    manager().run("nowhere", spec("x"), "", nullptr, std::stop_token());
    FAIL() << "expected an error";
  } catch (const std::out_of_range& e) {
    EXPECT_NE(std::string(e.what()).find("unknown host 'nowhere'"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("fake"), std::string::npos) << "lists known hosts";
  }
}

OutputQuery deferred(const std::string& id) {
  OutputQuery q;
  q.bash_id = id;
  q.defer_commit = true;
  return q;
}

TEST_F(JobsTest, AnAnswerNeverDeliveredIsReadAgain) {
  auto rec = manager().start("", spec("train"), "");
  host->job_append(rec.id, "one\ntwo\n");
  {
    auto lost = manager().output(deferred(rec.id), std::stop_token());
    EXPECT_EQ(lost.output, "one\ntwo\n");
    // The receipt goes without commit(): the response was never sent (a cancelled call).
  }
  EXPECT_EQ(store->get_job(rec.id)->cursor, 0u) << "nothing delivered, nothing saved";
  auto again = manager().output(deferred(rec.id), std::stop_token());
  EXPECT_EQ(again.output, "one\ntwo\n") << "the window is given to the next read";
  again.receipt->commit();
  EXPECT_EQ(store->get_job(rec.id)->cursor, 8u) << "saved once the answer was sent";
  host->job_append(rec.id, "three\n");
  EXPECT_EQ(read(rec.id).output, "three\n") << "no line repeated after a delivered answer";
}

TEST_F(JobsTest, ARestartBeforeTheAnswerWasSentReadsTheWindowAgain) {
  auto rec = manager().start("", spec("train"), "");
  host->job_append(rec.id, "epoch 1\n");
  host->job_finish(rec.id, {exec::JobState::Phase::exited, 0, 0});
  auto pending = manager().output(deferred(rec.id), std::stop_token());
  ASSERT_EQ(pending.output, "epoch 1\n");
  // The server dies before it answers: a new one over the same store (the old one never commits).
  JobManager restarted(hosts, *store, options);
  OutputQuery q;
  q.bash_id = rec.id;
  EXPECT_EQ(restarted.output(q, std::stop_token()).output, "epoch 1\n");
  EXPECT_EQ(restarted.output(q, std::stop_token()).output, "") << "read once after the restart";
  pending.receipt.reset();
}

TEST_F(JobsTest, AReadWaitsUntilThePreviousAnswerIsConfirmed) {
  auto rec = manager().start("", spec("train"), "");
  host->job_append(rec.id, "a\n");
  auto first = manager().output(deferred(rec.id), std::stop_token());
  ASSERT_EQ(first.output, "a\n");
  std::atomic<bool> second_done{false};
  std::string second_output = "unset";
  std::thread second([&] {
    second_output = read(rec.id).output;
    second_done = true;
  });
  std::this_thread::sleep_for(200ms);
  EXPECT_FALSE(second_done) << "a read answered before the previous answer was confirmed sent";
  first.receipt->commit();
  second.join();
  EXPECT_EQ(second_output, "") << "it starts where the confirmed answer ended";
}

TEST_F(JobsTest, EndedJobsGiveTheirMemoryBack) {
  std::vector<std::string> ids;
  const std::string lots(20000, 'x');
  for (int i = 0; i < 40; ++i) {
    auto rec = manager().start("", spec("flood"), "");
    host->job_append(rec.id, lots);
    host->job_finish(rec.id, {exec::JobState::Phase::exited, 0, 0});
    ids.push_back(rec.id);
  }
  for (const auto& id : ids) {
    auto r = read(id);
    EXPECT_EQ(r.total_bytes, lots.size());
    EXPECT_EQ(r.job.status, "exited");
  }
  EXPECT_EQ(manager().ring_memory(), 0u) << "ended jobs whose output was read still hold their rings";
  EXPECT_LE(manager().cached_jobs(), 17u);
}

TEST_F(JobsTest, RingsOfJobsNobodyReadsStayWithinTheBudgetAndReloadWhenRead) {
  options.ring_budget = 3 * 6096; // three full rings (ring_bytes becomes 6096 with these options)
  std::vector<std::string> running;
  std::string lots;
  for (int i = 0; i < 1000; ++i) {
    lots += "line " + std::to_string(i) + "\n";
  }
  for (int i = 0; i < 10; ++i) {
    auto rec = manager().start("", spec("train"), "");
    host->job_append(rec.id, lots);
    running.push_back(rec.id);
  }
  auto ended = manager().start("", spec("done"), "");
  host->job_append(ended.id, "the end\n");
  host->job_finish(ended.id, {exec::JobState::Phase::exited, 4, 0});
  // The sweep pulls every running job's output into memory, then trims to the budget.
  std::size_t memory = 0;
  for (int i = 0; i < 100; ++i) {
    std::this_thread::sleep_for(20ms);
    memory = manager().ring_memory();
    if (memory > 0 && memory <= options.ring_budget) {
      break;
    }
  }
  EXPECT_GT(memory, 0u);
  EXPECT_LE(memory, options.ring_budget);
  const std::size_t ring = manager().options().ring_bytes;
  for (const auto& id : running) {
    auto r = read(id);
    EXPECT_EQ(r.total_bytes, lots.size());
    EXPECT_EQ(r.dropped_bytes, lots.size() - ring) << "a released ring reloads the same window";
    EXPECT_TRUE(r.truncated);
    EXPECT_NE(r.output.find("line 999\n"), std::string::npos);
  }
  auto e = read(ended.id);
  EXPECT_EQ(e.output, "the end\n") << "an ended job released before anyone read it reloads its output";
  EXPECT_EQ(e.job.exit_code, 4);
}

} // namespace
} // namespace smcp::tools
