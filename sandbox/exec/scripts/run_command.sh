# run_command: runs $cmd with $shell -c in $cwd (through `launch`, which puts the launcher's words
# first: a profile's prlimit and bwrap), with the environment setup_env exports and the signals
# $sigs back to their default disposition; does not return (exit 126: no such directory).
# The positional parameters hold the shell and command, so that no variable of the environment
# (exported by setup_env) can change what runs.
run_command() {
  trap - $sigs
  if [ -n "$cwd" ]; then cd -- "$cwd" || exit 126; fi
  set -- "$shell" "$cmd"
  setup_env
  launch "$1" -c "$2"
}
