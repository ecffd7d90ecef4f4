// The programs ScriptHost sends to a host, embedded byte for byte from the files of this folder
// (embed.cmake): each constant is named after its file. Shell parts run with /bin/sh -s, perl
// parts with perl -, the awk program is passed to awk as an argument. The builders in
// sandbox/exec/remote_scripts.cpp put a prologue of quoted variable assignments before them.
#pragma once

#include <span>
#include <string_view>

namespace smcp::exec::scripts {

// Shell helpers, defined before the programs that use them.
extern const std::string_view session_of_sh;      // sid_of PID: its session and start time
extern const std::string_view session_members_sh; // members: the live processes of a command or job
extern const std::string_view run_command_sh;     // run_command: exec the command in its cwd and env

// Perl helpers of both perl supervisors: subreaper, descendants, reaping, ending a whole tree.
extern const std::string_view process_tree_pl;

extern const std::string_view probe_sh;
extern const std::string_view foreground_supervisor_pl;
extern const std::string_view foreground_supervisor_sh;
extern const std::string_view job_start_pl; // creates the job directory, forks its supervisor
extern const std::string_view job_start_sh; // the same with setsid(1) and job_supervisor_sh
extern const std::string_view job_supervisor_sh;
extern const std::string_view job_read_sh;
extern const std::string_view kill_tree_sh;
extern const std::string_view remove_job_sh;
extern const std::string_view file_window_sh;
extern const std::string_view file_window_awk; // the line formatter of file_window_sh
extern const std::string_view helper_pl;       // an SSH host's helper (helper_executor.h)

// Every embedded file by its name ("job_start.pl"), for the test that syntax-checks them.
struct Embedded {
  std::string_view name;
  std::string_view text;
};
std::span<const Embedded> all();

} // namespace smcp::exec::scripts
