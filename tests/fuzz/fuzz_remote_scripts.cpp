// Fuzzes the parsers of what the remote scripts print on a host (sandbox/exec/script_parsers.h): the
// host probe, the foreground supervisor's stderr records (split into chunks anywhere), the job
// start / job read (status + output window framing) / kill answers and the file window framing.
// A host's answer is untrusted text: a parser may throw exec::HostError, nothing else.
//
// Input: byte 0 picks the parser, bytes 1-8 its parameters, the rest is the host's answer.
#include "sandbox/exec/script_parsers.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace {

using namespace smcp;

void check(bool ok) {
  if (!ok) {
    __builtin_trap();
  }
}

// The supervisor's record filter: fed in chunks of `chunk` bytes, it must return exactly the input
// when no record start byte is in it, and records never hold a newline.
void marker_filter(std::string_view out, std::size_t chunk) {
  exec::MarkerFilter filter("n0nce");
  std::string passed;
  for (std::size_t i = 0; i < out.size(); i += chunk) {
    passed += filter.feed(out.substr(i, chunk));
  }
  passed += filter.flush();
  if (out.find('\x1e') == std::string_view::npos) {
    check(passed == out);
  }
  check(passed.size() <= out.size());
  exec::SupervisorReport report;
  for (const auto& record : filter.take_records()) {
    check(record.find('\n') == std::string::npos);
    exec::apply_record(record, report);
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 9) {
    return 0;
  }
  const std::uint8_t which = data[0];
  std::int64_t param = 0;
  std::memcpy(&param, data + 1, sizeof param);
  std::string_view out(reinterpret_cast<const char*>(data + 9), size - 9);
  exec::JobRef job{"job-1", "/home/u/.local/state/sandbox-mcp/jobs/job-1", 1234};
  try {
    switch (which % 6) {
    case 0:
      (void)exec::parse_probe(out);
      break;
    case 1:
      marker_filter(out, static_cast<std::size_t>(param & 0xff) + 1);
      break;
    case 2:
      check(exec::parse_job_start(out, job.dir) > 0);
      break;
    case 3: {
      auto chunk = exec::parse_job_read(out, job);
      (void)chunk;
      break;
    }
    case 4:
      (void)exec::parse_kill(out);
      break;
    case 5: {
      exec::FileReadRequest req;
      req.path = "/var/log/x.log";
      // What remote_file_read passes on: a non-zero offset within +-2^53 (tools/common.cpp arg_int).
      req.offset = static_cast<long>(std::clamp<std::int64_t>(param, -(1LL << 53), 1LL << 53));
      if (req.offset == 0) {
        req.offset = 1;
      }
      std::uint64_t count_lines_below = (param & 1) ? 64ull << 20 : 0;
      auto w = exec::parse_file_window(out, req, count_lines_below);
      (void)w;
      break;
    }
    }
  } catch (const exec::HostError&) {
    // a clear error for a malformed answer: expected
  }
  return 0;
}
