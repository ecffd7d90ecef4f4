#include "tools/result_text.h"

#include <cstdio>
#include <functional>
#include <map>
#include <vector>

namespace smcp::tools {

namespace {

constexpr const char* k_sep = " \xC2\xB7 "; // " · "

std::string str(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

long long num(const json& j, const char* key, long long fallback = 0) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<long long>() : fallback;
}

bool flag(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() && it->get<bool>();
}

bool has_int(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number_integer();
}

std::string join(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& p : parts) {
    if (p.empty()) {
      continue;
    }
    if (!out.empty()) {
      out += k_sep;
    }
    out += p;
  }
  return out;
}

// "[a · b · c]" on its own line.
std::string status_line(const std::vector<std::string>& parts) {
  return "[" + join(parts) + "]";
}

// Output text followed by a newline unless empty or already ending with one.
std::string block(const std::string& text) {
  if (text.empty() || text.back() == '\n') {
    return text;
  }
  return text + "\n";
}

// How a finished command or job ended: "exit 3", "killed by SIGTERM", "killed".
std::string ending(const json& r) {
  std::string status = str(r, "status");
  const std::string signal = str(r, "signal");
  if (has_int(r, "exit_code")) {
    return "exit " + std::to_string(num(r, "exit_code"));
  }
  if (!signal.empty()) {
    return "killed by " + signal;
  }
  return status;
}

std::string host_part(const json& r) {
  const std::string host = str(r, "host");
  return host.empty() || host == "local" ? std::string() : "on " + host;
}

std::string remote_bash(const json& r) {
  const std::string status = str(r, "status");
  const std::string id = str(r, "bash_id");
  std::string out = block(str(r, "stdout"));
  if (const std::string err = str(r, "stderr"); !err.empty()) {
    out += "[stderr]\n" + block(err);
  }
  if (status == "running") {
    const long long ran = num(r, "duration_ms");
    return out +
           status_line({"running in the background", id, host_part(r),
                        ran > 0 ? "still running after " + human_duration(ran) : std::string(),
                        "read with remote_bash_output"}) +
           "\n";
  }
  std::vector<std::string> parts = {ending(r), human_duration(num(r, "duration_ms")), host_part(r)};
  if (flag(r, "timed_out")) {
    parts.emplace_back("timed out: process tree ended");
  }
  if (flag(r, "truncated")) {
    parts.push_back("cut in the middle; all of it: remote_bash_output " + id);
  } else if (!id.empty()) {
    parts.push_back(id);
  }
  return out + status_line(parts) + "\n";
}

std::string remote_bash_output(const json& r) {
  const std::string status = str(r, "status");
  std::string out = block(str(r, "output"));
  std::vector<std::string> parts;
  parts.push_back(status == "running" ? "running" : status == "unreachable" ? "unreachable" : ending(r));
  if (out.empty()) {
    parts.emplace_back("no new output");
  }
  if (const long long skipped = num(r, "skipped_lines"); skipped > 0) {
    parts.push_back(std::to_string(skipped) + (skipped == 1 ? " line" : " lines") + " filtered out");
  }
  if (const long long dropped = num(r, "dropped_bytes"); dropped > 0) {
    parts.push_back(human_bytes(dropped) + " fell out of memory (all in " + str(r, "output_file") + ")");
  }
  if (flag(r, "truncated")) {
    parts.push_back("cut in the middle (all in " + str(r, "output_file") + ")");
  }
  if ((status == "unreachable" || (status == "killed" && str(r, "signal").empty())) && !str(r, "note").empty()) {
    parts.push_back(str(r, "note"));
  }
  return out + status_line(parts) + "\n";
}

std::string remote_bash_kill(const json& r) {
  const std::string status = str(r, "status");
  std::vector<std::string> parts = {str(r, "bash_id")};
  if (status == "running") {
    parts.emplace_back("still running");
  } else if (flag(r, "signalled")) {
    parts.push_back(ending(r));
  } else {
    parts.push_back("had already ended: " + ending(r));
  }
  parts.emplace_back(flag(r, "verified") ? "no process left" : "NOT verified: processes may remain");
  if (flag(r, "removed")) {
    parts.emplace_back("files removed");
  }
  if (!flag(r, "verified") && !str(r, "note").empty()) {
    parts.push_back(str(r, "note"));
  }
  return status_line(parts) + "\n";
}

std::string remote_file_read(const json& r) {
  std::string out = block(str(r, "content"));
  const long long lines = num(r, "lines");
  const long long start = num(r, "start_line", 1);
  std::vector<std::string> parts;
  std::string total;
  if (has_int(r, "total_lines")) {
    total = " of " + std::to_string(num(r, "total_lines"));
  }
  if (lines == 0) {
    parts.push_back("no lines" + (total.empty() ? std::string() : " (file has" + total.substr(3) + ")"));
  } else if (start < 0) { // a tail window of a file too large to count, numbered from the end
    parts.push_back("lines " + std::to_string(start) + " to " + std::to_string(start + lines - 1) + " from the end");
  } else {
    parts.push_back((lines == 1 ? "line " + std::to_string(start)
                                : "lines " + std::to_string(start) + "-" + std::to_string(start + lines - 1)) +
                    total);
  }
  if (flag(r, "more_after")) {
    parts.push_back("more: offset " + std::to_string(start + lines));
  }
  if (flag(r, "truncated") && !flag(r, "more_after")) {
    parts.emplace_back("long lines cut");
  }
  if (!host_part(r).empty()) {
    parts.push_back(host_part(r));
  }
  return out + status_line(parts) + "\n";
}

std::string remote_bash_list(const json& r) {
  const auto& jobs = r.value("jobs", json::array());
  if (jobs.empty()) {
    return "[no jobs]\n";
  }
  std::string out;
  for (const auto& j : jobs) {
    std::string state = str(j, "status") == "running" ? "running" : ending(j);
    std::string command = str(j, "command");
    if (command.size() > 80) {
      command = command.substr(0, 77) + "...";
    }
    for (auto& c : command) {
      if (c == '\n') {
        c = ' ';
      }
    }
    out +=
        str(j, "bash_id") + "  " + state + "  " + str(j, "host") + "  " + str(j, "started_at") + "  " + command + "\n";
  }
  return out + "[" + std::to_string(jobs.size()) + (jobs.size() == 1 ? " job" : " jobs") + "]\n";
}

std::string remote_hosts(const json& r) {
  std::string out;
  for (const auto& h : r.value("hosts", json::array())) {
    std::vector<std::string> parts = {str(h, "kind"), str(h, "target"), str(h, "state")};
    if (flag(h, "default")) {
      parts.emplace_back("default");
    }
    if (h.contains("probe_ms") && h["probe_ms"].is_number()) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "probe %.1f ms", h["probe_ms"].get<double>());
      parts.emplace_back(buf);
    }
    if (!str(h, "probe_error").empty()) {
      parts.push_back("probe failed: " + str(h, "probe_error"));
    }
    if (!str(h, "last_error").empty()) {
      parts.push_back("last error: " + str(h, "last_error"));
    }
    out += str(h, "name") + "  " + join(parts) + "\n";
  }
  return out;
}

} // namespace

