#include "mcp-server/app/config.h"
#include "sandbox/gpu/gpus.h"

#include "sandbox/exec/run_process.h"
#include "ssh/ssh_config.h"

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <stdexcept>
#include <unistd.h>

namespace smcp::app {

using nlohmann::json;

namespace {

[[noreturn]] void bad(const std::string& origin, const std::string& what) {
  throw std::runtime_error("configuration " + origin + ": " + what + " (see docs/ssh.md)");
}

std::string expand(const std::string& path) {
  if (path == "~" || path.rfind("~/", 0) == 0) {
    return exec::local_home() + path.substr(1);
  }
  return path;
}

void warn_unknown(const json& obj, const std::set<std::string>& known, const std::string& origin,
                  const std::string& where) {
  for (const auto& [key, value] : obj.items()) {
    if (!known.count(key)) {
      spdlog::warn("configuration {}: unknown key {}{} (ignored)", origin, where, key);
    }
  }
}

std::string get_string(const json& obj, const char* key, const std::string& origin, const std::string& fallback = {}) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    return fallback;
  }
  if (!it->is_string()) {
    bad(origin, std::string(key) + " must be a string");
  }
  return it->get<std::string>();
}

std::optional<int> get_int(const json& obj, const char* key, const std::string& origin, int min, int max) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    return std::nullopt;
  }
  if (!it->is_number_integer()) {
    bad(origin, std::string(key) + " must be an integer");
  }
  auto v = it->get<long long>();
  if (v < min || v > max) {
    bad(origin, std::string(key) + " must be between " + std::to_string(min) + " and " + std::to_string(max));
  }
  return static_cast<int>(v);
}

ssh::HostKeyPolicy get_policy(const json& obj, const std::string& origin, ssh::HostKeyPolicy fallback) {
  std::string text = get_string(obj, "host_key_policy", origin);
  if (text.empty()) {
    return fallback;
  }
  auto p = ssh::parse_policy(text);
  if (!p) {
    bad(origin, "host_key_policy must be strict, accept-new or off (got '" + text + "')");
  }
  return *p;
}

std::optional<ssh::ShellEnv> get_bashrc(const json& obj, const std::string& origin) {
  std::string text = get_string(obj, "bashrc", origin);
  if (text.empty()) {
    return std::nullopt;
  }
  auto mode = ssh::parse_shell_env(text);
  if (!mode) {
    bad(origin, "bashrc must be \"snapshot\", \"skip\" or \"source\" (got '" + text + "')");
  }
  return mode;
}

std::vector<std::string> get_strings(const json& obj, const char* key, const std::string& origin) {
  std::vector<std::string> out;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    return out;
  }
  if (!it->is_array()) {
    bad(origin, std::string(key) + " must be an array of strings");
  }
  for (const auto& v : *it) {
    if (!v.is_string()) {
      bad(origin, std::string(key) + " must be an array of strings");
    }
    out.push_back(v.get<std::string>());
  }
  return out;
}

