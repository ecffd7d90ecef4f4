// Must NOT compile: smcp_sandbox may not include ssh/ssh_host.h (an upward include; see docs/ARCHITECTURE.md).
#include "ssh/ssh_host.h"
