#include "sandbox/exec/remote_executor.h"
#include "sandbox/gpu/gpus.h"
#include "sandbox/manager.h"
#include "tools/common.h"
#include "tools/profile_runner.h"
#include "tools/tools.h"

#include <chrono>
#include <future>
#include <map>

namespace smcp::tools {

namespace {

const char* k_input_schema = R"json({
  "type": "object",
  "properties": {
    "probe": {"type": "boolean", "default": false,
      "description": "Also run `true` on every SSH host (in parallel, 15 s limit) and report the round trip; connects hosts not yet connected."},
    "host": {"type": "string", "minLength": 1, "description": "Only this host."},
    "refresh_env": {"type": "boolean", "default": false,
      "description": "Take the user's shell environment (what ~/.bashrc and the other startup files set up) again on each SSH host, or only `host`: after installing something that changes them indirectly. Edits to ~/.bashrc itself are noticed without this."}
  },
  "additionalProperties": false
})json";

const char* k_output_schema = R"json({
  "type": "object",
  "properties": {
    "default_host": {"type": "string"},
    "hosts": {"type": "array", "items": {
      "type": "object",
      "properties": {
        "name": {"type": "string"},
        "kind": {"type": "string", "enum": ["local", "ssh", "sandbox", "other"]},
        "default": {"type": "boolean"},
        "target": {"type": "string", "description": "user@hostname:port as resolved by `ssh -G`"},
        "via": {"type": "array", "items": {"type": "string"}, "description": "ProxyJump hops"},
        "state": {"type": "string", "enum": ["connected", "connecting", "disconnected", "idle", "error"]},
        "connected": {"type": "boolean"},
        "sessions": {"type": "integer"},
        "connecting": {"type": "integer"},
        "channels_in_use": {"type": "integer"},
        "queued": {"type": "integer"},
        "max_sessions": {"type": "integer"},
        "max_channels_per_session": {"type": "integer"},
        "max_concurrency": {"type": "integer"},
        "connects": {"type": "integer"},
        "calls": {"type": "integer"},
        "last_error": {"type": ["string", "null"]},
        "last_error_at": {"type": ["string", "null"]},
        "latency_ms": {"type": ["number", "null"], "description": "channel open + exec acknowledged, latest call"},
        "probe_ms": {"type": ["number", "null"]},
        "probe_error": {"type": ["string", "null"]},
        "host_key_policy": {"type": "string"},
        "bwrap": {"type": "string", "description": "with probe: 'ok' when bubblewrap profiles work on the host, else what is missing"},
        "gpus": {"type": "array", "description": "with probe: the host's NVIDIA GPUs (nvidia-smi), how busy each is, and which sandboxes hold it; pick a free one for sandbox_new {gpus}", "items": {"type": "object", "properties": {
          "index": {"type": "integer"}, "name": {"type": "string"},
          "memory_used_mib": {"type": ["integer", "null"]}, "memory_total_mib": {"type": ["integer", "null"]},
          "utilization_pct": {"type": ["integer", "null"]},
          "sandboxes": {"type": "array", "items": {"type": "string"}, "description": "sandboxes holding it (name, with (shared) when shared)"}}}},
        "gpu_note": {"type": "string", "description": "with probe: why no GPU is listed (no nvidia-smi, or its error)"},
        "shell_env": {"type": "string", "enum": ["snapshot", "login-env", "login-shell"], "description": "how commands get the user's shell environment: snapshot (the startup files ran once; their variables, functions, aliases and options are loaded per command), login-env (their variables only), login-shell (they run for every command)"},
        "shell_env_note": {"type": "string"},
        "refresh_env": {"type": "string", "description": "with refresh_env: what was done"}
      },
      "required": ["name", "kind", "state", "connected"]
    }}
  },
  "required": ["default_host", "hosts"],
  "additionalProperties": false
})json";

class NullSink final : public exec::OutputSink {
public:
  void on_output(exec::Stream, std::string_view) override {}
};

class StringSink final : public exec::OutputSink {
public:
  void on_output(exec::Stream s, std::string_view data) override {
    std::string& to = s == exec::Stream::out ? out : err;
    if (to.size() < 256 * 1024) {
      to.append(data);
    }
  }
  std::string out, err;
};

// What `nvidia-smi` said on a host: its CSV, or why there is none.
struct GpuAnswer {
  std::string csv;
  std::string note;
};