// Long because it is one flat list of keys, each read and checked where it is declared.
void parse_sandbox(const json& s, const std::string& origin, FileConfig& c) {
  if (!s.is_object()) {
    bad(origin, "sandbox must be an object");
  }
  warn_unknown(s,
               {"repo_base", "runtime", "image", "base_image", "mirror", "user", "user_home", "user_uid", "user_gid",
                "mounts", "cpus", "memory", "pids", "env", "run_args", "worktrees_dir", "gpus", "cdi_kind",
                "userns_base"},
               origin, "sandbox.");
  auto& o = c.sandbox.container;
  o.runtime = get_string(s, "runtime", origin, o.runtime);
  if (o.runtime != "auto" && o.runtime != "podman" && o.runtime != "docker") {
    bad(origin, "sandbox.runtime must be auto, podman or docker (got '" + o.runtime + "')");
  }
  c.sandbox.repo_base = expand(get_string(s, "repo_base", origin));
  o.image = get_string(s, "image", origin, o.image);
  o.user_home = get_string(s, "user_home", origin, o.user_home);
  o.user_uid = get_int(s, "user_uid", origin, 0, 1 << 30).value_or(o.user_uid);
  o.user_gid = get_int(s, "user_gid", origin, 0, 1 << 30).value_or(o.user_gid);
  // Rootful podman maps container ids 0..65535 to userns_base..: a range no host user has.
  o.userns_base = get_int(s, "userns_base", origin, 65536, 2147352576).value_or(o.userns_base);
  if (o.userns_base % 65536 != 0) {
    bad(origin, "sandbox.userns_base must be a multiple of 65536");
  }
  o.cpus = get_string(s, "cpus", origin);
  o.memory = get_string(s, "memory", origin);
  o.pids = get_int(s, "pids", origin, 0, 1 << 30).value_or(0);
  o.env_allow = get_strings(s, "env", origin);
  o.run_args = get_strings(s, "run_args", origin);
  if (auto it = s.find("gpus"); it != s.end() && it->is_number_integer()) {
    c.sandbox.default_gpus = std::to_string(it->get<long long>());
  } else {
    c.sandbox.default_gpus = get_string(s, "gpus", origin, c.sandbox.default_gpus);
  }
  try {
    sandbox::parse_gpus(c.sandbox.default_gpus);
  } catch (const std::invalid_argument& e) {
    bad(origin, std::string("sandbox.") + e.what());
  }
  c.sandbox.cdi_kind = get_string(s, "cdi_kind", origin, c.sandbox.cdi_kind);
  if (c.sandbox.cdi_kind.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/") !=
          std::string::npos ||
      c.sandbox.cdi_kind.find('/') == std::string::npos) {
    bad(origin, "sandbox.cdi_kind must look like vendor.com/class (got '" + c.sandbox.cdi_kind + "')");
  }
  c.sandbox.worktrees_dir = get_string(s, "worktrees_dir", origin, c.sandbox.worktrees_dir);
  if (!c.sandbox.worktrees_dir.empty() &&
      (c.sandbox.worktrees_dir[0] == '/' || c.sandbox.worktrees_dir.find("..") != std::string::npos)) {
    bad(origin, "sandbox.worktrees_dir must be a relative path inside the repository");
  }
  if (auto it = s.find("mounts"); it != s.end() && !it->is_null()) {
    if (!it->is_array()) {
      bad(origin, "sandbox.mounts must be an array of {source, target, read_only}");
    }
    for (const auto& m : *it) {
      if (!m.is_object()) {
        bad(origin, "sandbox.mounts must be an array of {source, target, read_only}");
      }
      sandbox::Mount mount{get_string(m, "source", origin), get_string(m, "target", origin),
                           m.value("read_only", false), m.value("slurm", false)};
      if (mount.source.empty() || mount.target.empty() || mount.target[0] != '/' ||
          mount.source.find(':') != std::string::npos || mount.target.find(':') != std::string::npos) {
        bad(origin, "each of sandbox.mounts needs a source and an absolute target, without ':'");
      }
      o.mounts.push_back(mount);
    }
  }
  c.image.image = o.image;
  c.image.base_image = get_string(s, "base_image", origin, c.image.base_image);
  c.image.mirror = get_string(s, "mirror", origin, c.image.mirror);
  c.image.user = get_string(s, "user", origin, c.image.user);
  c.image.uid = o.user_uid;
  c.image.gid = o.user_gid;
  if (o.runtime == "docker") {
    c.image.runtime = "docker";
  }
}

// The podman-srun that ships with sandbox-mcp: next to the binary (installed: bin/; built: the
// build copies it there), else none.
std::string shipped_podman_srun() {
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) {
    return {};
  }
  const auto wrapper = exe.parent_path() / "podman-srun";
  return ::access(wrapper.c_str(), X_OK) == 0 ? wrapper.string() : std::string();
}

// "slurm": the Slurm backend's job options (docs/slurm.md).
void parse_slurm(const json& doc, const std::string& origin, FileConfig& c) {
  auto it = doc.find("slurm");
  if (it == doc.end() || it->is_null()) {
    return;
  }
  if (!it->is_object()) {
    bad(origin, "slurm must be an object");
  }
  warn_unknown(*it, {"partition", "time", "cpus", "mem", "gres", "sbatch_args", "start_timeout_s", "wrapper"}, origin,
               "slurm.");
  auto& so = c.sandbox.slurm;
  so.shipped_wrapper = get_string(*it, "wrapper", origin, so.shipped_wrapper);
  if (!so.shipped_wrapper.empty() && so.shipped_wrapper[0] != '/') {
    bad(origin, "slurm.wrapper must be an absolute path (the compute nodes run it) or \"\" for none (got '" +
                    so.shipped_wrapper + "')");
  }
  so.partition = get_string(*it, "partition", origin);
  so.time_limit = get_string(*it, "time", origin);
  so.cpus = get_int(*it, "cpus", origin, 0, 1 << 20).value_or(0);
  so.mem = get_string(*it, "mem", origin);
  so.gres = get_string(*it, "gres", origin);
  so.sbatch_args = get_strings(*it, "sbatch_args", origin);
  if (auto v = get_int(*it, "start_timeout_s", origin, 1, 86400)) {
    so.start_timeout = std::chrono::seconds(*v);
  }
}

