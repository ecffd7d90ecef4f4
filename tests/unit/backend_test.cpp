// The SandboxBackend seam (sandbox/backend.h, the table in sandbox/backends.cpp): a fake backend
// put in the table serves `new`, ls, attach, rm and reset with no other change to the manager,
// which still does the common steps (the checks of the repository, the row, the sandbox's own
// clone, the undo list) around it; and the default table sends each request and row where it did.
#include "sandbox/backend.h"
#include "sandbox/manager.h"
#include "tests/support/recording_executor.h"

#include <gtest/gtest.h>
#include <gmock/gmock.h>

#include <cstdlib>
#include <filesystem>

namespace smcp::sandbox {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Argv = std::vector<std::string>;

// Records what the manager asked of it; its sandboxes are "boxes" run by `box`.
class FakeBackend final : public SandboxBackend {
public:
  explicit FakeBackend(std::vector<std::string>& calls) : m_calls(calls) {}

  void check(Creation& c) override {
    m_calls.push_back("check " + c.request.name);
    c.row.wrapper = "/fake/box";
  }
  void start(Creation& c) override {
    m_calls.push_back("start " + c.row.name + " in " + c.row.work_dir);
    c.undo.push_back([this, name = c.row.name] { m_calls.push_back("undo start " + name); });
    if (c.request.image == "broken") {
      throw SandboxError(SandboxError::Kind::failed, "the box would not start");
    }
    c.row.container_id = "box-" + c.row.name;
    c.state = {SandboxState::Kind::running, "boxed"};
  }
  std::vector<std::string> runtime_argv(const SandboxRow&, std::vector<std::string> argv) const override {
    argv.insert(argv.begin(), "box");
    return argv;
  }
  std::shared_ptr<exec::RemoteExecutor> executor(const SandboxRow&, std::shared_ptr<exec::RemoteExecutor> host,
                                                 exec::ScriptHostOptions&) override {
    return host;
  }
  void read_states(const std::vector<SandboxInfo*>& infos) override {
    for (SandboxInfo* info : infos) {
      m_calls.push_back("state " + info->row.name);
      info->state = {SandboxState::Kind::stopped, "boxed away"};
    }
  }
  std::vector<std::string> attach_argv(const SandboxRow& row) const override { return {"box", "attach", row.name}; }
  std::optional<std::vector<std::string>> enter(const SandboxRow&, exec::RemoteExecutor&, bool,
                                                std::string& why) override {
    why = "a box has no inside";
    return std::vector<std::string>{};
  }
  bool never_ran(const SandboxRow&, exec::RemoteExecutor&) override { return true; }
  void remove(const SandboxRow& row, exec::RemoteExecutor&, RemoveResult& result) override {
    m_calls.push_back("remove " + row.name);
    result.notes.push_back("box gone");
  }
  std::string kept_by_reset(const SandboxRow& row) const override { return "a box: " + row.name; }

private:
  std::vector<std::string>& m_calls;
};

class SandboxBackendTest : public ::testing::Test {
protected:
  void SetUp() override {
    char tmpl[] = "/tmp/smcp-backend-unit-XXXXXX";
    dir = ::mkdtemp(tmpl);
    host = std::make_shared<testing::RecordingHost>("local");
    rec = host->recorder;
    rec->answer({"git", "-C", "/r", "rev-parse", "--path-format=absolute"}, 0, "/r\n/r/.git\n");
    rec->answer({"git", "-C", "/r", "rev-parse", "--verify"}, 1);
    rec->answer({"test", "-e"}, 1);
    rec->answer({"test", "-L"}, 1);
    rec->answer({"id", "-u"}, 0, "1000\n");
    rec->answer({"stat", "-c", "%u"}, 0, "1000\n");
  }
  void TearDown() override { std::filesystem::remove_all(dir); }

  // The default table with the fake first: it takes requests for image "box*" and rows it made.
  std::unique_ptr<SandboxManager> make() {
    BackendTable table = default_backends();
    table.insert(table.begin(), BackendEntry{"box", [](const NewRequest& r) { return r.image.rfind("b", 0) == 0; },
                                             [](const SandboxRow& row) { return row.wrapper == "/fake/box"; },
                                             [this](BackendEnv&) { return std::make_unique<FakeBackend>(calls); }});
    ManagerOptions o;
    o.repo_base = dir;
    return std::make_unique<SandboxManager>(
        o, [this](const std::string&) -> std::shared_ptr<exec::Host> { return host; }, table);
  }
  NewRequest request(const std::string& name, const std::string& image = "box") {
    NewRequest r;
    r.name = name;
    r.repo_base = "/r";
    r.image = image;
    return r;
  }

