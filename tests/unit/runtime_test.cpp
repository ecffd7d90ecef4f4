// sandbox/container/runtime.cpp: the podman/docker argv that tell which containers hold GPUs.
#include "sandbox/container/runtime.h"

#include <gtest/gtest.h>

namespace smcp::sandbox {
namespace {

using Argv = std::vector<std::string>;

TEST(ContainerRuntime, GpuHoldersAreListedWithEachRuntimesTemplateSyntax) {
  EXPECT_EQ(gpu_holder_ids_argv(Runtime::podman), (Argv{"podman", "ps", "-aq", "--filter", "label=sandbox-mcp.gpus"}));
  EXPECT_EQ(gpu_holder_ids_argv(Runtime::docker), (Argv{"docker", "ps", "-aq", "--filter", "label=sandbox-mcp.gpus"}));
  // podman's ps has the labels as a map; docker's as one string, with a .Label function.
  EXPECT_EQ(gpu_holders_argv(Runtime::podman).back(),
            "{{.Names}}|{{index .Labels \"sandbox-mcp.gpus\"}}|{{index .Labels \"sandbox-mcp.gpu_kind\"}}");
  EXPECT_EQ(gpu_holders_argv(Runtime::docker).back(),
            "{{.Names}}|{{.Label \"sandbox-mcp.gpus\"}}|{{.Label \"sandbox-mcp.gpu_kind\"}}");
  // inspect's .Config.Labels is a map in both.
  const Argv created = gpu_holders_created_argv(Runtime::docker, {"a", "b"});
  EXPECT_EQ(created[4], "{{.Name}}|{{index .Config.Labels \"sandbox-mcp.gpus\"}}|{{.Created}}|{{index .Config.Labels "
                        "\"sandbox-mcp.gpu_kind\"}}");
  EXPECT_EQ(Argv(created.end() - 2, created.end()), (Argv{"a", "b"}));
}

} // namespace
} // namespace smcp::sandbox