GpuAnswer query_gpus(exec::Host& host) {
  exec::CommandSpec spec;
  spec.command = std::string("command -v nvidia-smi >/dev/null || { echo 'nvidia-smi not found' >&2; exit 127; }; ") +
                 sandbox::k_nvidia_smi_query;
  spec.timeout = std::chrono::seconds(20);
  StringSink sink;
  GpuAnswer a;
  try {
    exec::ExitInfo e = host.run(spec, sink, {});
    if (e.exit_code != 0) {
      std::string why = sink.err.empty() ? sink.out : sink.err;
      while (!why.empty() && why.back() == '\n') {
        why.pop_back();
      }
      a.note = why.empty() ? "nvidia-smi failed" : why.substr(0, 500);
    }
  } catch (const std::exception& e) {
    a.note = std::string("cannot ask nvidia-smi: ") + e.what();
  }
  a.csv = std::move(sink.out);
  return a;
}

// Per host, per GPU index: the sandboxes holding it (from the registry, read once per call).
using GpuHolders = std::map<std::string, std::map<int, std::vector<std::string>>>;

GpuHolders gpu_holders(sandbox::SandboxManager* sandboxes) {
  GpuHolders holders;
  if (sandboxes) {
    for (const auto& row : sandboxes->rows()) {
      for (int i : sandbox::split_indices(row.gpus)) {
        holders[row.host][i].push_back(row.name + (row.gpu_shared ? " (shared)" : ""));
      }
    }
  }
  return holders;
}

void add_gpus(json& h, const GpuAnswer& answer, std::map<int, std::vector<std::string>> holders) {
  if (!answer.note.empty()) {
    h["gpu_note"] = answer.note;
  }
  json gpus = json::array();
  for (const auto& g : sandbox::parse_nvidia_smi(answer.csv)) {
    auto num = [](long v) { return v < 0 ? json(nullptr) : json(v); };
    gpus.push_back({{"index", g.index},
                    {"name", g.name},
                    {"memory_used_mib", num(g.memory_used_mib)},
                    {"memory_total_mib", num(g.memory_total_mib)},
                    {"utilization_pct", num(g.utilization_pct)},
                    {"sandboxes", holders[g.index]}});
  }
  h["gpus"] = std::move(gpus);
}

// A probe of one host: `true` (SSH hosts), then its GPUs (not inside a sandbox), in parallel
// with the other hosts'.
struct Probe {
  std::optional<double> ms;
  std::string error;
  std::optional<GpuAnswer> gpus;
};

Probe probe_host(exec::Host& host) {
  Probe p;
  const exec::HostStatus st = host.status();
  if (st.has_connection) {
    exec::CommandSpec spec;
    spec.command = "true";
    spec.timeout = std::chrono::seconds(15);
    NullSink sink;
    auto t0 = std::chrono::steady_clock::now();
    try {
      host.run(spec, sink, {});
      p.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    } catch (const std::exception& e) {
      p.error = e.what();
      return p;
    }
  }
  if (st.kind != "sandbox") {
    p.gpus = query_gpus(host);
  }
  return p;
}

json describe(const std::string& name, const std::shared_ptr<exec::Host>& host, const std::string& default_name) {
  json h = {{"name", name}, {"default", name == default_name}};
  const exec::HostStatus s = host->status();
  h["kind"] = s.kind;
  if (s.has_connection) {
    h["target"] = s.target;
    h["via"] = s.via;
    h["state"] = s.state;
    h["connected"] = s.sessions > 0;
    h["sessions"] = s.sessions;
    h["connecting"] = s.connecting;
    h["channels_in_use"] = s.channels_in_use;
    h["queued"] = s.queued;
    h["max_sessions"] = s.max_sessions;
    h["max_channels_per_session"] = s.max_channels_per_session;
    h["max_concurrency"] = s.max_concurrency;
    h["connects"] = s.connects;
    h["calls"] = s.calls;
    h["last_error"] = s.last_error.empty() ? json(nullptr) : json(s.last_error);
    h["last_error_at"] = s.last_error_at_ms ? json(iso_time(s.last_error_at_ms)) : json(nullptr);
    h["latency_ms"] = s.last_latency_ms ? json(*s.last_latency_ms) : json(nullptr);
    h["host_key_policy"] = s.host_key_policy;
    if (!s.shell_env.empty()) {
      h["shell_env"] = s.shell_env;
      h["shell_env_note"] = s.shell_env_note;
    }
  } else {
    h["state"] = s.state;
    h["connected"] = true;
  }
  return h;
}

