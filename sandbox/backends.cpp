// The one table of sandbox backends: which kind serves a `new` and which serves a registry row.
// Adding a backend: its folder (sandbox/NAME/) and one line here, before the container backend,
// which takes everything else.
#include "sandbox/backend.h"
#include "sandbox/container/container_backend.h"
#include "sandbox/slurm/slurm_backend.h"

#include <stdexcept>

namespace smcp::sandbox {

BackendTable default_backends() {
  return {
      {"slurm", [](const NewRequest& r) { return r.slurm; },
       // A row that names a job, or a wrapper (its `new` died before the job was recorded).
       [](const SandboxRow& row) { return !row.slurm_job_id.empty() || !row.wrapper.empty(); },
       [](BackendEnv& env) { return make_slurm_backend(env); }},
      {"container", [](const NewRequest&) { return true; }, [](const SandboxRow&) { return true; },
       [](BackendEnv& env) { return make_container_backend(env); }},
  };
}

GpuRequest gpus_asked(const NewRequest& request, const std::string& default_gpus) {
  try {
    return parse_gpus(request.gpus.empty() ? default_gpus : request.gpus, request.gpu_shared);
  } catch (const std::invalid_argument& e) {
    throw SandboxError(SandboxError::Kind::invalid, e.what(), "gpus");
  }
}

} // namespace smcp::sandbox
