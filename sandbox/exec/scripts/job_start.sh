# Starts a durable job without perl: creates its directory $d (command, boot_id, output), starts
# the supervisor $sup in its own session with setsid(1), waits for its pid and records its start
# time. Prints "pid PID" or "error KIND TEXT". Set before this part: $d, $cwd, $cmd, $sup, sid_of.
if [ -n "$cwd" ] && [ ! -d "$cwd" ]; then echo "error cwd working directory $cwd does not exist"; exit 0; fi
command -v setsid >/dev/null 2>&1 || { echo "error io background jobs need perl or setsid(1) on the host"; exit 0; }
mkdir -p -- "${d%/*}" 2>/dev/null
mkdir -m 700 -- "$d" 2>/dev/null || { echo "error io cannot create job directory $d"; exit 0; }
printf '%s\n' "$cmd" > "$d/command"
b=
read -r b 2>/dev/null < /proc/sys/kernel/random/boot_id
printf '%s\n' "$b" > "$d/boot_id"
: > "$d/output"
# The supervisor's text holds the environment's values: from a file in the job's 0700 directory
# (it deletes it at once), never on a command line.
printf '%s\n' "$sup" > "$d/supervisor" || { echo "error io cannot write $d/supervisor"; exit 0; }
setsid -f /bin/sh "$d/supervisor" "$d" </dev/null >/dev/null 2>&1 || { setsid /bin/sh "$d/supervisor" "$d" </dev/null >/dev/null 2>&1 & }
i=0
while [ ! -s "$d/pid" ] && [ "$i" -lt 500 ]; do sleep 0.01 2>/dev/null || sleep 1; i=$((i + 1)); done
p=
read -r p 2>/dev/null < "$d/pid"
if [ -n "$p" ]; then
  sid_of "$p"
  [ -n "$_t" ] && printf '%s\n' "$_t" > "$d/starttime"
  echo "pid $p"
else
  echo "error io the job supervisor did not start (see $d)"
fi
