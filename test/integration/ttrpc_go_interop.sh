#!/usr/bin/env bash
# Real-peer interop: the reference Go ttrpc client (containerd/ttrpc v1.1.1, as
# vendored by containerd 1.6.20) against our C ttrpc server (ttrpc-test-server).
# The client's checks are first run against the reference Go server, so a failure
# against the C server is the C server's.
set -uo pipefail
REPO_ROOT=${REPO_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${BUILD:-build}
TEST_BIN_DIR=${TEST_BIN_DIR:-$REPO_ROOT/$BUILD/test}
source "$REPO_ROOT/test/lib/containerd.sh" # on_exit, log, fail (no containerd needed)

if ! command -v go >/dev/null; then
  echo "SKIP: Go toolchain missing (the Go ttrpc client cannot be built)"
  exit 77
fi
client=$TEST_BIN_DIR/ttrpc-go-client
reference=$TEST_BIN_DIR/ttrpc-go-server
server=$TEST_BIN_DIR/ttrpc-test-server
for bin in "$client" "$reference" "$server"; do
  [ -x "$bin" ] || fail "$bin not built (run: make test-build)"
done

tmp=$(mktemp -d /tmp/ttrpc-interop.XXXXXX) || fail "mktemp failed"
on_exit "rm -rf '$tmp'"

# start_server NAME BINARY: starts BINARY --socket $tmp/NAME.sock, waits for "ready".
# Sets server_pid.
server_pid=
start_server() {
  local name=$1 bin=$2 deadline=$((SECONDS + 60))
  "$bin" --socket "$tmp/$name.sock" >"$tmp/$name.out" 2>"$tmp/$name.err" </dev/null &
  server_pid=$!
  on_exit "kill -KILL $server_pid 2>/dev/null; wait $server_pid 2>/dev/null"
  until grep -qx ready "$tmp/$name.out" 2>/dev/null; do
    if ! kill -0 "$server_pid" 2>/dev/null; then
      cat "$tmp/$name.err" >&2
      fail "$name exited before printing 'ready'"
    fi
    ((SECONDS < deadline)) || fail "$name did not print 'ready' within 60s"
    sleep 0.05
  done
  [ -S "$tmp/$name.sock" ] || fail "$name printed 'ready' but $tmp/$name.sock is not a socket"
}

# run_client NAME LABEL [quiet]: runs the Go client against server NAME, output to
# $tmp/LABEL.log; prints every check line, or only the summary when quiet and passing.
run_client() {
  local name=$1 label=$2 quiet=${3:-} rc
  timeout --kill-after=5 180 "$client" --socket "$tmp/$name.sock" --timeout 60s >"$tmp/$label.log" 2>&1
  rc=$?
  if [ "$rc" -eq 0 ] && [ -n "$quiet" ]; then
    tail -n 1 "$tmp/$label.log" | sed "s/^/  [$label] /"
  else
    sed "s/^/  [$label] /" "$tmp/$label.log"
  fi
  [ "$rc" -ne 124 ] && [ "$rc" -ne 137 ] || echo "  [$label] client timed out" >&2
  return "$rc"
}

# stop_server NAME: SIGTERM, then the server must exit 0 within 30s and be sanitizer-clean.
stop_server() {
  local name=$1 pid=$server_pid rc deadline=$((SECONDS + 30))
  kill -0 "$pid" 2>/dev/null || fail "$name died during the test: $(tail -n 5 "$tmp/$name.err")"
  kill -TERM "$pid"
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
    sleep 0.05
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid"
    fail "$name did not exit within 30s of SIGTERM"
  fi
  wait "$pid"
  rc=$?
  if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$tmp/$name.err"; then
    cat "$tmp/$name.err" >&2
    fail "$name: sanitizer report (above)"
  fi
  [ "$rc" -eq 0 ] || { tail -n 20 "$tmp/$name.err" >&2; fail "$name exited $rc after SIGTERM, want 0"; }
  log "$name exited 0 after SIGTERM"
}

log "reference: Go client against Go server (validates the checks themselves)"
start_server go-server "$reference"
run_client go-server reference quiet || fail "Go client failed against the reference Go server: the checks are wrong"
stop_server go-server

log "interop: Go client against C ttrpc-test-server"
start_server c-server "$server"
run_client c-server single || fail "Go client checks failed against ttrpc-test-server (see FAIL lines above)"

log "interop: two Go clients at once on separate connections"
run_client c-server parallel-1 quiet &
p1=$!
run_client c-server parallel-2 quiet &
p2=$!
wait "$p1" || fail "parallel client 1 failed"
wait "$p2" || fail "parallel client 2 failed"

log "interop: a client that vanishes with calls in flight must not hurt the server"
# Sleep calls are pending when the client is killed; the server must drop them quietly.
timeout -s TERM 0.5 "$client" --socket "$tmp/c-server.sock" >/dev/null 2>&1
run_client c-server after-kill quiet || fail "server misbehaved after a client was killed mid-call"

stop_server c-server
echo "PASS: ttrpc Go interop"
