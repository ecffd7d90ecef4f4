// Must NOT compile: smcp_exec may not include ssh/pool.h (an upward include; see docs/ARCHITECTURE.md).
#include "ssh/pool.h"
