// Internal to transport/ (the Streamable HTTP transport): ASCII helpers for header names and values.
#pragma once

#include "mcp-server/base/text.h"

#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>

namespace smcp::transport::http {

inline std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

inline bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

// Without leading and trailing spaces and tabs (HTTP's optional whitespace).
inline std::string_view trim(std::string_view s) {
  return text::trim_view(s, " \t");
}

} // namespace smcp::transport::http
