// Text helpers shared by every library (the parsers of what programs print, of `ssh -G`, of HTTP
// headers): one of each, so that they cannot drift apart.
#pragma once

#include <string>
#include <string_view>

namespace smcp::text {

// Spaces, tabs, carriage returns and newlines.
inline constexpr std::string_view k_blanks = " \t\r\n";

// `s` without the leading and trailing characters in `chars`.
std::string trim(std::string_view s, std::string_view chars = k_blanks);
// The same as a view into `s` (which must outlive it).
std::string_view trim_view(std::string_view s, std::string_view chars = k_blanks);

} // namespace smcp::text
