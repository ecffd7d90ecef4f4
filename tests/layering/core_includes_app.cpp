// Must NOT compile: smcp_mcp may not include mcp-server/app/app.h (an upward include; see docs/ARCHITECTURE.md).
#include "mcp-server/app/app.h"
