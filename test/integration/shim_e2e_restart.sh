#!/usr/bin/env bash
# containerd restarts while a task runs: the shim keeps the task, containerd
# reconnects (Connect), exec/Wait/Kill/Delete still work; an exit that
# happens while containerd is down is kept and its event delivered later.
set -euo pipefail
source "$(dirname "$0")/shim_e2e_lib.bash"
e2e_setup

work=$(mktemp -d /tmp/shim_e2e_restart.XXXXXX)
on_exit rm -rf "$work"

run_d r1 sh -c 'trap "exit 9" TERM; while true; do sleep 0.1; done'
run_d r2 sleep 1000
wait_until 30 status_is r1 RUNNING || fail "r1 not running"
wait_until 30 status_is r2 RUNNING || fail "r2 not running"
pid1=$(task_pid r1)
pid2=$(task_pid r2)
shims_before=$(shim_pids | sort | tr '\n' ' ')

containerd_restart
wait_until 30 status_is r1 RUNNING || fail "r1 not RUNNING after restart: $(c task ls 2>&1)"
expect_eq "r1 pid after restart" "$pid1" "$(task_pid r1)"
expect_eq "same shims after restart" "$shims_before" "$(shim_pids | sort | tr '\n' ' ')"
out=$(c task exec --exec-id after1 r1 echo exec-after-restart </dev/null)
expect_eq "exec after restart" "exec-after-restart" "$out"

# Wait (ctr task attach waits for the exit) + Kill after the restart
c task attach r1 >"$work/attach.out" 2>&1 &
attach=$!
sleep 1
c task kill -s SIGTERM r1
rc=0
wait "$attach" || rc=$?
expect_eq "exit status seen by a Wait after restart" 9 "$rc"
# ctr task attach deletes the task itself after the exit
task_gone() { [ -z "$(task_status r1)" ]; }
wait_until 30 task_gone || { c task delete r1 >/dev/null; }
c container rm r1
log "ok: wait/kill/delete after restart"

# r2 exits while containerd is down: the exit is kept, TaskExit delivered later
containerd_stop
kill -KILL "$pid2"
sleep 1
containerd_start
wait_until 30 status_is r2 STOPPED || fail "r2 not STOPPED after restart: $(c task ls 2>&1)"
status=$(c task delete r2 2>/dev/null | tail -n 1) || true
exit_delivered_since_restart() {
  local start
  start=$(grep -n '^==== containerd start' "$CONTAINERD_LOG" | tail -n 1 | cut -d: -f1)
  tail -n +"$start" "$CONTAINERD_LOG" | grep -q 'event forwarded.*topic=/tasks/exit'
}
wait_until 30 exit_delivered_since_restart ||
  fail "the TaskExit produced while containerd was down was never delivered"
log "ok: exit produced while containerd was away was delivered after its restart"
c container rm r2
assert_nothing_left r1
assert_nothing_left r2

# the guest agent dies: the task is reported exited (255), its process does not linger
run_d a1 sleep 1000
wait_until 30 status_is a1 RUNNING || fail "a1 not running"
cpid=$(task_pid a1)
agent=$(pgrep -P "$(shim_pids)" -x gcs || true)
[ -n "$agent" ] || fail "no gcs agent under the shim"
kill -KILL "$agent"
wait_until 30 status_is a1 STOPPED || fail "a1 not STOPPED after the agent died: $(c task ls)"
process_gone() { [ ! -d "/proc/$cpid" ] || grep -q '^State:.*Z' "/proc/$cpid/status"; }
wait_until 30 process_gone || fail "container process $cpid outlived the agent"
c task delete a1 >/dev/null
c container rm a1
assert_nothing_left a1
log "ok: agent death ends the task cleanly"

# SIGTERM to a shim with a live task: it still exits cleanly (no hang, no crash)
run_d r3 sleep 1000
wait_until 30 status_is r3 RUNNING || fail "r3 not running"
kill -TERM $(shim_pids)
wait_until 30 no_shims_left || fail "shim ignored SIGTERM: $(shim_pids)"
log "ok: shim exits on SIGTERM with a live task"
c task delete r3 >/dev/null 2>&1 || true
c container rm r3 >/dev/null 2>&1 || true
e2e_finish