  std::string dir;
  std::shared_ptr<testing::RecordingHost> host;
  std::shared_ptr<testing::RecordingExecutor> rec;
  std::vector<std::string> calls;
};

TEST_F(SandboxBackendTest, AFakeBackendInTheTableServesNewWithTheCommonStepsAroundIt) {
  auto m = make();
  SandboxInfo info = m->create(request("b1"));
  EXPECT_EQ(info.row.phase, Phase::ready);
  EXPECT_EQ(info.row.container_id, "box-b1");
  EXPECT_EQ(info.state.text, "boxed");
  EXPECT_EQ(info.attach_command, "box attach b1");
  // check before anything is made; start after the manager made the sandbox's clone.
  EXPECT_THAT(calls, ElementsAre("check b1", "start b1 in /r/.git/sandbox-mcp/sandboxes/b1"));
  EXPECT_EQ(rec->matching({"git", "-c", "protocol.file.allow=always", "clone"}).size(), 1u);
  // No container runtime was asked for: the fake said what it needs.
  EXPECT_TRUE(rec->matching({"podman"}).empty());
  EXPECT_TRUE(rec->matching({"docker"}).empty());
}

TEST_F(SandboxBackendTest, AFailedStartRunsTheUndoListAndDropsTheRow) {
  auto m = make();
  EXPECT_THROW(m->create(request("b2", "broken")), SandboxError);
  ASSERT_FALSE(calls.empty());
  EXPECT_EQ(calls.back(), "undo start b2");
  // The manager's own steps were taken back too: the clone, the branch, the row.
  EXPECT_EQ(rec->matching(remove_tree_argv("/r/.git/sandbox-mcp/sandboxes/b2")).size(), 1u);
  EXPECT_EQ(rec->matching({"git", "-C", "/r", "branch", "-D"}).size(), 1u);
  EXPECT_FALSE(m->registry().get("b2"));
}

TEST_F(SandboxBackendTest, LsAttachRmAndResetAskTheRowsBackend) {
  auto m = make();
  m->create(request("b3"));
  calls.clear();
  auto all = m->list();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].state.kind, SandboxState::Kind::stopped);
  EXPECT_EQ(all[0].state.text, "boxed away");
  EXPECT_THAT(calls, ElementsAre("state b3"));
  EXPECT_THAT(m->attach_argv("b3"), ElementsAre("box", "attach", "b3"));
  EXPECT_THAT(m->reset({}), ::testing::Contains("kept b3 (a box: b3)"));
  // rm: the fake's removal, between the manager's ownership check and its directory and row.
  auto row = m->registry().get("b3");
  ASSERT_TRUE(row);
  rec->answer(read_id_argv("/r/.git/sandbox-mcp/sandboxes/.b3.sandbox-id"), 0, row->uid + "\n");
  RemoveResult r = m->remove("b3");
  EXPECT_TRUE(r.removed);
  EXPECT_THAT(r.notes, ::testing::Contains("box gone"));
  EXPECT_EQ(calls.back(), "remove b3");
  EXPECT_FALSE(m->registry().get("b3"));
}

TEST(BackendTableTest, SlurmRequestsAndRowsGoToSlurmAndTheRestToContainers) {
  const BackendTable table = default_backends();
  auto kind_of_request = [&](const NewRequest& r) {
    for (const auto& e : table) {
      if (e.takes_request(r)) {
        return std::string(e.kind);
      }
    }
    return std::string();
  };
  auto kind_of_row = [&](const SandboxRow& row) {
    for (const auto& e : table) {
      if (e.takes_row(row)) {
        return std::string(e.kind);
      }
    }
    return std::string();
  };
  NewRequest r;
  EXPECT_EQ(kind_of_request(r), "container");
  r.slurm = true;
  EXPECT_EQ(kind_of_request(r), "slurm");
  SandboxRow row;
  EXPECT_EQ(kind_of_row(row), "container");
  row.slurm_job_id = "12";
  EXPECT_EQ(kind_of_row(row), "slurm");
  row.slurm_job_id.clear();
  row.wrapper = "/r/podman-srun"; // its `new` died before the job was recorded
  EXPECT_EQ(kind_of_row(row), "slurm");
}

TEST(SandboxPhaseTest, TheRegistryWordsRoundTripAndAnOriginalRowIsReady) {
  for (Phase p : {Phase::creating, Phase::ready, Phase::removing}) {
    EXPECT_EQ(parse_phase(phase_name(p)), p);
  }
  EXPECT_EQ(parse_phase(""), Phase::ready);
  EXPECT_STREQ(phase_name(Phase::creating), "creating");
  EXPECT_EQ(state_of_phase(Phase::creating).text, "creating");
}

} // namespace
} // namespace smcp::sandbox
