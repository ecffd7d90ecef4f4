#include "tools/common.h"

#include "sandbox/manager.h"

#include <algorithm>
#include <ctime>
#include <stdexcept>
#include <string_view>

namespace smcp::tools {

mcp::Tool declare_tool(std::string name, std::string title, std::string description, json input_schema,
                       json output_schema, mcp::ToolAnnotations annotations) {
  mcp::Tool tool;
  tool.name = std::move(name);
  tool.title = std::move(title);
  tool.description = std::move(description);
  tool.input_schema = std::move(input_schema);
  tool.output_schema = std::move(output_schema);
  tool.annotations = annotations;
  return tool;
}

std::string arg_string(const json& args, const char* name, const std::string& fallback) {
  auto it = args.find(name);
  return it != args.end() && it->is_string() ? it->get<std::string>() : fallback;
}

long long arg_int(const json& args, const char* name, long long fallback) {
  auto it = args.find(name);
  if (it == args.end() || !it->is_number()) {
    return fallback;
  }
  // Integral floats pass the schema (1e300 is an integer to JSON Schema): clamp before converting.
  constexpr long long k_limit = 1LL << 53;
  if (it->is_number_float()) {
    return static_cast<long long>(
        std::clamp(it->get<double>(), -static_cast<double>(k_limit), static_cast<double>(k_limit)));
  }
  if (it->is_number_unsigned()) {
    return static_cast<long long>(std::min<std::uint64_t>(it->get<std::uint64_t>(), k_limit));
  }
  return std::clamp(it->get<long long>(), -k_limit, k_limit);
}

bool arg_bool(const json& args, const char* name, bool fallback) {
  auto it = args.find(name);
  return it != args.end() && it->is_boolean() ? it->get<bool>() : fallback;
}

std::string host_label(const HostRegistry& hosts, const std::string& host) {
  return host.empty() ? hosts.default_name() : host;
}

mcp::ToolResult guarded(const std::string& tool, const std::string& host,
                        const std::function<mcp::ToolResult()>& body) {
  try {
    return body();
  } catch (const exec::HostError& e) {
    std::string advice;
    switch (e.kind()) {
    case exec::HostError::Kind::unreachable:
      if (std::string_view(e.what()).rfind("nothing ran: ", 0) == 0) { // the SSH helper did not take it
        advice = " The command did not start; it can be sent again.";
      } else if (std::string_view(e.what()).find("it may have started") != std::string_view::npos) {
        advice = " Check whether it ran (its files, `ps`) before sending it again: sending it blindly may run "
                 "it twice.";
      } else if (host.rfind(sandbox::SandboxManager::k_host_prefix, 0) != 0) { // a sandbox's message says what to do
        advice = " The host could not be reached; check that it is up and that `ssh " + host +
                 " true` works, then retry. Background jobs already started keep running there.";
      }
      break;
    case exec::HostError::Kind::refused:
      advice = " The host refused the request; see the message for how to fix it.";
      break;
    case exec::HostError::Kind::not_found:
    case exec::HostError::Kind::invalid:
    case exec::HostError::Kind::io:
      break;
    }
    throw mcp::ToolError(tool + " failed on host '" + host + "': " + e.what() + advice);
  } catch (const state::StoreFull& e) {
    throw mcp::ToolError(tool + ": " + e.what());
  } catch (const std::out_of_range& e) {
    throw mcp::ToolError(tool + ": " + e.what());
  } catch (const std::logic_error& e) {
    throw mcp::ToolError(tool + ": " + e.what());
  }
}

std::string iso_time(std::int64_t ms) {
  if (ms <= 0) {
    return {};
  }
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%03dZ", static_cast<int>(ms % 1000));
  return buf;
}

json signal_json(const std::optional<int>& signal) {
  return signal ? json(exec::signal_name(*signal)) : json(nullptr);
}

json job_state_json(const state::JobRecord& j) {
  return {
      {"bash_id", j.id},
      {"status", j.status},
      {"exit_code", j.exit_code ? json(*j.exit_code) : json(nullptr)},
      {"signal", signal_json(j.signal)},
      {"host", j.host},
  };
}

json job_answer_schema(const char* schema) {
  json out = json::parse(schema);
  out["properties"].update(json::parse(R"({
    "bash_id": {"type": "string"},
    "status": {"type": "string", "enum": ["running", "exited", "killed", "unreachable"]},
    "exit_code": {"type": ["integer", "null"]},
    "signal": {"type": ["string", "null"]},
    "host": {"type": "string"}
  })"));
  return out;
}

void add_note(json& out, const std::string& note) {
  if (!note.empty()) {
    out["note"] = note;
  }
}

void add_output_file(json& out, const state::JobRecord& j) {
  if (!j.job_dir.empty()) {
    out["output_file"] = j.job_dir + "/output";
    out["output_file_host"] = j.host;
  } else if (!j.spill_path.empty()) {
    out["output_file"] = j.spill_path;
    out["output_file_host"] = "local";
  }
}

json job_json(const state::JobRecord& j) {
  json out = job_state_json(j);
  out["command"] = j.command;
  out["description"] = j.description;
  out["started_at"] = iso_time(j.started_at_ms);
  out["ended_at"] = j.ended_at_ms ? json(iso_time(j.ended_at_ms)) : json(nullptr);
  out["durable"] = j.durable;
  if (j.host.rfind(sandbox::SandboxManager::k_host_prefix, 0) == 0) {
    out["sandbox"] = sandbox::sandbox_of_host(j.host);
  }
  add_output_file(out, j);
  return out;
}

} // namespace smcp::tools
