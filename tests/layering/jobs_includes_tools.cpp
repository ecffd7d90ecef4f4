// Must NOT compile: smcp_jobs may not include tools/common.h (an upward include; see docs/ARCHITECTURE.md).
#include "tools/common.h"
