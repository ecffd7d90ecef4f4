// Small building blocks: the JSON Schema subset, the ring buffer, text cuts, regex filters and
// the SQLite state store.
#include "mcp-server/core/json_schema.h"
#include "mcp-server/store/state_store.h"
#include "tools/jobs/regex.h"
#include "tools/jobs/ring_buffer.h"
#include "tools/jobs/text.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <unistd.h>

namespace smcp {
namespace {

using nlohmann::json;

TEST(JsonSchema, AcceptsValidAndNamesTheFieldOfInvalid) {
  json schema = json::parse(R"({"type":"object","properties":{
      "a":{"type":"integer","minimum":0,"maximum":10},
      "b":{"type":["string","null"]},
      "c":{"type":"object","additionalProperties":{"type":"string"}},
      "d":{"type":"array","items":{"type":"boolean"},"maxItems":2},
      "e":{"type":"string","enum":["x","y"]},
      "f":{"type":"string","minLength":2}},
    "required":["a"],"additionalProperties":false})");
  EXPECT_FALSE(mcp::validate_json(schema, {{"a", 3}, {"b", nullptr}, {"c", {{"K", "v"}}}, {"d", {true}}}, ""));
  EXPECT_FALSE(mcp::validate_json(schema, {{"a", 3.0}}, "")) << "3.0 is an integer";
  auto err = [&](const json& v) { return mcp::validate_json(schema, v, "").value_or("(valid)"); };
  EXPECT_EQ(err(json::object()), "missing required field 'a'");
  EXPECT_NE(err({{"a", "3"}}).find("'a' must be integer, got string"), std::string::npos);
  EXPECT_NE(err({{"a", 11}}).find("'a' must be <= 10"), std::string::npos);
  EXPECT_NE(err({{"a", 1}, {"c", {{"K", 5}}}}).find("'c.K' must be string"), std::string::npos);
  EXPECT_NE(err({{"a", 1}, {"d", {true, 1}}}).find("'d[1]' must be boolean"), std::string::npos);
  EXPECT_NE(err({{"a", 1}, {"d", {true, true, true}}}).find("at most 2 items"), std::string::npos);
  EXPECT_NE(err({{"a", 1}, {"e", "z"}}).find("'e' must be one of"), std::string::npos);
  EXPECT_NE(err({{"a", 1}, {"f", "é"}}).find("at least 2 characters"), std::string::npos) << "UTF-8 aware";
  EXPECT_NE(err({{"a", 1}, {"zz", 1}}).find("unknown field 'zz'"), std::string::npos);
}

TEST(RingBuffer, KeepsTheNewestBytesWithAbsoluteOffsets) {
  tools::RingBuffer ring(10);
  ring.append("hello");
  EXPECT_EQ(ring.start(), 0u);
  EXPECT_EQ(ring.read(0, 5), "hello");
  ring.append(" world!"); // 12 bytes in all, 10 kept
  EXPECT_EQ(ring.start(), 2u);
  EXPECT_EQ(ring.end(), 12u);
  EXPECT_EQ(ring.read(0, 100), "llo world!");
  EXPECT_EQ(ring.read(5, 8), " wo");
  for (int i = 0; i < 100; ++i) {
    ring.append("0123456789abc");
  }
  EXPECT_EQ(ring.end(), 12u + 1300u);
  EXPECT_EQ(ring.read(ring.start(), ring.end()), "3456789abc");
  ring.append("XY"); // wraps around inside the buffer
  EXPECT_EQ(ring.read(ring.start(), ring.end()), "56789abcXY");
  EXPECT_EQ(ring.read(ring.end() - 3, ring.end()), "cXY");
  EXPECT_LE(ring.memory(), 32u) << "memory stays bounded";
  ring.skip_to(5000);
  EXPECT_EQ(ring.start(), 5000u);
  EXPECT_EQ(ring.end(), 5000u);
  ring.append("x");
  EXPECT_EQ(ring.read(0, 6000), "x");
}

