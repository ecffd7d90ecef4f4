# Sourced by the HTTP benchmarks (http_load.sh, http_flood.sh): start_http_server BIN [ARGS...]
# starts `BIN serve --http 127.0.0.1:0 --state-dir $work/state ARGS...` with its log in
# $work/server.log, waits for its URL and sets $pid and $port; the server is stopped and $work
# removed when the script exits. Needs $work (a fresh directory).
pid=""
port=""
stop_http_server() {
  if [[ -n "$pid" ]]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap stop_http_server EXIT

start_http_server() {
  local bin="$1"
  shift
  "$bin" serve --http 127.0.0.1:0 --state-dir "$work/state" "$@" 2>"$work/server.log" &
  pid=$!
  for _ in $(seq 1 100); do
    port="$(grep -o 'listening on http://127.0.0.1:[0-9]*' "$work/server.log" | head -n 1 | sed 's/.*://')" || true
    [[ -n "$port" ]] && return 0
    sleep 0.1
  done
  echo "server did not start:"
  cat "$work/server.log"
  exit 1
}
