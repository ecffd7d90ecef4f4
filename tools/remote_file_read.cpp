#include "tools/common.h"
#include "tools/tools.h"

#include <cstdio>

namespace smcp::tools {

namespace {

const char* k_input_schema = R"({
  "type": "object",
  "properties": {
    "file_path": {"type": "string", "minLength": 1, "description": "Path of a text file on the host (absolute, or relative to the host's default directory)."},
    "offset": {"type": "integer", "default": 1,
      "description": "First line to return, 1-based; negative counts from the end (-100 = the last 100 lines). Not 0."},
    "limit": {"type": "integer", "minimum": 1, "maximum": 100000, "default": 2000, "description": "Number of lines."},
    "host": {"type": "string", "minLength": 1, "description": "'local' or an ssh alias; default: the default host."},
    "sandbox": {"type": "string", "minLength": 1, "description": "Read inside this sandbox's container (relative paths from /workspace); instead of host."}
  },
  "required": ["file_path"],
  "additionalProperties": false
})";

const char* k_output_schema = R"({
  "type": "object",
  "properties": {
    "content": {"type": "string", "description": "The lines, numbered like `cat -n` (negative numbers count from the end when the file is too large to count)."},
    "start_line": {"type": "integer"},
    "lines": {"type": "integer", "description": "Number of lines returned."},
    "truncated": {"type": "boolean", "description": "More lines follow the window, or long lines were cut."},
    "more_before": {"type": "boolean"},
    "more_after": {"type": "boolean"},
    "total_lines": {"type": ["integer", "null"]},
    "file_path": {"type": "string"},
    "host": {"type": "string"}
  },
  "required": ["content", "start_line", "lines", "truncated"],
  "additionalProperties": false
})";

} // namespace

mcp::Tool make_remote_file_read_tool(ToolEnv& env) {
  mcp::Tool tool = declare_tool(
      "remote_file_read", "Read a window of a text file on a host",
      "Read lines of a text file on a host, numbered like `cat -n`. offset is the first line (1-based); a "
      "negative offset reads from the end (offset: -100 is the last 100 lines) without reading the whole file, "
      "so the tail of a multi-GB log is cheap. limit is the number of lines (default 2000); lines longer than 2000 "
      "bytes are cut with a marker. Binary files and directories are refused.",
      json::parse(k_input_schema), json::parse(k_output_schema),
      {.read_only = true, .destructive = false, .idempotent = true, .open_world = true});
  tool.handler = [&env](const json& args, mcp::ToolContext&) -> mcp::ToolResult {
    exec::FileReadRequest req;
    req.path = arg_string(args, "file_path");
    req.offset = static_cast<long>(arg_int(args, "offset", 1));
    req.limit = static_cast<std::size_t>(arg_int(args, "limit", 2000));
    if (req.offset == 0) {
      throw mcp::InvalidArgument("offset", "must not be 0: use 1 for the first line or -N for the last N lines");
    }
    std::string host_name = arg_string(args, "host");
    if (const std::string sandbox = arg_string(args, "sandbox"); !sandbox.empty()) {
      if (!host_name.empty()) {
        throw mcp::InvalidArgument("sandbox", "remote_file_read: give either host or sandbox, not both");
      }
      host_name = sandbox_host_name(env, "remote_file_read", sandbox);
    }
    const std::string label = host_label(env.hosts, host_name);
    return guarded("remote_file_read", label, [&]() -> mcp::ToolResult {
      auto host = env.hosts.get(host_name);
      exec::FileWindow w = host->read_file(req);
      std::string content;
      long n = w.start_line;
      char num[32];
      for (const auto& line : w.lines) {
        std::snprintf(num, sizeof num, "%6ld\t", n);
        content += num;
        content += line;
        content += '\n';
        ++n;
        if (n == 0) {
          n = 1; // never happens for windows counted from the end (they stop at -1)
        }
      }
      json out = {
          {"content", std::move(content)},
          {"start_line", w.start_line},
          {"lines", w.lines.size()},
          {"truncated", w.more_after || w.cut_lines},
          {"more_before", w.more_before},
          {"more_after", w.more_after},
          {"total_lines", w.total_lines ? json(*w.total_lines) : json(nullptr)},
          {"file_path", req.path},
          {"host", host->name()},
      };
      return mcp::ToolResult::ok(std::move(out));
    });
  };
  return tool;
}

} // namespace smcp::tools