std::string human_duration(long long ms) {
  char buf[32];
  if (ms < 1000) {
    std::snprintf(buf, sizeof buf, "%lld ms", ms);
  } else if (ms < 60000) {
    std::snprintf(buf, sizeof buf, "%.1f s", static_cast<double>(ms) / 1000.0);
  } else {
    std::snprintf(buf, sizeof buf, "%lld min %lld s", ms / 60000, (ms % 60000) / 1000);
  }
  return buf;
}

std::string human_bytes(long long bytes) {
  char buf[32];
  if (bytes < 1024) {
    std::snprintf(buf, sizeof buf, "%lld B", bytes);
  } else if (bytes < 1024 * 1024) {
    std::snprintf(buf, sizeof buf, "%.1f KiB", static_cast<double>(bytes) / 1024.0);
  } else if (bytes < 1024LL * 1024 * 1024) {
    std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
  } else {
    std::snprintf(buf, sizeof buf, "%.1f GiB", static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0));
  }
  return buf;
}

std::string result_text(const std::string& tool, const json& structured) {
  static const std::map<std::string, std::function<std::string(const json&)>> renderers = {
      {"remote_bash", remote_bash},           {"remote_bash_output", remote_bash_output},
      {"remote_bash_kill", remote_bash_kill}, {"remote_file_read", remote_file_read},
      {"remote_bash_list", remote_bash_list}, {"remote_hosts", remote_hosts},
  };
  if (!structured.is_object()) {
    return {};
  }
  auto it = renderers.find(tool);
  return it == renderers.end() ? std::string() : it->second(structured);
}

} // namespace smcp::tools
