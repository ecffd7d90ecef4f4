// Quoting for the programs ScriptHost sends to a host. Every untrusted piece (a command, a path, an
// environment value) that goes into a remote script passes through exactly one of these helpers:
// the remote side never re-parses anything we did not quote here.
#pragma once

#include <string>
#include <string_view>

namespace smcp::exec {

// POSIX shell single-quoting: 'it'\''s' — safe for sh, bash, dash, zsh and ksh. NUL bytes cannot
// be passed to a remote command at all: callers reject them first (contains_nul).
std::string sh_quote(std::string_view text);

// Perl single-quoted string literal: only \\ and \' are special inside '...'.
std::string perl_quote(std::string_view text);

// A name usable with `export NAME=...` in a POSIX shell: [A-Za-z_][A-Za-z0-9_]*.
bool is_shell_identifier(std::string_view name);

bool contains_nul(std::string_view text);

} // namespace smcp::exec