TEST(RingBuffer, ReleaseGivesTheMemoryBackAndResetReloadsFromAnEarlierOffset) {
  tools::RingBuffer ring(8);
  EXPECT_EQ(ring.memory(), 0u) << "nothing is allocated before the first byte";
  ring.append("abcdefghijk");
  EXPECT_EQ(ring.memory(), 8u);
  ring.release();
  EXPECT_EQ(ring.memory(), 0u);
  EXPECT_EQ(ring.start(), 11u);
  EXPECT_EQ(ring.end(), 11u);
  EXPECT_EQ(ring.read(0, 100), "");
  ring.reset(4); // reload from offset 4 (the output's file has it)
  ring.append("efg");
  EXPECT_EQ(ring.start(), 4u);
  EXPECT_EQ(ring.read(0, 100), "efg");
  ring.append("hijklmn"); // wraps: 10 bytes appended to an 8-byte ring
  EXPECT_EQ(ring.start(), 6u);
  EXPECT_EQ(ring.read(0, 100), "ghijklmn");
}

TEST(Text, MiddleCutKeepsHeadAndTailOnUtf8Boundaries) {
  std::string s;
  for (int i = 0; i < 100; ++i) {
    s += "é"; // 2 bytes each
  }
  std::string cut = tools::middle_cut(s, 21, "see file");
  EXPECT_EQ(cut.find("é"), 0u);
  EXPECT_NE(cut.find("bytes omitted from the middle; see file"), std::string::npos);
  auto marker_end = cut.find("...]\n\n") + 6;
  std::string tail = cut.substr(marker_end);
  EXPECT_EQ(tail.size() % 2, 0u) << "no half characters";
  EXPECT_EQ(tools::middle_cut("short", 10, "x"), "short");
}

TEST(Text, ForEachLineSplitsAndKeepsAPartialLastLine) {
  std::vector<std::string> lines;
  tools::for_each_line("a\n\nb\nc", [&](std::string_view l) { lines.emplace_back(l); });
  EXPECT_EQ(lines, (std::vector<std::string>{"a", "", "b", "c"}));
  EXPECT_EQ(tools::last_line("x\ny"), "y");
}

TEST(Regex, SearchesAndRejectsInvalidPatternsWithTheReason) {
  tools::Regex r("epoch \\d+|loss");
  EXPECT_TRUE(r.search("epoch 12 done"));
  EXPECT_TRUE(r.search("val loss 0.3"));
  EXPECT_FALSE(r.search("nothing"));
  EXPECT_TRUE(r.search(std::string("bin\xff\xfe loss", 10))) << "invalid UTF-8 is searched bytewise";
  try {
    tools::Regex bad("(unclosed");
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("(unclosed"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("offset"), std::string::npos);
  }
  tools::Regex evil("(a+)+$");
  EXPECT_FALSE(evil.search(std::string(5000, 'a') + "!")) << "catastrophic backtracking is bounded";
}

TEST(SqliteStore, PersistsJobsSandboxesAndAudit) {
  auto path = std::filesystem::temp_directory_path() / ("smcp-store-" + std::to_string(::getpid()) + ".db");
  std::filesystem::remove(path);
  {
    auto store = state::open_sqlite_store(path.string());
    state::JobRecord j;
    j.id = "bash_1";
    j.host = "local";
    j.command = "echo 'quoted' \"x\"";
    j.status = "running";
    j.durable = true;
    j.started_at_ms = 1000;
    store->put_job(j);
    j.status = "exited";
    j.exit_code = 0;
    store->put_job(j);
    store->set_job_cursor("bash_1", 42);
    state::SandboxRecord s;
    s.name = "sb";
    s.branch = "feature";
    s.work_dir = "/w";
    s.ccr_mode = true;
    store->put_sandbox(s);
    store->audit({1, "local", "run", "true", ""});
  }
  auto store = state::open_sqlite_store(path.string());
  auto j = store->get_job("bash_1");
  ASSERT_TRUE(j);
  EXPECT_EQ(j->command, "echo 'quoted' \"x\"");
  EXPECT_EQ(j->status, "exited");
  EXPECT_EQ(j->exit_code, 0);
  EXPECT_EQ(j->cursor, 42u);
  EXPECT_TRUE(j->durable);
  EXPECT_FALSE(store->get_job("nope"));
  auto s = store->get_sandbox("sb");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->branch, "feature");
  EXPECT_TRUE(s->ccr_mode);
  EXPECT_FALSE(s->created_at.empty());
  EXPECT_EQ(store->recent_audit(5).size(), 1u);
  store->delete_sandbox("sb");
  EXPECT_TRUE(store->list_sandboxes().empty());
  std::filesystem::remove(path);
}

} // namespace
} // namespace smcp
