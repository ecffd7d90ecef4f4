#include "mcp-server/base/text.h"

namespace smcp::text {

std::string_view trim_view(std::string_view s, std::string_view chars) {
  const auto b = s.find_first_not_of(chars);
  if (b == std::string_view::npos) {
    return {};
  }
  return s.substr(b, s.find_last_not_of(chars) - b + 1);
}

std::string trim(std::string_view s, std::string_view chars) {
  return std::string(trim_view(s, chars));
}

} // namespace smcp::text
