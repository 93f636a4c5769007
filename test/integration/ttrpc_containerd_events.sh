#!/usr/bin/env bash
# Real-peer test of our C ttrpc client: ttrpc-forward publishes task events to a
# private containerd 1.6.20 through containerd.services.events.ttrpc.v1.Events/Forward,
# and `ctr events` (which decodes each event by its type URL) must show them.
# Also proves the harness itself: a busybox container run with the stock runc shim,
# whose own events arrive the same way.
set -uo pipefail
REPO_ROOT=${REPO_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${BUILD:-build}
TEST_BIN_DIR=${TEST_BIN_DIR:-$REPO_ROOT/$BUILD/test}
source "$REPO_ROOT/test/lib/containerd.sh"
source "$REPO_ROOT/test/lib/busybox-image.sh"

forward=$TEST_BIN_DIR/ttrpc-forward
[ -x "$forward" ] || fail "$forward not built (run: make test-build)"
command -v ctr >/dev/null || fail "ctr (containerd) is not installed"

ns=evtest
containerd_start
work=$CONTAINERD_DIR/events-test
mkdir -p "$work"

# ---- ctr events subscriber ---------------------------------------------------------
events_pid=
events_out=
events_n=0
events_start() {
  events_n=$((events_n + 1))
  events_out=$work/events.$events_n.out
  # A plain command, so $! is timeout itself and a TERM reaches ctr.
  timeout 900 ctr --address "$CONTAINERD_SOCK" events >"$events_out" 2>"$events_out.err" &
  events_pid=$!
  on_exit "kill $events_pid 2>/dev/null; wait $events_pid 2>/dev/null"
  events_barrier || fail "ctr events never showed a /namespaces/create event (not subscribed?)"
}

events_stop() {
  kill "$events_pid" 2>/dev/null
  wait "$events_pid" 2>/dev/null
  events_pid=
}

# Creates (and removes) a throwaway namespace and waits until ctr events shows it.
# The exchange delivers in publish order, so afterwards every event published
# before the call is in $events_out. Retries, since the subscription starts async.
barrier_n=0
events_barrier() {
  local deadline=$((SECONDS + 60)) name wait_until attempt=0
  while ((SECONDS < deadline)); do
    attempt=$((attempt + 1))
    kill -0 "$events_pid" 2>/dev/null || { cat "$events_out.err" >&2; fail "ctr events exited"; }
    barrier_n=$((barrier_n + 1))
    name=barrier-$barrier_n
    containerd_ctr namespaces create "$name" >/dev/null || fail "ctr namespaces create $name failed"
    wait_until=$((SECONDS + (attempt < 5 ? attempt : 5)))
    while ((SECONDS < wait_until)); do
      if grep -qF "/namespaces/create {\"name\":\"$name\"}" "$events_out"; then
        containerd_ctr namespaces remove "$name" >/dev/null
        return 0
      fi
      sleep 0.05
    done
    containerd_ctr namespaces remove "$name" >/dev/null
  done
  return 1
}

# count_events NS TOPIC CONTAINER_ID [EXTRA_JSON_FRAGMENT]: lines of ctr events
# output like "<time> NS TOPIC {...,"container_id":"ID",...}".
count_events() {
  local ns=$1 topic=$2 cid=$3 extra=${4:-}
  grep -F " $ns $topic {" "$events_out" | grep -F "\"container_id\":\"$cid\"" |
    grep -cF -- "$extra"
}

# expect_events COUNT NS TOPIC CONTAINER_ID [EXTRA]: after a barrier, exactly COUNT.
expect_events() {
  local want=$1 got
  shift
  events_barrier || fail "ctr events stopped delivering"
  got=$(count_events "$@")
  if [ "$got" -ne "$want" ]; then
    echo "---- ctr events output ($events_out) ----" >&2
    grep -v '/namespaces/' "$events_out" | tail -n 20 >&2
    echo "---- ctr events stderr ----" >&2
    tail -n 10 "$events_out.err" >&2
    local detail=${4:+ containing $4}
    fail "want $want event(s) $2 in namespace '$1' for container '$3'$detail in ctr events, got $got"
  fi
}

# ---- ttrpc-forward -----------------------------------------------------------------
forward_n=0
forward_rc=
forward_err=
# run_forward ARGS...: runs ttrpc-forward (bounded) against containerd's ttrpc socket.
run_forward() {
  forward_n=$((forward_n + 1))
  forward_err=$work/forward.$forward_n.err
  timeout --kill-after=5 120 "$forward" --address "$CONTAINERD_TTRPC" "$@" \
    >"$work/forward.$forward_n.out" 2>"$forward_err" </dev/null
  forward_rc=$?
  if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$forward_err"; then
    cat "$forward_err" >&2
    fail "ttrpc-forward $*: sanitizer report (above)"
  fi
  if [ "$forward_rc" -eq 124 ] || [ "$forward_rc" -eq 137 ]; then
    fail "ttrpc-forward $* hung (killed after 120s)"
  fi
}

forward_ok() {
  run_forward "$@"
  [ "$forward_rc" -eq 0 ] || fail "ttrpc-forward $* exited $forward_rc: $(cat "$forward_err")"
}

# ---- 1. harness self-check with the stock runc shim -----------------------------------
events_start
busybox_image_import "$ns" || fail "importing the busybox image failed"
out=$(containerd_ctr -n "$ns" run --rm "$BUSYBOX_IMAGE" t1 echo hi 2>&1) ||
  fail "ctr run --rm $BUSYBOX_IMAGE t1 echo hi failed: $out"
[ "$out" = hi ] || fail "ctr run printed '$out', want 'hi'"
expect_events 1 "$ns" /tasks/exit t1 '"id":"t1"'
log "harness ok: busybox ran under runc; its shim's /tasks/exit reached ctr events"

# ---- 2. every topic, once ------------------------------------------------------------
forward_ok --namespace "$ns" --topic /tasks/create --container-id c-create
expect_events 1 "$ns" /tasks/create c-create
forward_ok --namespace "$ns" --topic /tasks/start --container-id c-start
expect_events 1 "$ns" /tasks/start c-start
forward_ok --namespace "$ns" --topic /tasks/exit --container-id c-exit --id e1 --exit-status 7
expect_events 1 "$ns" /tasks/exit c-exit '"id":"e1"'
expect_events 1 "$ns" /tasks/exit c-exit '"exit_status":7'
forward_ok --namespace "$ns" --topic /tasks/delete --container-id c-delete --exit-status 3
expect_events 1 "$ns" /tasks/delete c-delete '"exit_status":3'
forward_ok --namespace "$ns" --topic /tasks/oom --container-id c-oom
expect_events 1 "$ns" /tasks/oom c-oom
forward_ok --namespace other-ns --topic /tasks/exit --container-id c-other
expect_events 1 other-ns /tasks/exit c-other
log "create/start/exit/delete/oom forwarded and decoded by ctr events"

# ---- 3. a burst on one connection -------------------------------------------------------
forward_ok --namespace "$ns" --topic /tasks/exit --container-id c-burst --count 50 --timeout-ms 10000
expect_events 50 "$ns" /tasks/exit c-burst
log "--count 50: exactly 50 events"

# ---- 4. containerd rejects an empty namespace ---------------------------------------------
run_forward --namespace "" --topic /tasks/exit --container-id c-nons
[ "$forward_rc" -eq 1 ] || fail "empty namespace: ttrpc-forward exited $forward_rc, want 1 (stderr: $(cat "$forward_err"))"
grep -q 'forward failed: code=3 .*invalid namespace' "$forward_err" ||
  fail "empty namespace: want 'forward failed: code=3 ...invalid namespace...' on stderr, got: $(cat "$forward_err")"
events_barrier || fail "ctr events stopped delivering"
! grep -qF '"container_id":"c-nons"' "$events_out" || fail "the event with an empty namespace was delivered"
log "empty namespace rejected: $(head -n 1 "$forward_err")"

# ---- 5. containerd restart -------------------------------------------------------------
events_stop
containerd_stop
run_forward --namespace "$ns" --topic /tasks/exit --container-id c-down --timeout-ms 2000
[ "$forward_rc" -ne 0 ] || fail "ttrpc-forward succeeded while containerd was stopped"
log "containerd down: ttrpc-forward failed cleanly (exit $forward_rc: $(head -n 1 "$forward_err"))"
containerd_start
events_start
forward_ok --namespace "$ns" --topic /tasks/exit --container-id c-restart --exit-status 9
expect_events 1 "$ns" /tasks/exit c-restart '"exit_status":9'
log "after restart: forward works again"

events_stop
echo "PASS: ttrpc events to containerd"
