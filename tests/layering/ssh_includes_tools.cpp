// Must NOT compile: smcp_ssh may not include tools/tools.h (an upward include; see docs/ARCHITECTURE.md).
#include "tools/tools.h"
