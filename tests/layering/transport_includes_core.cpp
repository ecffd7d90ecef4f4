// Must NOT compile: smcp_transport may not include mcp-server/core/protocol.h (an upward include; see
// docs/ARCHITECTURE.md).
#include "mcp-server/core/protocol.h"
