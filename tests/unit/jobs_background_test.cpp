// JobManager's background jobs against a FakeHost and a real (temporary) SQLite store: reads
// with cursors, filters, waiting, the ring's dropped bytes, unreachable hosts, kills, removal and
// retention, a restart of the manager, delivery receipts and ring memory.
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
  manager().expire(); // (or the manager's own retention sweep got there first)
  EXPECT_FALSE(store->get_job(rec.id)) << "such records expire like ended jobs";
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
