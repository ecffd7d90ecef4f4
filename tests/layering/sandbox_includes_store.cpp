// Must NOT compile: smcp_sandbox may not include mcp-server/store/state_store.h
// (see docs/ARCHITECTURE.md).
#include "mcp-server/store/state_store.h"
