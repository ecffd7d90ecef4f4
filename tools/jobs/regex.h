// Line filters for job output: PCRE2 (Perl/ECMAScript-style syntax), compiled once, matched with a
// bounded match limit so a pathological pattern cannot hang the server. The only user of pcre2.h.
// A Regex is used by one thread at a time (it owns its match data).
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace smcp::tools {

class Regex {
public:
  // Throws std::invalid_argument with PCRE2's message and the offset of the error.
  explicit Regex(const std::string& pattern);
  ~Regex();
  Regex(Regex&&) noexcept;
  Regex& operator=(Regex&&) noexcept;

  // True when the pattern matches anywhere in `line`. Invalid UTF-8 is matched bytewise.
  bool search(std::string_view line) const;
  const std::string& pattern() const { return m_pattern; }

private:
  struct Impl;
  std::string m_pattern;
  std::unique_ptr<Impl> m_impl;
};

} // namespace smcp::tools
