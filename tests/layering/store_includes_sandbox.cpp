// Must NOT compile: smcp_store may not include sandbox/registry.h
// (see docs/ARCHITECTURE.md).
#include "sandbox/registry.h"
