// The fixed programs of bubblewrap profiles, run by /bin/sh on the target host (POSIX sh: dash,
// bash). Values are positional arguments or the environment, never part of the text.
#pragma once

namespace smcp::sandbox {

// The launcher: `sh -c LAUNCHER sh ROOT WORK MODE FILTER PROTECTED... -- prlimit ... bwrap ... --args 8 ...`.
// It starts in the call's cwd when MODE is ro or rw (the supervisor changed to it; none: no cwd).
//  1. The cwd: opened (fd 7, which bwrap binds with --ro-bind-fd / --bind-fd, so what is mounted is
//     the directory checked, whatever its path names later), resolved to its real path (cd -P, and
//     the same directory as fd 7's by inode), and refused (exit 125, "sandbox-mcp: refused cwd ...")
//     when it is inside or holds a system directory (/proc /sys /dev /run /var/run /etc /boot /usr),
//     holds /tmp, /var/tmp, /dev/shm or the home directory, or is inside or holds a secret: the
//     home's .ssh .gnupg .aws .azure .config .docker .kube .netrc .git-credentials .password-store
//     .pki .local/share/keyrings .local/state/sandbox-mcp .npmrc .pypirc .claude*, the XDG runtime,
//     config and state (sandbox-mcp) directories, /tmp/sandbox-mcp-*, the work root and PROTECTED
//     (a leading ~/ is the home). "Holds" compares each ancestor of the path (as given and as
//     resolved) with the cwd by inode, "inside" each ancestor of the cwd with the path, so links and
//     bind mounts do not hide one from the other.
//  2. The work directory: ROOT made 0700 and checked to be ours and not a link, WORK made in it,
//     locked (flock on fd 9, so a sweep never takes a running one), deleted when the command ends
//     (also on HUP, INT or TERM; a SIGKILL leaves it to the sweep).
//  3. bwrap's --args file (fd 8; 0600, unlinked once open): the cwd mount and --chdir, then one
//     --setenv per variable of SMCP_PROFILE_ENV (NAME=ESCAPED, decoded by printf %b), which is
//     unset before prlimit runs. No value is on a command line, and none is in the environment of
//     prlimit or bwrap.
//  4. The seccomp filter (unless FILTER is `-`): FILTER's bytes (every one written \0NNN, decoded by
//     printf %b; a fixed program of ours, never a value of the call) in a 0600 file of the work
//     directory, opened as fd 5 (bwrap's --seccomp 5 reads it) and unlinked.
//  5. `cd /` (a relative PATH entry cannot pick prlimit or bwrap from the cwd), then the rest, with
//     the launcher's own stderr closed (a shell reports "Terminated" when its child is).
inline constexpr const char* k_launcher_program = R"sh(umask 077
r=$1 w=$2 m=$3 q=$4
shift 4
fail() { printf 'sandbox-mcp: %s\n' "$1" >&2; exit 125; }
no() { fail "refused cwd $x: $c $1"; }
inside() {
  a=$c
  while :; do
    [ "$a" -ef "$1" ] && return 0
    [ "$a" = / ] && return 1
    a=${a%/*}; a=${a:-/}
  done
}
holds() {
  case $1 in /*) p=$1 ;; *) return 1 ;; esac
  while :; do
    [ "$p" -ef "$c" ] && return 0
    [ "$p" = / ] && return 1
    p=${p%/*}; p=${p:-/}
  done
}
secret() {
  [ -n "$1" ] || return 0
  t=$1
  if [ -d "$1" ] && cd -P -- "$1" 2>/dev/null; then t=$PWD
  elif [ -L "$1" ]; then t=$(readlink -f -- "$1" 2>/dev/null); fi
  if inside "$1" || holds "$1" || holds "$t"; then
    no "is inside or holds $1 (credentials or sandbox-mcp's own state)"
  fi
}
check() {
  c=$1
  for d in /proc /sys /dev /run /var/run /etc /boot /usr; do
    inside "$d" && no "is inside $d, a system directory"
    holds "$d" && no "holds $d, a system directory"
  done
  for d in /tmp /var/tmp /dev/shm; do
    holds "$d" && no "is or holds $d"
  done
  [ -n "$h" ] && holds "$h" && no "is or holds the home directory $h"
  if [ -n "$h" ]; then
    for s in .ssh .gnupg .aws .azure .config .docker .kube .netrc .git-credentials .password-store .pki \
      .local/share/keyrings .local/state/sandbox-mcp .npmrc .pypirc; do
      secret "$h/$s"
    done
    for s in "$h"/.claude*; do secret "$s"; done
  fi
  secret "${XDG_RUNTIME_DIR-}"
  secret "${XDG_CONFIG_HOME-}"
  [ -n "${XDG_STATE_HOME-}" ] && secret "$XDG_STATE_HOME/sandbox-mcp"
  for s in /tmp/sandbox-mcp-*; do secret "$s"; done
  secret "$r"
  set -f
  IFS='
'
  for s in $e; do secret "$s"; done
  unset IFS
  set +f
}
x=
if [ "$m" != none ]; then
  [ -r . ] && [ -x . ] || fail "refused cwd: cannot read the working directory"
  exec 7<.
  cd -P . 2>/dev/null && x=$PWD
  case $x in /*) ;; *) fail "refused cwd: cannot resolve the working directory" ;; esac
  [ "$x" -ef . ] || fail "refused cwd $x: it moved while being checked"
fi
h=${HOME-}
[ -n "$h" ] || h=$(getent passwd "$(id -u)" 2>/dev/null | cut -d: -f6)
if [ -n "$h" ] && cd -P -- "$h" 2>/dev/null; then h=$PWD; else h=; fi
e=
while [ $# -gt 0 ] && [ "$1" != -- ]; do
  case $1 in "~/"*) [ -n "$h" ] && e="$e
$h/${1#"~/"}" ;; *) e="$e
$1" ;; esac
  shift
done
shift
if [ -n "$x" ]; then
  check "$x"
  # What is mounted under the cwd comes along (bwrap binds recursively): each mount point is
  # checked the same way (a bind mount of / or of the home under the cwd).
  l=$(grep -F -e " $x/" -e '\' /proc/self/mountinfo 2>/dev/null)
  while read -r _ _ _ _ n _; do
    case $n in *\\*) n=$(printf '%s' "$n" | sed 's/\\/\\0/g'); n=$(printf '%b.' "$n"); n=${n%.} ;; esac
    case $n in "$x"/*) check "$n" ;; esac
  done <<EOF
$l
EOF
  c=$x
fi
cd / || exit 125
mkdir -p -- "$r" 2>/dev/null
[ -d "$r" ] && [ -O "$r" ] && [ ! -L "$r" ] || fail "work directory root $r is not ours (it must belong to this user and not be a link)"
mkdir -- "$w" || exit 125
clean() { rm -rf -- "$w" 2>/dev/null || { chmod -R u+rwx -- "$w" 2>/dev/null; rm -rf -- "$w"; }; }
trap 'clean; trap - HUP; kill -s HUP $$' HUP
trap 'clean; trap - INT; kill -s INT $$' INT
trap 'clean; trap - TERM; kill -s TERM $$' TERM
exec 9<"$w"
command -v flock >/dev/null 2>&1 && flock -n 9
bad=
{
  if [ -z "$x" ]; then printf '%s\0' --chdir /work
  elif [ "$m" = rw ]; then printf '%s\0' --bind-fd 7 "$x" --chdir "$x"
  else printf '%s\0' --ro-bind-fd 7 "$x" --chdir "$x"
  fi
  set -f
  IFS=' '
  for v in ${SMCP_PROFILE_ENV-}; do
    k=${v%%=*}
    case $v in *=*) ;; *) k= ;; esac
    case $k in ''|[0-9]*|*[!A-Za-z0-9_]*) bad=1; break ;; esac
    printf '%s\0%s\0%b\0' --setenv "$k" "${v#*=}"
  done
  unset IFS
  set +f
} > "$w/.args"
if [ -n "$bad" ]; then clean; fail "the environment holds a variable name that is not [A-Za-z_][A-Za-z0-9_]*"; fi
exec 8<"$w/.args"
rm -f -- "$w/.args"
if [ "$q" != - ]; then
  printf '%b' "$q" > "$w/.seccomp" || { clean; fail "cannot write the seccomp filter in $w"; }
  exec 5<"$w/.seccomp"
  rm -f -- "$w/.seccomp"
fi
unset SMCP_PROFILE_ENV
exec 6>&2 2>/dev/null
(exec 2>&6 6>&- 9<&-; exec "$@")
s=$?
clean
exit $s
)sh";

// The probe (`sh -c PROBE sh BWRAP CONTAINER FILTER`): see bwrap_probe_argv. The filter reaches
// bwrap through a pipe (--seccomp reads to the end of its descriptor).
inline constexpr const char* k_probe_program = R"sh(b=$1 k=$2 q=${3-}
command -v "$b" >/dev/null 2>&1 || { echo "$b: command not found" >&2; exit 127; }
command -v prlimit >/dev/null 2>&1 || { echo "prlimit: command not found" >&2; exit 126; }
try() { "$b" --ro-bind / / --dev /dev --unshare-user-try --unshare-net "$@" --die-with-parent -- true; }
if e=$(try --proc /proc --unshare-pid 2>&1); then p=new
elif { [ "$k" = 1 ] || [ -e /run/.containerenv ] || [ -e /.dockerenv ] || [ -n "${container-}" ]; } &&
  try --unshare-user --ro-bind /proc /proc >/dev/null 2>&1; then p=bind
else printf '%s\n' "$e" >&2; exit 1
fi
if [ $p = new ]; then set -- --proc /proc --unshare-pid; else set -- --unshare-user --ro-bind /proc /proc; fi
f=0
exec 7</
try "$@" --ro-bind-fd 7 /tmp >/dev/null 2>&1 && f=1
s=$(command -v setpriv 2>/dev/null)
case $s in /*) "$s" --pdeathsig KILL -- true 2>/dev/null || s= ;; *) s= ;; esac
c=0
if [ -n "$q" ]; then
  if e=$(printf '%b' "$q" | { try "$@" --seccomp 5 5<&0 </dev/null 2>&1; }); then c=1
  else printf 'seccomp: %s\n' "${e:-a command under the filter failed}" >&2
  fi
fi
echo "proc=$p fd=$f setpriv=$s seccomp=$c arch=$(uname -m 2>/dev/null)"
)sh";

// The sweep (`sh -c SWEEP sh ROOT`): see sweep_argv.
inline constexpr const char* k_sweep_program = R"sh(r=$1
[ -d "$r" ] && [ -O "$r" ] && [ ! -L "$r" ] || exit 0
command -v flock >/dev/null 2>&1 || exit 0
u=$(id -u)
find "$r" -mindepth 1 -maxdepth 1 -name 'exec-*' -type d -user "$u" -mmin +1 2>/dev/null |
while IFS= read -r d; do
  case ${d#"$r"/} in */*) continue ;; exec-*) ;; *) continue ;; esac
  [ -d "$d" ] && [ ! -L "$d" ] || continue
  flock -n "$d" sh -c 'rm -rf -- "$1" 2>/dev/null || { chmod -R u+rwx -- "$1"; rm -rf -- "$1"; }' sh "$d" 2>/dev/null
done
exit 0
)sh";

} // namespace smcp::sandbox
