// LocalHost's durable jobs, the server's side: starting one under its supervisor
// (local/job_supervisor.cpp), reading its state and output, ending its whole tree, removing it.
// A job is known only by its directory and record (JobRef), so a restarted server finds it again.
#pragma once

#include "sandbox/exec/host.h"
#include "sandbox/exec/local_host.h"

namespace smcp::exec {

JobRef start_local_job(const LocalHostOptions& options, const CommandSpec& spec, const std::string& job_id,
                       const std::string& job_dir);
JobChunk read_local_job(const LocalHostOptions& options, const JobRef& job, std::uint64_t offset,
                        std::size_t max_bytes);
bool kill_local_job(const LocalHostOptions& options, const JobRef& job, int signal, std::chrono::milliseconds grace);
void remove_local_job(const LocalHostOptions& options, const JobRef& job);

} // namespace smcp::exec
