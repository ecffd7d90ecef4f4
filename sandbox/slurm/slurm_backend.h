// The Slurm backend: a sandbox is a podman container run by a batch job (sbatch from the host: this
// machine or a login node), entered with `srun --jobid=J --overlap` and the podman-srun wrapper.
// See sandbox/backend.h; the command lines are slurm.h's.
#pragma once

#include "sandbox/backend.h"

#include <memory>

namespace smcp::sandbox {

std::unique_ptr<SandboxBackend> make_slurm_backend(BackendEnv& env);

} // namespace smcp::sandbox
