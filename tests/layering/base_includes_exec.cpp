// Must NOT compile: smcp_base may not include sandbox/exec/host.h
// (see docs/ARCHITECTURE.md).
#include "sandbox/exec/host.h"
