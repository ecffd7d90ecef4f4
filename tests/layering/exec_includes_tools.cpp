// Must NOT compile: smcp_exec may not include tools/jobs/jobs.h (an upward include; see docs/ARCHITECTURE.md).
#include "tools/jobs/jobs.h"