// A list of profile names ("allowed_profiles"), each one that exists.
std::vector<std::string> get_profile_names(const json& doc, const char* key, const std::string& origin,
                                           const sandbox::ProfileSettings& ps) {
  std::vector<std::string> names = get_strings(doc, key, origin);
  for (const auto& n : names) {
    if (!ps.profiles.count(n)) {
      bad(origin, std::string(key) + ": no profile named '" + n + "'");
    }
  }
  return names;
}

// "profiles": {"name": {"base": "standard", "network": true, "memory_mb": 1024, ...}},
// "default_profile" and "allowed_profiles". A profile named like a built-in changes it.
void parse_profiles(const json& doc, const std::string& origin, FileConfig& c) {
  auto& ps = c.profiles;
  if (auto it = doc.find("profiles"); it != doc.end() && !it->is_null()) {
    if (!it->is_object()) {
      bad(origin, "profiles must be an object of named profiles");
    }
    for (const auto& item : it->items()) {
      const std::string& name = item.key(); // not structured bindings: lambdas below use them (clang 14)
      const json& p = item.value();
      if (!p.is_object() || name.empty() ||
          name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                 "0123456789_.-") != std::string::npos) {
        bad(origin, "profiles." + name + " must be an object, named with letters, digits, '_', '.', '-'");
      }
      warn_unknown(p,
                   {"base", "network", "memory_mb", "cpu_seconds", "file_size_mb", "open_files", "clear_env",
                    "full_etc_var", "ro_mounts", "cwd_writable", "gpu", "gpus", "gpu_dev_dir", "unix_sockets"},
                   origin, "profiles." + name + ".");
      const std::string base = get_string(p, "base", origin, ps.profiles.count(name) ? name : "standard");
      if (!ps.profiles.count(base)) {
        bad(origin, "profiles." + name + ".base: no profile named '" + base + "'");
      }
      sandbox::Profile prof = ps.profiles[base];
      prof.name = name;
      auto flag = [&](const char* key, bool& out) {
        if (auto f = p.find(key); f != p.end()) {
          if (!f->is_boolean()) {
            bad(origin, "profiles." + name + "." + key + " must be true or false");
          }
          out = f->get<bool>();
        }
      };
      flag("network", prof.network);
      flag("clear_env", prof.clear_env);
      flag("full_etc_var", prof.full_etc_var);
      flag("cwd_writable", prof.cwd_writable);
      flag("unix_sockets", prof.unix_sockets);
      flag("gpu", prof.gpu);
      if (auto g = p.find("gpus"); g != p.end()) {
        prof.gpus = g->is_number_integer() ? std::to_string(g->get<long long>()) + "," : get_string(p, "gpus", origin);
        const bool all = prof.gpus == "all";
        if (!all && (prof.gpus.empty() || prof.gpus.find_first_not_of("0123456789, ") != std::string::npos ||
                     sandbox::split_indices(prof.gpus).empty())) {
          bad(origin, "profiles." + name + ".gpus must be \"all\" or device indices like \"0,2\"");
        }
        prof.gpu = true;
      }
      prof.gpu_dev_dir = get_string(p, "gpu_dev_dir", origin, prof.gpu_dev_dir);
      if (prof.gpu_dev_dir.empty() || prof.gpu_dev_dir[0] != '/') {
        bad(origin, "profiles." + name + ".gpu_dev_dir must be an absolute path");
      }
      prof.memory_mb = get_int(p, "memory_mb", origin, 0, 1 << 30).value_or(static_cast<int>(prof.memory_mb));
      prof.cpu_seconds = get_int(p, "cpu_seconds", origin, 0, 1 << 30).value_or(static_cast<int>(prof.cpu_seconds));
      prof.file_size_mb = get_int(p, "file_size_mb", origin, 0, 1 << 30).value_or(static_cast<int>(prof.file_size_mb));
      prof.open_files = get_int(p, "open_files", origin, 0, 1 << 20).value_or(static_cast<int>(prof.open_files));
      for (const auto& m : get_strings(p, "ro_mounts", origin)) {
        if (m.empty() || m[0] != '/') {
          bad(origin, "profiles." + name + ".ro_mounts: '" + m + "' is not an absolute path");
        }
        prof.ro_mounts.push_back(m);
      }
      ps.profiles[name] = prof;
    }
  }
  if (std::string d = get_string(doc, "default_profile", origin); !d.empty()) {
    ps.default_profile = d;
  }
  for (const auto& name : {ps.default_profile}) {
    if (!name.empty() && !ps.profiles.count(name)) {
      bad(origin, "default_profile (or SANDBOX_DEFAULT_PROFILE): no profile named '" + name + "'");
    }
  }
  // The profiles a call may name beyond the configured one, which is otherwise a ceiling.
  ps.allowed = get_profile_names(doc, "allowed_profiles", origin, ps);
  ps.local_protected.push_back(origin); // a confined command's cwd must not hold the config file
}

} // namespace

