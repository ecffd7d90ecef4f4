#include "sandbox/exec/signal_safe.h"

namespace smcp::exec {

std::size_t format_int(char* buf, long value) {
  char tmp[24];
  std::size_t n = 0;
  bool neg = value < 0;
  unsigned long v = neg ? 0UL - static_cast<unsigned long>(value) : static_cast<unsigned long>(value);
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v);
  std::size_t out = 0;
  if (neg) {
    buf[out++] = '-';
  }
  while (n) {
    buf[out++] = tmp[--n];
  }
  return out;
}

std::size_t append_text(char* buf, std::size_t at, const char* text) {
  while (*text) {
    buf[at++] = *text++;
  }
  return at;
}

long parse_long(const char*& p) {
  bool neg = *p == '-';
  if (neg) {
    ++p;
  }
  long v = 0;
  while (*p >= '0' && *p <= '9') {
    v = v * 10 + (*p - '0');
    ++p;
  }
  return neg ? -v : v;
}

} // namespace smcp::exec
