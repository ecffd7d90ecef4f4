# The foreground supervisor without perl (POSIX sh): reports its session ("sid SID PID 0": it
# cannot track processes that leave the session), runs the command and reports how it ended, each
# as a record "\036$n WORDS\n" on stderr. A status above 128 is reported as "signal N guessed".
# Set before this part: $n (the nonce), what run_command needs, and sid_of.
trap : $sigs
sid_of $$
[ -n "$_s" ] || _s=$$
printf '\036%s sid %s %s 0\n' "$n" "$_s" "$$" >&2
if [ -n "$cwd" ] && [ ! -d "$cwd" ]; then printf '\036%s error cwd\n' "$n" >&2; exit 0; fi
( run_command ) </dev/null
st=$?
if [ "$st" -gt 128 ] && [ "$st" -lt 193 ]; then
  printf '\036%s signal %s guessed\n' "$n" "$((st - 128))" >&2
else
  printf '\036%s exit %s\n' "$n" "$st" >&2
fi
