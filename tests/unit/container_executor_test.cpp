// ContainerExecutor (sandbox/container/container_executor.cpp): commands wrapped in the runtime's exec.
#include "sandbox/container/container_executor.h"
#include "tests/support/recording_executor.h"

#include <gtest/gtest.h>
#include <gmock/gmock.h>

namespace smcp::sandbox {
namespace {

using ::testing::HasSubstr;
using Argv = std::vector<std::string>;

TEST(ContainerExecutorTest, WrapsCommandsInRuntimeExec) {
  auto rec = std::make_shared<testing::RecordingExecutor>();
  ContainerExecutor x(rec, Runtime::podman, "c1", "local");
  exec::RemoteCommand cmd;
  cmd.exec = "echo 'a b'";
  cmd.input = "script";
  x.run(cmd, std::chrono::seconds(5));
  exec::RemoteCommand argv_cmd;
  argv_cmd.argv = {"tmux", "ls"};
  x.run(argv_cmd, std::chrono::seconds(5));
  auto calls = rec->calls();
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0].argv, (Argv{"podman", "exec", "-i", "c1", "sh", "-c", "echo 'a b'"}));
  EXPECT_EQ(calls[0].input, "script");
  EXPECT_EQ(calls[1].argv, (Argv{"podman", "exec", "-i", "c1", "tmux", "ls"}));
}

// docker's client exits 1 when the engine refuses an exec (the container is gone or stopped): the
// container is asked, and the call fails as an unreachable host; a command's own 1 in a running
// container stays its result.
TEST(ContainerExecutorTest, DockerExecStatusOneAsksWhetherTheContainerRuns) {
  auto rec = std::make_shared<testing::RecordingExecutor>();
  ContainerExecutor x(rec, Runtime::docker, "c1", "local");
  exec::RemoteCommand cmd;
  cmd.exec = "false";
  rec->answer({"docker", "exec"}, 1, "", "Error response from daemon: No such container: c1");
  rec->answer({"docker", "container", "inspect"}, 1, "", "Error: No such container: c1");
  try {
    x.run(cmd, std::chrono::seconds(5));
    FAIL() << "a vanished container's exec passed for the command's status";
  } catch (const exec::HostError& e) {
    EXPECT_THAT(e.what(), HasSubstr("the sandbox's container c1 on local is gone"));
  }
  EXPECT_EQ(rec->matching({"docker", "container", "inspect"}).back(),
            (Argv{"docker", "container", "inspect", "--format", "{{.State.Status}}", "c1"}));
  ContainerExecutor running(rec, Runtime::docker, "c1", "local");
  rec->answer({"docker", "container", "inspect"}, 0, "running\n");
  EXPECT_EQ(running.run(cmd, std::chrono::seconds(5)).exit_status, 1);
  // A kill (137) while docker still says "running": asked again (its engine marks the container
  // exited a moment after the exec ends), and a command's own 137 in a running container stays.
  const auto asked = rec->matching({"docker", "container", "inspect"}).size();
  rec->answer({"docker", "exec"}, 137);
  ContainerExecutor killed(rec, Runtime::docker, "c1", "local");
  EXPECT_EQ(killed.run(cmd, std::chrono::seconds(5)).exit_status, 137);
  EXPECT_EQ(rec->matching({"docker", "container", "inspect"}).size(), asked + 5);
}

} // namespace
} // namespace smcp::sandbox
