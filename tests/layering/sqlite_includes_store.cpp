// Must NOT compile: smcp_sqlite may not include mcp-server/store/state_store.h
// (see docs/ARCHITECTURE.md).
#include "mcp-server/store/state_store.h"
