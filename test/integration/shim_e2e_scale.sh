#!/usr/bin/env bash
# 20 containers at once through the shim, each with its own output and exit
# code; then nothing is left behind.
set -euo pipefail
source "$(dirname "$0")/shim_e2e_lib.bash"
e2e_setup

N=${SHIM_E2E_SCALE:-20}
work=$(mktemp -d /tmp/shim_e2e_scale.XXXXXX)
on_exit rm -rf "$work"

pids=()
for i in $(seq 1 "$N"); do
  CTR_TIMEOUT=240 run_rm "s$i" sh -c "sleep 1; echo out-$i; exit $((i % 7))" </dev/null >"$work/$i.out" 2>&1 &
  pids+=($!)
done
failures=0
for i in $(seq 1 "$N"); do
  rc=0
  wait "${pids[$((i - 1))]}" || rc=$?
  if [ "$rc" -ne $((i % 7)) ] || [ "$(cat "$work/$i.out")" != "out-$i" ]; then
    log "container s$i: rc=$rc output=[$(cat "$work/$i.out")]"
    failures=$((failures + 1))
  fi
done
[ "$failures" -eq 0 ] || fail "$failures of $N concurrent containers went wrong"
log "ok: $N concurrent containers, outputs and exit codes right"
for i in $(seq 1 "$N"); do
  assert_nothing_left "s$i"
done

# A pod: the sandbox and its members share one shim (and one agent); members
# inherit the sandbox's isolation annotation.
pod=(--annotation io.kubernetes.cri.sandbox-id=pod1)
c run -d --runtime "$SHIM_RUNTIME" --annotation io.runhcs.isolation=process \
  --annotation io.kubernetes.cri.container-type=sandbox "${pod[@]}" "$BUSYBOX_IMAGE" pod1 sleep 1000 </dev/null
wait_until 30 status_is pod1 RUNNING || fail "pod sandbox not running"
for m in 1 2 3; do
  out=$(c run --rm --runtime "$SHIM_RUNTIME" --annotation io.kubernetes.cri.container-type=container \
    "${pod[@]}" "$BUSYBOX_IMAGE" "member$m" sh -c "echo member-$m" </dev/null)
  expect_eq "pod member $m output" "member-$m" "$out"
done
expect_eq "one shim for the pod" 1 "$(shim_pids | wc -l)"
remove_container pod1
assert_nothing_left pod1
for m in 1 2 3; do assert_nothing_left "member$m"; done
e2e_finish
