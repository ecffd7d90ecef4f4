# sid_of PID: sets $_s to the session id of PID when it exists and is not a zombie (else empty),
# and $_t to its start time (field 22 of /proc/PID/stat; empty without /proc).
sid_of() {
  _s=
  _t=
  if [ -r /proc/self/stat ]; then
    _l=
    read -r _l 2>/dev/null < "/proc/$1/stat" || return 0
    _r=${_l##*) }
    set -- $_r
    [ "$1" = Z ] && return 0
    _s=$4
    _t=${20}
  else
    _s=$(ps -o sid= -o stat= -p "$1" 2>/dev/null | awk '$2 !~ /^Z/ { print $1 }')
  fi
}
