# The supervisor of a durable job without perl (POSIX sh, started by setsid in its own session
# with the job directory as $1): writes its pid, runs the command with its output appended to
# $1/output (no cap) and writes $1/status. Set before this part: what run_command needs.
d=$1
trap : $sigs
echo $$ > "$d/pid.tmp" && mv -f "$d/pid.tmp" "$d/pid"
( run_command ) </dev/null >>"$d/output" 2>&1
st=$?
if [ "$st" -gt 128 ] && [ "$st" -lt 193 ]; then
  s="signal $((st - 128))
guessed from exit status $st: perl is missing on this host, and a POSIX shell cannot tell a signal from exit $st"
else
  s="exit $st"
fi
printf '%s\n' "$s" > "$d/status.tmp" && mv -f "$d/status.tmp" "$d/status"
