# Reads a durable job: its state ("running", "exit N", "signal N[ ...]", or "vanished" when its
# supervisor is gone without a status: then whatever still runs of it (its session, its marker)
# is ended, "vanished ended N" / "vanished left N"), its output size, and up to $max bytes of
# output from $off (the last $max bytes when more is there). Prints "gone" when $d is missing.
# Set before this part: $d, $pid, $off, $max, $mark; sid_of and members.
[ -d "$d" ] || { echo gone; exit 0; }
st=
[ -f "$d/status" ] && read -r st 2>/dev/null < "$d/status"
if [ -z "$st" ]; then
  b=
  read -r b 2>/dev/null < "$d/boot_id"
  cur=
  read -r cur 2>/dev/null < /proc/sys/kernel/random/boot_id
  alive=0
  if [ "$b" = "$cur" ] && [ "$pid" -gt 0 ]; then
    sid_of "$pid"
    [ "$_s" = "$pid" ] && alive=1
    if [ "$alive" = 1 ] && [ -f "$d/starttime" ] && [ -n "$_t" ]; then
      t0=
      read -r t0 2>/dev/null < "$d/starttime"
      [ "$_t" = "$t0" ] || alive=0
    fi
  fi
  if [ "$alive" = 1 ]; then
    st=running
  else
    [ -f "$d/status" ] && read -r st 2>/dev/null < "$d/status"
  fi
  if [ -z "$st" ] && [ "$b" = "$cur" ]; then
    # The supervisor is gone without a status (killed from outside): the job's output and exit
    # status can no longer be recorded, so whatever still runs of it is ended.
    s=$pid
    ex=$pid
    root=
    if [ -f "$d/starttime" ]; then
      t0=
      read -r t0 2>/dev/null < "$d/starttime"
      sid_of "$pid"
      if [ -n "$_t" ] && [ "$_t" != "$t0" ]; then s=; fi
    fi
    members
    if [ -n "$m" ]; then
      set -- $m
      n=$#
      kill -s TERM $m 2>/dev/null
      kill -s CONT $m 2>/dev/null
      i=0
      while [ -n "$m" ] && [ "$i" -lt 40 ]; do
        sleep 0.05 2>/dev/null || sleep 1
        [ "$i" -ge 20 ] && kill -s KILL $m 2>/dev/null
        members
        i=$((i + 1))
      done
      if [ -z "$m" ]; then st="vanished ended $n"; else st="vanished left $n"; fi
    fi
  fi
  [ -n "$st" ] || st=vanished
fi
size=0
if [ -f "$d/output" ]; then
  set -- $(wc -c < "$d/output")
  size=$1
fi
from=$off
lo=$((size - max))
[ "$lo" -gt "$from" ] && from=$lo
[ "$from" -gt "$size" ] && from=$size
printf 'state %s\nsize %s\nfrom %s\n\n' "$st" "$size" "$from"
if [ "$from" -lt "$size" ]; then
  tail -c "+$((from + 1))" < "$d/output" | head -c "$((size - from))"
fi
