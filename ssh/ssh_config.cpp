#include "ssh/ssh_config.h"

#include "mcp-server/base/text.h"
#include "sandbox/exec/host.h"
#include "sandbox/exec/run_process.h"
#include "sandbox/exec/words.h"

#include <charconv>
#include <fstream>
#include <glob.h>
#include <pwd.h>
#include <unistd.h>

namespace smcp::ssh {

using exec::HostError;
using exec::local_home;
using exec::ProcessResult;
using exec::run_process;

namespace {

using Clock = std::chrono::steady_clock;

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) {
    c = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
  }
  return out;
}

// `ssh -G`'s lines, without the newline: spaces, tabs and a DOS line end.
std::string trim(std::string_view s) {
  return text::trim(s, " \t\r");
}

int to_int(std::string_view s, int fallback) {
  int v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && p == s.data() + s.size() ? v : fallback;
}

std::string local_user() {
  if (const char* u = std::getenv("USER"); u && *u) {
    return u;
  }
  if (passwd* pw = ::getpwuid(::getuid())) {
    return pw->pw_name;
  }
  return "root";
}

// Config-file tokens: `Host a b "c d"` with optional quotes, and `Key=value`.
std::vector<std::string> config_tokens(std::string_view line) {
  std::vector<std::string> out;
  std::string cur;
  bool in_quote = false, have = false;
  for (char c : line) {
    if (c == '"') {
      in_quote = !in_quote;
      have = true;
      continue;
    }
    if (!in_quote && (c == ' ' || c == '\t' || (c == '=' && out.empty()))) {
      if (have) {
        out.push_back(cur);
        cur.clear();
        have = false;
      }
      continue;
    }
    cur.push_back(c);
    have = true;
  }
  if (have) {
    out.push_back(cur);
  }
  return out;
}

void scan_config(const std::string& file, const std::string& base_dir, int depth, std::set<std::string>& out) {
  if (depth > 8) {
    return;
  }
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    std::string t = trim(line);
    if (t.empty() || t[0] == '#') {
      continue;
    }
    auto tokens = config_tokens(t);
    if (tokens.empty()) {
      continue;
    }
    std::string key = lower(tokens[0]);
    if (key == "host") {
      for (std::size_t i = 1; i < tokens.size(); ++i) {
        const auto& p = tokens[i];
        if (p.empty() || p[0] == '!' || p.find_first_of("*?") != std::string::npos) {
          continue;
        }
        out.insert(p);
      }
    } else if (key == "include") {
      for (std::size_t i = 1; i < tokens.size(); ++i) {
        std::string pattern = tokens[i];
        if (pattern.rfind("~/", 0) == 0) {
          pattern = local_home() + pattern.substr(1);
        } else if (pattern.empty() || pattern[0] != '/') {
          pattern = base_dir + "/" + pattern;
        }
        glob_t g{};
        if (::glob(pattern.c_str(), 0, nullptr, &g) == 0) {
          for (std::size_t j = 0; j < g.gl_pathc; ++j) {
            scan_config(g.gl_pathv[j], base_dir, depth + 1, out);
          }
        }
        ::globfree(&g);
      }
    }
  }
}

} // namespace

std::string SshTarget::endpoint() const {
  return user + "@" + hostname + ":" + std::to_string(port);
}

std::string SshTarget::known_hosts_name() const {
  if (!host_key_alias.empty()) {
    return host_key_alias;
  }
  return port == 22 ? hostname : "[" + hostname + "]:" + std::to_string(port);
}

std::string expand_ssh_tokens(std::string_view text, const SshTarget& t) {
  std::string out;
  if (text.rfind("~/", 0) == 0 || text == "~") {
    out = local_home();
    text.remove_prefix(1);
  }
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c != '%' || i + 1 >= text.size()) {
      out.push_back(c);
      continue;
    }
    char k = text[++i];
    switch (k) {
    case '%':
      out.push_back('%');
      break;
    case 'd':
      out += local_home();
      break;
    case 'u':
      out += local_user();
      break;
    case 'h':
      out += t.hostname;
      break;
    case 'r':
      out += t.user;
      break;
    case 'p':
      out += std::to_string(t.port);
      break;
    case 'n':
      out += t.alias;
      break;
    case 'i':
      out += std::to_string(::getuid());
      break;
    default:
      out.push_back('%');
      out.push_back(k);
    }
  }
  return out;
}