std::string default_config_path() {
  if (const char* p = std::getenv("SANDBOX_MCP_CONFIG"); p && *p) {
    return p;
  }
  if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg && *xdg) {
    return std::string(xdg) + "/sandbox-mcp/config.json";
  }
  return exec::local_home() + "/.config/sandbox-mcp/config.json";
}

FileConfig parse_config(const json& doc, const std::string& origin) {
  FileConfig c;
  c.sandbox.slurm.shipped_wrapper = shipped_podman_srun();
  c.path = origin;
  if (!doc.is_object()) {
    bad(origin, "the top level must be a JSON object");
  }
  warn_unknown(doc,
               {"default_host", "ssh_config", "ssh_program", "host_key_policy", "allow_unlisted_hosts", "pool",
                "passphrase", "hosts", "$schema", "comment", "bashrc", "sandbox", "slurm", "profiles",
                "default_profile", "allowed_profiles"},
               origin, "");
  c.default_host = get_string(doc, "default_host", origin);
  c.ssh_config = expand(get_string(doc, "ssh_config", origin));
  c.ssh_program = get_string(doc, "ssh_program", origin, "ssh");
  c.host_key_policy = get_policy(doc, origin, ssh::HostKeyPolicy::accept_new);
  c.shell_env = get_bashrc(doc, origin).value_or(ssh::ShellEnv::snapshot);
  if (auto it = doc.find("allow_unlisted_hosts"); it != doc.end()) {
    if (!it->is_boolean()) {
      bad(origin, "allow_unlisted_hosts must be true or false");
    }
    c.allow_unlisted_hosts = it->get<bool>();
  }
  if (auto it = doc.find("pool"); it != doc.end()) {
    if (!it->is_object()) {
      bad(origin, "pool must be an object");
    }
    const json& p = *it;
    warn_unknown(p,
                 {"max_sessions", "max_channels_per_session", "busy_channels", "max_concurrency", "max_handshakes",
                  "handshake_attempts", "idle_timeout_s", "last_session_idle_timeout_s", "keepalive_s",
                  "connect_timeout_s"},
                 origin, "pool.");
    auto& l = c.pool;
    l.max_sessions = get_int(p, "max_sessions", origin, 1, 64).value_or(l.max_sessions);
    l.max_channels_per_session =
        get_int(p, "max_channels_per_session", origin, 1, 256).value_or(l.max_channels_per_session);
    l.busy_channels = get_int(p, "busy_channels", origin, 1, 256).value_or(l.busy_channels);
    l.max_concurrency = get_int(p, "max_concurrency", origin, 1, 4096).value_or(l.max_concurrency);
    l.max_handshakes = get_int(p, "max_handshakes", origin, 1, 64).value_or(l.max_handshakes);
    l.handshake_attempts = get_int(p, "handshake_attempts", origin, 1, 20).value_or(l.handshake_attempts);
    if (auto v = get_int(p, "idle_timeout_s", origin, 1, 86400 * 7)) {
      l.idle_timeout = std::chrono::seconds(*v);
    }
    if (auto v = get_int(p, "last_session_idle_timeout_s", origin, 1, 86400 * 7)) {
      l.last_session_idle_timeout = std::chrono::seconds(*v);
    }
    if (auto v = get_int(p, "keepalive_s", origin, 1, 3600)) {
      l.default_keepalive = std::chrono::seconds(*v);
    }
    if (auto v = get_int(p, "connect_timeout_s", origin, 1, 3600)) {
      l.default_connect_timeout = std::chrono::seconds(*v);
    }
  }
  if (auto it = doc.find("passphrase"); it != doc.end() && !it->is_null()) {
    if (!it->is_object()) {
      bad(origin, "passphrase must be an object: {\"command\": ...}, {\"env\": ...} or {\"file\": ...}");
    }
    warn_unknown(*it, {"command", "env", "file"}, origin, "passphrase.");
    c.passphrase.command = get_string(*it, "command", origin);
    c.passphrase.env = get_string(*it, "env", origin);
    c.passphrase.file = expand(get_string(*it, "file", origin));
  }
  if (auto it = doc.find("sandbox"); it != doc.end() && !it->is_null()) {
    parse_sandbox(*it, origin, c);
  }
  parse_profiles(doc, origin, c);
  parse_slurm(doc, origin, c);
  if (auto it = doc.find("hosts"); it != doc.end()) {
    if (!it->is_array()) {
      bad(origin, "hosts must be an array of names or objects");
    }
    for (const auto& h : *it) {
      SshHostEntry e;
      if (h.is_string()) {
        e.name = h.get<std::string>();
      } else if (h.is_object()) {
        warn_unknown(h,
                     {"name", "host_key_policy", "max_concurrency", "max_sessions", "max_channels_per_session",
                      "jobs_root", "bashrc", "repo_base", "profile", "allowed_profiles"},
                     origin, "hosts[].");
        e.name = get_string(h, "name", origin);
        if (h.contains("host_key_policy")) {
          e.host_key_policy = get_policy(h, origin, c.host_key_policy);
        }
        e.max_concurrency = get_int(h, "max_concurrency", origin, 1, 4096);
        e.max_sessions = get_int(h, "max_sessions", origin, 1, 64);
        e.max_channels_per_session = get_int(h, "max_channels_per_session", origin, 1, 256);
        e.jobs_root = get_string(h, "jobs_root", origin);
        e.shell_env = get_bashrc(h, origin);
        e.repo_base = get_string(h, "repo_base", origin);
        e.profile = get_string(h, "profile", origin);
      } else {
        bad(origin, "each entry of hosts must be a name or an object with a name");
      }
      if (e.name.empty() || e.name == "local" || e.name[0] == '-' ||
          e.name.find_first_of(" \t\r\n'\"") != std::string::npos) {
        bad(origin, "host name '" + e.name + "' is not usable ('local' is this machine)");
      }
      if (!e.profile.empty()) {
        if (!c.profiles.profiles.count(e.profile)) {
          bad(origin, "hosts[]." + e.name + ".profile: no profile named '" + e.profile + "'");
        }
        c.profiles.host_default[e.name] = e.profile;
      }
      if (h.is_object() && h.contains("allowed_profiles")) {
        c.profiles.host_allowed[e.name] = get_profile_names(h, "allowed_profiles", origin, c.profiles);
      }
      c.hosts.push_back(std::move(e));
    }
  }
  return c;
}

FileConfig load_config(const std::string& path) {
  FileConfig defaults;
  if (path.empty()) {
    return defaults;
  }
  std::ifstream in(path);
  if (!in) {
    if (std::getenv("SANDBOX_MCP_CONFIG") && path == std::getenv("SANDBOX_MCP_CONFIG")) {
      throw std::runtime_error("configuration " + path + " (SANDBOX_MCP_CONFIG) cannot be read");
    }
    return defaults; // no file: the defaults
  }
  json doc;
  try {
    doc = json::parse(in, nullptr, true, /*ignore_comments=*/true);
  } catch (const json::exception& e) { // parse_error; out_of_range for a number like 1e400
    throw std::runtime_error("configuration " + path + " is not valid JSON: " + e.what());
  }
  return parse_config(doc, path);
}

} // namespace smcp::app
