#define PCRE2_CODE_UNIT_WIDTH 8
#include "tools/jobs/regex.h"

#include <pcre2.h>

#include <stdexcept>

namespace smcp::tools {

struct Regex::Impl {
  pcre2_code* code = nullptr;
  pcre2_match_context* context = nullptr;
  pcre2_match_data* match_data = nullptr;
  ~Impl() {
    pcre2_match_data_free(match_data);
    pcre2_match_context_free(context);
    pcre2_code_free(code);
  }
};

Regex::Regex(const std::string& pattern) : m_pattern(pattern), m_impl(std::make_unique<Impl>()) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  // No UTF flag: output is arbitrary bytes; ASCII-oriented patterns (the common case) behave as
  // expected and invalid UTF-8 cannot make matching fail.
  m_impl->code =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), 0, &error, &offset, nullptr);
  if (!m_impl->code) {
    PCRE2_UCHAR buf[256];
    pcre2_get_error_message(error, buf, sizeof buf);
    throw std::invalid_argument("invalid regular expression /" + pattern + "/: " + reinterpret_cast<const char*>(buf) +
                                " at offset " + std::to_string(offset));
  }
  pcre2_jit_compile(m_impl->code, PCRE2_JIT_COMPLETE); // best effort; interpreted matching otherwise
  m_impl->context = pcre2_match_context_create(nullptr);
  pcre2_set_match_limit(m_impl->context, 1000000);
  pcre2_set_depth_limit(m_impl->context, 10000);
  m_impl->match_data = pcre2_match_data_create_from_pattern(m_impl->code, nullptr);
}

Regex::~Regex() = default;
Regex::Regex(Regex&&) noexcept = default;
Regex& Regex::operator=(Regex&&) noexcept = default;

bool Regex::search(std::string_view line) const {
  int rc = pcre2_match(m_impl->code, reinterpret_cast<PCRE2_SPTR>(line.data()), line.size(), 0, 0, m_impl->match_data,
                       m_impl->context);
  return rc >= 0; // PCRE2_ERROR_NOMATCH, or a limit hit: treated as no match
}

} // namespace smcp::tools