SshTarget parse_ssh_g(std::string_view output, const std::string& alias) {
  SshTarget t;
  t.alias = alias;
  std::vector<std::string> raw_identity, raw_user_kh, raw_global_kh;
  std::string raw_agent;
  std::size_t pos = 0;
  while (pos < output.size()) {
    auto nl = output.find('\n', pos);
    std::string_view line = output.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? output.size() : nl + 1;
    auto sp = line.find(' ');
    if (sp == std::string_view::npos) {
      continue;
    }
    std::string key = lower(line.substr(0, sp));
    std::string value = trim(line.substr(sp + 1));
    if (key == "hostname") {
      t.hostname = value;
    } else if (key == "user") {
      t.user = value;
    } else if (key == "port") {
      t.port = to_int(value, 22);
    } else if (key == "identityfile") {
      raw_identity.push_back(value);
    } else if (key == "identitiesonly") {
      t.identities_only = value == "yes" || value == "true";
    } else if (key == "identityagent") {
      raw_agent = value;
    } else if (key == "userknownhostsfile") {
      raw_user_kh = exec::split_words(value);
    } else if (key == "globalknownhostsfile") {
      raw_global_kh = exec::split_words(value);
    } else if (key == "hostkeyalias") {
      t.host_key_alias = value;
    } else if (key == "stricthostkeychecking") {
      t.strict_host_key_checking = lower(value);
    } else if (key == "connecttimeout") {
      t.connect_timeout = std::chrono::seconds(value == "none" ? 0 : to_int(value, 0));
    } else if (key == "serveraliveinterval") {
      t.server_alive_interval = to_int(value, 0);
    } else if (key == "serveralivecountmax") {
      t.server_alive_count_max = to_int(value, 3);
    } else if (key == "proxyjump") {
      t.proxy_jump = value == "none" ? "" : value;
    } else if (key == "proxycommand") {
      t.proxy_command = value == "none" ? "" : value;
    }
  }
  if (t.hostname.empty()) {
    t.hostname = alias;
  }
  if (t.user.empty()) {
    t.user = local_user();
  }
  for (const auto& f : raw_identity) {
    if (lower(f) != "none") {
      t.identity_files.push_back(expand_ssh_tokens(f, t));
    }
  }
  for (const auto& f : raw_user_kh) {
    if (lower(f) != "none") {
      t.user_known_hosts_files.push_back(expand_ssh_tokens(f, t));
    }
  }
  for (const auto& f : raw_global_kh) {
    if (lower(f) != "none") {
      t.global_known_hosts_files.push_back(expand_ssh_tokens(f, t));
    }
  }
  if (!raw_agent.empty() && raw_agent != "SSH_AUTH_SOCK") {
    t.identity_agent = raw_agent == "none" ? "none" : expand_ssh_tokens(raw_agent, t);
    if (t.identity_agent.size() > 1 && t.identity_agent[0] == '$') {
      const char* v = std::getenv(t.identity_agent.c_str() + 1);
      t.identity_agent = v ? v : "";
    }
  }
  return t;
}

std::vector<JumpSpec> parse_proxy_jump(std::string_view value) {
  std::vector<JumpSpec> hops;
  std::size_t pos = 0;
  while (pos <= value.size()) {
    auto comma = value.find(',', pos);
    std::string hop = trim(value.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos));
    pos = comma == std::string_view::npos ? value.size() + 1 : comma + 1;
    if (hop.empty()) {
      continue;
    }
    if (hop.rfind("ssh://", 0) == 0) {
      hop = hop.substr(6);
    }
    JumpSpec j;
    if (auto at = hop.rfind('@'); at != std::string::npos) {
      j.user = hop.substr(0, at);
      hop = hop.substr(at + 1);
    }
    if (!hop.empty() && hop[0] == '[') {
      auto close = hop.find(']');
      if (close != std::string::npos) {
        j.host = hop.substr(1, close - 1);
        if (close + 1 < hop.size() && hop[close + 1] == ':') {
          j.port = to_int(hop.substr(close + 2), 0);
        }
      } else {
        j.host = hop;
      }
    } else if (auto colon = hop.rfind(':'); colon != std::string::npos && hop.find(':') == colon) {
      j.host = hop.substr(0, colon);
      j.port = to_int(hop.substr(colon + 1), 0);
    } else {
      j.host = hop;
    }
    hops.push_back(std::move(j));
  }
  return hops;
}

