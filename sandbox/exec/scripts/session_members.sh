# members: sets $m to the live processes of a command or job, except the supervisor $ex: members
# of session $s, descendants of $root (the supervisor, when it is alive and ours; complete when it
# is a subreaper), and processes whose environment holds $mark.
members() {
  m=$( {
    for p in /proc/[0-9]*; do
      l=
      read -r l 2>/dev/null < "$p/stat" || continue
      r=${l##*) }
      set -- $r
      echo "${p#/proc/} $2 $4 $1"
    done
    [ -n "$mark" ] && grep -lzxF -e "$mark" /proc/[0-9]*/environ 2>/dev/null | sed 's,^/proc/\([0-9]*\)/environ$,E \1,'
  } | awk -v s="$s" -v e="$ex" -v root="$root" '
    $1 == "E" { env[$2] = 1; next }
    { st[$1] = $4; pp[$1] = $2; ss[$1] = $3 }
    END {
      if (root != "") {
        d[root] = 1
        do { ch = 0; for (p in pp) if (!(p in d) && (pp[p] in d)) { d[p] = 1; ch = 1 } } while (ch)
      }
      for (p in st) {
        if (p == e || p == root || st[p] == "Z") continue
        if ((s != "" && ss[p] == s) || (p in d) || (p in env)) print p
      }
    }' | sort -n | awk '{ printf " %s", $1 }')
  # (In pid order, so a shell is signalled before the children it waits for: a child ended first
  # would let the shell run on, and the job end as "exited" instead of by the signal.)
  if [ -z "$m" ] && [ ! -r /proc/self/stat ] && [ -n "$s" ]; then
    m=$(ps -A -o pid= -o sid= -o stat= 2>/dev/null | awk -v s="$s" -v e="$ex" '$2 == s && $1 != e && $3 !~ /^Z/ { printf " %s", $1 }')
  fi
}
