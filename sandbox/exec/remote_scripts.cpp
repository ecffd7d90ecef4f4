#include "sandbox/exec/remote_scripts.h"

#include "sandbox/exec/quote.h"
#include "sandbox/exec/scripts/embedded.h"

#include <algorithm>
#include <initializer_list>
#include <string_view>

namespace smcp::exec {

using exec::HostError;

namespace {

// Signals the supervisors ignore (their commands get the default disposition back).
constexpr const char* k_supervisor_signals = "HUP INT QUIT TERM USR1 USR2 ALRM TSTP TTIN TTOU";

std::string concat(std::initializer_list<std::string_view> parts) {
  std::string out;
  for (auto part : parts) {
    out.append(part);
  }
  return out;
}

// One line of a shell prologue: `name='value'`.
std::string sh_var(std::string_view name, std::string_view value) {
  return concat({name, "=", sh_quote(value), "\n"});
}

// One line of a perl prologue: `my $name = literal;` (`literal` is quoted or a number).
std::string perl_var(std::string_view name, std::string_view literal) {
  return concat({"my $", name, " = ", literal, ";\n"});
}

std::string perl_env_list(const exec::CommandSpec& spec) {
  std::string out = "(";
  for (const auto& [k, v] : spec.env) {
    out += perl_quote(k) + ", " + perl_quote(v) + ", ";
  }
  out += ")";
  return out;
}

// The launcher's words as a perl list: `('prlimit', '--cpu=60', ...)`.
std::string perl_launch_list(const exec::CommandSpec& spec) {
  std::string out = "(";
  for (const auto& word : spec.launcher) {
    out += perl_quote(word) + ", ";
  }
  return out + ")";
}

// What a perl supervisor needs to run the command: $cmd, $cwd, $shell, @launch, @env and @sigs.
std::string perl_command_vars(const exec::CommandSpec& spec, const std::string& command_shell) {
  return perl_var("cmd", perl_quote(spec.command)) + perl_var("cwd", perl_quote(spec.cwd)) +
         perl_var("shell", perl_quote(command_shell)) + concat({"my @launch = ", perl_launch_list(spec), ";\n"}) +
         concat({"my @env = ", perl_env_list(spec), ";\n"}) +
         concat({"my @sigs = qw(", k_supervisor_signals, " PIPE);\n"});
}

// What a shell supervisor needs to run the command (scripts/run_command.sh): $cwd, $shell, $cmd,
// $sigs and setup_env, which exports the environment (the names were validated before), then
// run_command itself.
std::string sh_command_part(const exec::CommandSpec& spec, const std::string& command_shell) {
  std::string out = sh_var("cwd", spec.cwd) + sh_var("shell", command_shell) + sh_var("cmd", spec.command) +
                    sh_var("sigs", k_supervisor_signals) + "setup_env() {\n  :\n";
  for (const auto& [k, v] : spec.env) {
    out += "  export " + k + "=" + sh_quote(v) + "\n";
  }
  out += "}\n";
  // launch SHELL -c CMD: exec through the launcher's words (each quoted here), or directly.
  out += "launch() {\n  exec";
  for (const auto& word : spec.launcher) {
    out += " " + sh_quote(word);
  }
  out += " \"$@\"\n}\n";
  out += scripts::run_command_sh;
  return out;
}

void check_spec(const exec::CommandSpec& spec) {
  if (contains_nul(spec.command) || contains_nul(spec.cwd)) {
    throw HostError(HostError::Kind::invalid, "the command or working directory contains a NUL byte");
  }
  for (const auto& word : spec.launcher) {
    if (contains_nul(word)) {
      throw HostError(HostError::Kind::invalid, "the launcher contains a NUL byte");
    }
  }
  for (const auto& [k, v] : spec.env) {
    if (!is_shell_identifier(k)) {
      throw HostError(HostError::Kind::invalid, "environment variable name '" + k +
                                                    "' cannot be set over SSH: use letters, digits and _ "
                                                    "(not starting with a digit)");
    }
    if (contains_nul(v)) {
      throw HostError(HostError::Kind::invalid, "the value of environment variable " + k + " contains a NUL byte");
    }
  }
}

std::string seconds(std::chrono::milliseconds ms) {
  return std::to_string(ms.count() / 1000) + "." + std::to_string(ms.count() % 1000 / 100) +
         std::to_string(ms.count() % 100 / 10) + std::to_string(ms.count() % 10);
}

// The remote supervisor's own deadline: after the server's (which normally ends the command
// first), so it only acts when the server is gone. 0: none.
long guard_seconds(const exec::CommandSpec& spec, std::chrono::milliseconds grace) {
  if (spec.timeout.count() <= 0) {
    return 0;
  }
  return static_cast<long>((spec.timeout + grace).count() / 1000) + 5;
}

} // namespace

std::string sh_exec() {
  return "exec /bin/sh -s";
}

std::string perl_exec(const std::string& perl) {
  return "exec " + sh_quote(perl) + " -";
}

std::string probe_script() {
  return std::string(scripts::probe_sh);
}

// ---- foreground ----

ForegroundScript foreground_script(const exec::CommandSpec& spec, const std::string& command_shell,
                                   const std::string& nonce, const std::string& perl, std::chrono::milliseconds grace) {
  check_spec(spec);
  if (!perl.empty()) {
    return {perl_exec(perl),
            concat({perl_var("n", perl_quote(nonce)), perl_command_vars(spec, command_shell),
                    perl_var("grace", seconds(grace)), perl_var("limit", std::to_string(guard_seconds(spec, grace))),
                    scripts::process_tree_pl, scripts::foreground_supervisor_pl})};
  }
  return {sh_exec(), concat({sh_var("n", nonce), sh_command_part(spec, command_shell), scripts::session_of_sh,
                             scripts::foreground_supervisor_sh})};
}

// ---- durable jobs ----

ForegroundScript job_start_script(const exec::CommandSpec& spec, const std::string& job_dir,
                                  const std::string& command_shell, const std::string& perl, std::uint64_t output_cap,
                                  std::chrono::milliseconds grace) {
  check_spec(spec);
  if (contains_nul(job_dir) || job_dir.empty() || job_dir[0] != '/') {
    throw HostError(HostError::Kind::invalid, "job directory must be an absolute path: " + job_dir);
  }
  if (!perl.empty()) {
    return {perl_exec(perl), concat({perl_var("dir", perl_quote(job_dir)), perl_command_vars(spec, command_shell),
                                     perl_var("cap", std::to_string(output_cap)), perl_var("grace", seconds(grace)),
                                     scripts::process_tree_pl, scripts::job_start_pl})};
  }
  // Without perl: setsid(1) starts a /bin/sh supervisor in its own session, from a file in the job
  // directory (it holds the environment's values), which the supervisor deletes as it starts.
  std::string supervisor =
      concat({"rm -f -- \"$1/supervisor\"\n", sh_command_part(spec, command_shell), scripts::job_supervisor_sh});
  return {sh_exec(), concat({sh_var("d", job_dir), sh_var("cwd", spec.cwd), sh_var("cmd", spec.command),
                             sh_var("sup", supervisor), scripts::session_of_sh, scripts::job_start_sh})};
}

std::string job_marker(const std::string& job_id) {
  return std::string(k_job_marker_name) + "=" + job_id;
}

std::string job_read_script(const exec::JobRef& job, std::uint64_t offset, std::size_t max_bytes) {
  return concat({sh_var("d", job.dir), sh_var("pid", std::to_string(job.pid)), sh_var("off", std::to_string(offset)),
                 sh_var("max", std::to_string(max_bytes)), sh_var("mark", job_marker(job.id)), scripts::session_of_sh,
                 scripts::session_members_sh, scripts::job_read_sh});
}

std::string kill_session_script(long sid, long exclude, int signal, std::chrono::milliseconds grace,
                                const std::string& job_dir, const std::string& marker, bool tracked) {
  std::string name = exec::signal_name(signal);
  std::string kill_arg = name.rfind("SIG", 0) == 0 && name.find_first_of("0123456789") == std::string::npos
                             ? "-s " + name.substr(3)
                             : "-" + std::to_string(signal);
  long ticks = std::max<long>(1, static_cast<long>(grace.count() / 50));
  return concat({sh_var("sid", std::to_string(sid)), sh_var("ex", std::to_string(exclude)),
                 sh_var("ticks", std::to_string(ticks)), sh_var("d", job_dir), sh_var("mark", marker),
                 sh_var("tracked", tracked ? "1" : "0"), sh_var("sig", kill_arg), scripts::session_of_sh,
                 scripts::session_members_sh, scripts::kill_tree_sh});
}

std::string remove_job_script(const std::string& job_dir) {
  return concat({sh_var("d", job_dir), scripts::remove_job_sh});
}

// ---- file windows ----

std::string file_window_script(const exec::FileReadRequest& req, std::uint64_t count_lines_below) {
  if (contains_nul(req.path)) {
    throw HostError(HostError::Kind::invalid, "the file path contains a NUL byte");
  }
  return concat({sh_var("f", req.path), sh_var("off", std::to_string(req.offset)),
                 sh_var("lim", std::to_string(std::max<std::size_t>(req.limit, 1))),
                 sh_var("mlb", std::to_string(req.max_line_bytes)), sh_var("mtb", std::to_string(req.max_total_bytes)),
                 sh_var("big", std::to_string(count_lines_below)), sh_var("prog", scripts::file_window_awk),
                 scripts::file_window_sh});
}

std::string expand_home(const std::string& path, const std::string& home) {
  if (home.empty()) {
    return path;
  }
  if (path == "~") {
    return home;
  }
  if (path.rfind("~/", 0) == 0) {
    return home + path.substr(1);
  }
  return path;
}

} // namespace smcp::exec