std::set<std::string> literal_host_patterns(const std::string& config_file, const std::string& base_dir) {
  std::set<std::string> out;
  scan_config(config_file, base_dir, 0, out);
  return out;
}

namespace {

SshTarget resolve_one(const std::string& alias, const std::string& user, int port, const ResolveOptions& options) {
  if (alias.empty() || alias[0] == '-' || alias.find_first_of(" \t\n\r\"'") != std::string::npos) {
    throw HostError(HostError::Kind::invalid, "'" + alias + "' is not a valid ssh host name");
  }
  std::vector<std::string> argv = {options.ssh_program};
  if (!options.config_file.empty()) {
    argv.push_back("-F");
    argv.push_back(options.config_file);
  }
  argv.push_back("-G");
  if (!user.empty()) {
    argv.push_back("-l");
    argv.push_back(user);
  }
  if (port > 0) {
    argv.push_back("-p");
    argv.push_back(std::to_string(port));
  }
  argv.push_back("--");
  argv.push_back(alias);
  ProcessResult r = run_process(argv, options.timeout);
  if (r.status != 0) {
    std::string err = trim(r.err);
    if (err.empty()) {
      err = "exit status " + std::to_string(r.status);
    }
    throw HostError(HostError::Kind::invalid, "cannot resolve ssh host '" + alias + "' with `" + options.ssh_program +
                                                  " -G`: " + err +
                                                  " (sandbox-mcp needs the OpenSSH client to read ~/.ssh/config)");
  }
  return parse_ssh_g(r.out, alias);
}

} // namespace

namespace {

SshTarget resolve_chain(const std::string& alias, const ResolveOptions& options, int depth) {
  if (depth > 4) {
    throw HostError(HostError::Kind::invalid, "ProxyJump of '" + alias + "' nests too deeply (a loop?)");
  }
  SshTarget t = resolve_one(alias, "", 0, options);
  if (!t.proxy_command.empty()) {
    throw HostError(HostError::Kind::invalid, "host '" + alias + "' uses ProxyCommand (" + t.proxy_command +
                                                  "), which sandbox-mcp does not support; use ProxyJump instead");
  }
  auto hops = parse_proxy_jump(t.proxy_jump);
  for (std::size_t i = 0; i < hops.size(); ++i) {
    SshTarget hop = resolve_one(hops[i].host, hops[i].user, hops[i].port, options);
    if (!hop.proxy_command.empty()) {
      throw HostError(HostError::Kind::invalid, "jump host '" + hops[i].host +
                                                    "' uses ProxyCommand, which "
                                                    "sandbox-mcp does not support");
    }
    // The first hop's own ProxyJump is honoured (as ssh does); later hops go through the earlier ones.
    if (i == 0 && !hop.proxy_jump.empty()) {
      SshTarget nested = resolve_chain(hops[i].host, options, depth + 1);
      for (auto& j : nested.jumps) {
        t.jumps.push_back(std::move(j));
      }
    }
    hop.jumps.clear();
    hop.proxy_jump.clear();
    t.jumps.push_back(std::move(hop));
    if (t.jumps.size() > 8) {
      throw HostError(HostError::Kind::invalid, "ProxyJump chain of '" + alias + "' is longer than 8 hops");
    }
  }
  return t;
}

} // namespace

SshTarget resolve_target(const std::string& alias, const ResolveOptions& options) {
  return resolve_chain(alias, options, 0);
}

} // namespace smcp::ssh
