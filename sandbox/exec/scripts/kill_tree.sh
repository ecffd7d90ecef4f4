# Ends every process of a command or job except its supervisor $ex (see kill_session_script):
# $sig (e.g. "-s TERM"), then KILL after $ticks naps of 50 ms. Prints "gone", "gone untracked"
# or "left PIDS". Set before this part: $sid, $ex, $ticks, $d, $mark, $tracked, $sig; sid_of and
# members.
s=$sid
root=
if [ "$ex" -gt 1 ]; then
  sid_of "$ex"
  [ -n "$_s" ] && root=$ex
fi
if [ -n "$d" ]; then
  b=
  read -r b 2>/dev/null < "$d/boot_id"
  cur=
  read -r cur 2>/dev/null < /proc/sys/kernel/random/boot_id
  if [ -n "$b" ] && [ "$b" != "$cur" ]; then echo "gone (the host rebooted)"; exit 0; fi
  [ -f "$d/tracked" ] && tracked=1
  if [ -f "$d/starttime" ]; then
    t0=
    read -r t0 2>/dev/null < "$d/starttime"
    sid_of "$sid"
    # The job's pid belongs to another process now: only the marker still finds the job's processes.
    if [ -n "$_t" ] && [ "$_t" != "$t0" ]; then s=; root=; fi
  fi
  # Without its supervisor, a job's remaining processes are found by session and marker.
  [ -z "$root" ] && tracked=1
fi
[ "$sid" -gt 1 ] || s=
ok=gone
[ "$tracked" = 1 ] || ok="gone untracked"
nap() { sleep 0.05 2>/dev/null || sleep 1; }
members
[ -z "$m" ] && { echo "$ok"; exit 0; }
kill $sig $m 2>/dev/null
kill -s CONT $m 2>/dev/null
i=0
while [ "$i" -lt "$ticks" ]; do
  nap
  members
  [ -z "$m" ] && { echo "$ok"; exit 0; }
  i=$((i + 1))
done
i=0
while [ "$i" -lt 40 ]; do
  kill -s KILL $m 2>/dev/null
  nap
  members
  [ -z "$m" ] && { echo "$ok"; exit 0; }
  i=$((i + 1))
done
echo "left$m"
