// Text helpers for code that runs between fork and exec/_exit (the supervisors, the process-tree
// walk): no allocation, no locale, no stdio. All async-signal-safe.
#pragma once

#include <cstddef>

namespace smcp::exec {

// Writes `value` in decimal to `buf` (room for 21 bytes); returns how many bytes were written.
std::size_t format_int(char* buf, long value);

// Copies the NUL-terminated `text` into `buf` at `at`; returns the position after it.
std::size_t append_text(char* buf, std::size_t at, const char* text);

// Parses a decimal number (with an optional leading '-') at `p` and advances `p` past it.
long parse_long(const char*& p);

} // namespace smcp::exec
