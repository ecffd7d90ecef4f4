// Small text helpers shared by the tools: UTF-8-safe cuts, middle truncation with a marker, and
// line iteration over output buffers.
#pragma once

#include "sandbox/exec/words.h"

#include <cstdint>
#include <string>
#include <string_view>

namespace smcp::tools {

// The largest k <= n such that s[0, k) does not end inside a UTF-8 sequence.
std::size_t utf8_prefix_length(std::string_view s, std::size_t n);
// The smallest j >= i such that s[j] does not continue a UTF-8 sequence (or s.size()).
std::size_t utf8_suffix_start(std::string_view s, std::size_t i);

// The marker that stands where the middle of an output was cut out.
std::string omission_marker(std::uint64_t bytes, std::string_view where_full);

// `s` if it fits in `max` bytes, else its head and tail with a marker in between saying how many
// bytes were omitted and `where_full` (where to find everything).
std::string middle_cut(std::string_view s, std::size_t max, std::string_view where_full);

// Calls fn(line) for each line of a text, without its newline (sandbox/exec/words.h).
using exec::for_each_line;

// The last line of `text` (after its last '\n'; the whole text when there is none).
std::string_view last_line(std::string_view text);

} // namespace smcp::tools
