// Job outputs as MCP resources: job://BASH_ID/output lists and reads the newest output of a job
// (without moving its read cursor); subscribers hear when it grows or the job ends.
#pragma once

#include "mcp-server/core/resource.h"
#include "tools/jobs/jobs.h"

#include <memory>

namespace smcp::tools {

std::string job_resource_uri(const std::string& bash_id);
std::shared_ptr<mcp::ResourceProvider> make_job_resources(JobManager& jobs);

} // namespace smcp::tools
