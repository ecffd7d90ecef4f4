// Splitting what a program prints into lines and words, for the parsers of remote answers and of
// `ssh -G`.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace smcp::exec {

// The words of `line`, separated by runs of spaces and tabs.
std::vector<std::string> split_words(std::string_view line);

// Calls f(line) for each line of `text`, without its newline (the last one may lack it).
template <typename F> void for_each_line(std::string_view text, F&& f) {
  while (!text.empty()) {
    auto nl = text.find('\n');
    if (nl == std::string_view::npos) {
      f(text);
      return;
    }
    f(text.substr(0, nl));
    text.remove_prefix(nl + 1);
  }
}

} // namespace smcp::exec