// refresh_env: each connected host takes its shell environment again, all at once; what each
// answered ("failed: ..." when it could not), in the hosts' order.
std::vector<std::string>
refresh_environments(const std::vector<std::pair<std::string, std::shared_ptr<exec::Host>>>& hosts) {
  std::vector<std::future<std::string>> refreshes;
  for (const auto& entry : hosts) {
    refreshes.push_back(std::async(std::launch::async, [host = entry.second]() -> std::string {
      if (!host->status().has_connection) {
        return {};
      }
      try {
        return host->executor()->refresh_environment();
      } catch (const std::exception& e) {
        return std::string("failed: ") + e.what();
      }
    }));
  }
  std::vector<std::string> refreshed;
  for (auto& f : refreshes) {
    refreshed.push_back(f.get());
  }
  return refreshed;
}

} // namespace

mcp::Tool make_remote_hosts_tool(ToolEnv& env) {
  mcp::Tool tool = declare_tool(
      "remote_hosts", "List hosts and their connection state",
      "List the hosts the other tools can use (host argument): 'local' and the SSH hosts configured or used so far, "
      "with their connection state (sessions, channels in use, queued calls, last error, latency) and how commands "
      "get the user's shell environment. probe: true runs `true` on each SSH host to check that it answers; "
      "refresh_env: true takes the shell environment again.",
      json::parse(k_input_schema), json::parse(k_output_schema),
      {.read_only = true, .destructive = false, .idempotent = true, .open_world = true});
  tool.handler = [&env](const json& args, mcp::ToolContext&) -> mcp::ToolResult {
    const std::string only = arg_string(args, "host");
    const bool probe = arg_bool(args, "probe", false);
    const bool refresh = arg_bool(args, "refresh_env", false);
    const std::string default_name = env.hosts.default_name();
    return guarded("remote_hosts", only.empty() ? default_name : only, [&]() -> mcp::ToolResult {
      std::vector<std::string> names;
      if (only.empty()) {
        names = env.hosts.names();
        if (std::find(names.begin(), names.end(), default_name) == names.end()) {
          names.push_back(default_name);
        }
      } else {
        names.push_back(only);
      }
      std::vector<std::pair<std::string, std::shared_ptr<exec::Host>>> hosts;
      json out_hosts = json::array();
      for (const auto& n : names) {
        try {
          hosts.emplace_back(n, env.hosts.get(n));
        } catch (const std::out_of_range& e) {
          if (!only.empty()) {
            throw;
          }
          out_hosts.push_back({{"name", n},
                               {"kind", "other"},
                               {"default", n == default_name},
                               {"state", "error"},
                               {"connected", false},
                               {"last_error", e.what()}});
        }
      }
      // Before the probes run their commands.
      const std::vector<std::string> refreshed =
          refresh ? refresh_environments(hosts) : std::vector<std::string>(hosts.size());
      std::vector<std::future<Probe>> probes;
      if (probe) {
        for (auto& [n, h] : hosts) {
          probes.push_back(std::async(std::launch::async, [host = h] { return probe_host(*host); }));
        }
      }
      const GpuHolders holders = probe ? gpu_holders(env.sandboxes) : GpuHolders{};
      for (std::size_t i = 0; i < hosts.size(); ++i) {
        Probe p;
        if (probe) {
          p = probes[i].get();
        }
        const std::string& probe_error = p.error;
        json h = describe(hosts[i].first, hosts[i].second, default_name);
        if (!refreshed[i].empty()) {
          h["refresh_env"] = refreshed[i];
        }
        if (probe && h["kind"] == "ssh") {
          h["probe_ms"] = p.ms ? json(*p.ms) : json(nullptr);
          h["probe_error"] = probe_error.empty() ? json(nullptr) : json(probe_error);
        }
        if (p.gpus) {
          auto it = holders.find(hosts[i].first);
          add_gpus(h, *p.gpus, it == holders.end() ? std::map<int, std::vector<std::string>>{} : it->second);
        }
        if (probe && env.profiles && probe_error.empty()) {
          try {
            h["bwrap"] = env.profiles->probe(*hosts[i].second);
          } catch (const std::exception& e) {
            h["bwrap"] = std::string("unknown: ") + e.what();
          }
        }
        out_hosts.push_back(std::move(h));
      }
      return mcp::ToolResult::ok({{"default_host", default_name}, {"hosts", std::move(out_hosts)}});
    });
  };
  return tool;
}

} // namespace smcp::tools
