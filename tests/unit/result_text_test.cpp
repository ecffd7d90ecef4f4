// The text the model reads of each tool result: output first, one short status line, nothing that
// says nothing. structuredContent keeps every field; these renderings are what clients
// such as Claude Code put in front of the model.
#include "tools/result_text.h"

#include <gtest/gtest.h>

namespace smcp::tools {
namespace {

json foreground(json overrides = json::object()) {
  json r = {{"exit_code", 0},    {"signal", nullptr},  {"stdout", "hi\n"},   {"stderr", ""},
            {"duration_ms", 12}, {"truncated", false}, {"timed_out", false}, {"status", "exited"},
            {"host", "local"},   {"stdout_bytes", 3},  {"stderr_bytes", 0}};
  r.update(overrides);
  return r;
}

TEST(ResultText, ForegroundIsTheOutputThenExitAndDuration) {
  EXPECT_EQ(result_text("remote_bash", foreground()), "hi\n[exit 0 · 12 ms]\n");
  EXPECT_EQ(result_text("remote_bash", foreground({{"exit_code", 3}, {"stdout", ""}, {"duration_ms", 1500}})),
            "[exit 3 · 1.5 s]\n");
}

TEST(ResultText, StderrIsLabelledAndAMissingNewlineAdded) {
  EXPECT_EQ(result_text("remote_bash", foreground({{"stdout", "out"}, {"stderr", "oops"}, {"exit_code", 1}})),
            "out\n[stderr]\noops\n[exit 1 · 12 ms]\n");
}

TEST(ResultText, RemoteHostsAreNamedLocalIsNot) {
  EXPECT_EQ(result_text("remote_bash", foreground({{"host", "gpu1"}})), "hi\n[exit 0 · 12 ms · on gpu1]\n");
}

TEST(ResultText, BackgroundStartSaysHowToRead) {
  json r = foreground({{"stdout", ""},
                       {"exit_code", nullptr},
                       {"status", "running"},
                       {"duration_ms", 0},
                       {"bash_id", "bash_0123456789ab"}});
  EXPECT_EQ(result_text("remote_bash", r),
            "[running in the background · bash_0123456789ab · read with remote_bash_output]\n");
  r["duration_ms"] = 55000;
  r["stdout"] = "epoch 1\n";
  EXPECT_EQ(result_text("remote_bash", r), "epoch 1\n[running in the background · bash_0123456789ab · still "
                                           "running after 55.0 s · read with remote_bash_output]\n");
}

TEST(ResultText, TimeoutAndTruncationAreSaid) {
  json r = foreground({{"exit_code", nullptr},
                       {"signal", "SIGTERM"},
                       {"status", "killed"},
                       {"timed_out", true},
                       {"truncated", true},
                       {"bash_id", "bash_0123456789ab"},
                       {"duration_ms", 120000}});
  EXPECT_EQ(result_text("remote_bash", r), "hi\n[killed by SIGTERM · 2 min 0 s · timed out: process tree ended · "
                                           "cut in the middle; all of it: remote_bash_output bash_0123456789ab]\n");
}

TEST(ResultText, OutputReadsShowStatusAndWhatTheFilterLeftOut) {
  json r = {{"bash_id", "bash_1"}, {"output", "epoch 1 loss 0.8\nepoch 2 loss 0.7\n"},
            {"status", "running"}, {"exit_code", nullptr},
            {"skipped_lines", 4},  {"dropped_bytes", 0},
            {"truncated", false},  {"matched", true},
            {"total_bytes", 900},  {"output_file", "/s/jobs/bash_1/output"}};
  EXPECT_EQ(result_text("remote_bash_output", r),
            "epoch 1 loss 0.8\nepoch 2 loss 0.7\n[running · 4 lines filtered out]\n");
  r["output"] = "";
  r["skipped_lines"] = 0;
  r["status"] = "exited";
  r["exit_code"] = 0;
  EXPECT_EQ(result_text("remote_bash_output", r), "[exit 0 · no new output]\n");
  r["status"] = "unreachable";
  r["note"] = "host gpu1 cannot be reached";
  r["dropped_bytes"] = 2048;
  EXPECT_EQ(result_text("remote_bash_output", r),
            "[unreachable · no new output · 2.0 KiB fell out of memory (all in /s/jobs/bash_1/output) · host gpu1 "
            "cannot be reached]\n");
}

TEST(ResultText, KillSaysWhatEndedAndWhetherItIsVerified) {
  json r = {{"bash_id", "bash_1"}, {"status", "killed"}, {"exit_code", nullptr}, {"signal", "SIGTERM"},
            {"signalled", true},   {"verified", true},   {"removed", false},     {"host", "local"}};
  EXPECT_EQ(result_text("remote_bash_kill", r), "[bash_1 · killed by SIGTERM · no process left]\n");
  r["signalled"] = false;
  r["status"] = "exited";
  r["exit_code"] = 0;
  r["signal"] = nullptr;
  r["removed"] = true;
  EXPECT_EQ(result_text("remote_bash_kill", r),
            "[bash_1 · had already ended: exit 0 · no process left · files removed]\n");
  r["verified"] = false;
  r["note"] = "pid 42 is still there";
  EXPECT_EQ(result_text("remote_bash_kill", r), "[bash_1 · had already ended: exit 0 · NOT verified: processes may "
                                                "remain · files removed · pid 42 is still there]\n");
}

TEST(ResultText, FileWindowsSayWhichLinesAndWhatFollows) {
  json r = {{"content", "     1\ta\n     2\tb\n"},
            {"start_line", 1},
            {"lines", 2},
            {"truncated", true},
            {"more_before", false},
            {"more_after", true},
            {"total_lines", 10},
            {"file_path", "/x"},
            {"host", "local"}};
  EXPECT_EQ(result_text("remote_file_read", r), "     1\ta\n     2\tb\n[lines 1-2 of 10 · more: offset 3]\n");
  r["more_after"] = false;
  r["truncated"] = false;
  r["total_lines"] = nullptr;
  r["start_line"] = -2;
  EXPECT_EQ(result_text("remote_file_read", r), "     1\ta\n     2\tb\n[lines -2 to -1 from the end]\n");
  r["content"] = "";
  r["lines"] = 0;
  r["total_lines"] = 0;
  EXPECT_EQ(result_text("remote_file_read", r), "[no lines (file has 0)]\n");
}

TEST(ResultText, JobListIsOneLinePerJob) {
  json r = {{"jobs",
             {{{"bash_id", "bash_1"},
               {"host", "gpu1"},
               {"command", "python train.py\n--epochs 3"},
               {"status", "running"},
               {"exit_code", nullptr},
               {"signal", nullptr},
               {"started_at", "2026-12-01T10:00:00Z"}},
              {{"bash_id", "bash_2"},
               {"host", "local"},
               {"command", "make"},
               {"status", "exited"},
               {"exit_code", 2},
               {"signal", nullptr},
               {"started_at", "2026-12-01T09:00:00Z"}}}}};
  EXPECT_EQ(result_text("remote_bash_list", r),
            "bash_1  running  gpu1  2026-12-01T10:00:00Z  python train.py --epochs 3\n"
            "bash_2  exit 2  local  2026-12-01T09:00:00Z  make\n[2 jobs]\n");
  EXPECT_EQ(result_text("remote_bash_list", json{{"jobs", json::array()}}), "[no jobs]\n");
}

TEST(ResultText, UnknownToolsHaveNoRendering) {
  EXPECT_EQ(result_text("sandbox_ls", json{{"sandboxes", json::array()}}), "");
  EXPECT_EQ(result_text("remote_bash", nullptr), "");
}

TEST(ResultText, HumanUnits) {
  EXPECT_EQ(human_duration(0), "0 ms");
  EXPECT_EQ(human_duration(999), "999 ms");
  EXPECT_EQ(human_duration(61000), "1 min 1 s");
  EXPECT_EQ(human_bytes(1023), "1023 B");
  EXPECT_EQ(human_bytes(3 * 1024 * 1024), "3.0 MiB");
}

} // namespace
} // namespace smcp::tools
