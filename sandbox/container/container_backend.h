// The container backend: a sandbox is a podman or docker container on its host (this machine or an
// SSH host), with tmux inside. See sandbox/backend.h.
#pragma once

#include "sandbox/backend.h"

#include <memory>

namespace smcp::sandbox {

std::unique_ptr<SandboxBackend> make_container_backend(BackendEnv& env);

} // namespace smcp::sandbox
