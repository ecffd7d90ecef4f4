#include "tools/jobs/text.h"

namespace smcp::tools {

namespace {
bool is_continuation(char c) {
  return (static_cast<unsigned char>(c) & 0xC0) == 0x80;
}
} // namespace

std::size_t utf8_prefix_length(std::string_view s, std::size_t n) {
  if (n >= s.size()) {
    return s.size();
  }
  // s[n] starts the part we drop; if it continues a sequence, drop that sequence's start too.
  std::size_t k = n;
  while (k > 0 && is_continuation(s[k])) {
    --k;
  }
  return k;
}

std::size_t utf8_suffix_start(std::string_view s, std::size_t i) {
  while (i < s.size() && is_continuation(s[i])) {
    ++i;
  }
  return i;
}

std::string omission_marker(std::uint64_t bytes, std::string_view where_full) {
  return "\n\n[... " + std::to_string(bytes) + " bytes omitted from the middle; " + std::string(where_full) +
         " ...]\n\n";
}

std::string middle_cut(std::string_view s, std::size_t max, std::string_view where_full) {
  if (s.size() <= max) {
    return std::string(s);
  }
  std::size_t head = utf8_prefix_length(s, max / 2);
  std::size_t tail = utf8_suffix_start(s, s.size() - (max - max / 2));
  std::string out;
  out.reserve(max + 200);
  out.append(s.substr(0, head));
  out += omission_marker(tail - head, where_full);
  out.append(s.substr(tail));
  return out;
}

std::string_view last_line(std::string_view text) {
  auto nl = text.find_last_of('\n');
  return nl == std::string_view::npos ? text : text.substr(nl + 1);
}

} // namespace smcp::tools
