#!/usr/bin/env bash
# End to end through real containerd 1.6 + our shim + the gcs agent + crun:
# echo, exit codes, stderr, exec with stdin and EOF, exec exit code, task
# states, SIGKILL -> 137, SIGTERM handled by the process, pids, stats.
set -euo pipefail
source "$(dirname "$0")/shim_e2e_lib.bash"
e2e_setup

# --- echo and stdout/stderr separation
out=$(run_rm echo1 sh -c 'echo hello from busybox via containerd-shim-runhcs-v1' </dev/null)
expect_eq "echo output" "hello from busybox via containerd-shim-runhcs-v1" "$out"

errfile=$(mktemp)
on_exit rm -f "$errfile"
out=$(run_rm stderr1 sh -c 'echo to-stdout; echo to-stderr >&2' </dev/null 2>"$errfile")
expect_eq "stdout only" "to-stdout" "$out"
expect_eq "stderr only" "to-stderr" "$(cat "$errfile")"

# --- exit codes
for code in 0 3 42; do
  rc=0
  run_rm "exit$code" sh -c "exit $code" </dev/null || rc=$?
  expect_eq "exit code $code" "$code" "$rc"
done

# --- a long-running task: states, exec, signals
run_d t1 sh -c 'trap "echo got-term; exit 7" TERM; while true; do sleep 0.1; done'
wait_until 30 status_is t1 RUNNING || fail "t1 not RUNNING: $(c task ls)"
log "ok: ctr task ls shows RUNNING"
pid=$(task_pid t1)
if [ "${E2E_ISOLATION:-process}" = process ]; then
  [ -n "$pid" ] && [ "$pid" -gt 0 ] && [ -d "/proc/$pid" ] || fail "task pid [$pid] is not a live host process"
  log "ok: task pid $pid is the real init pid"
else # a pid in the utility VM
  [ -n "$pid" ] && [ "$pid" -gt 0 ] || fail "task pid [$pid]"
fi

# exec with stdin through to EOF (cat must see EOF or this hangs)
out=$(printf 'line one\nline two\n' | c task exec --exec-id e1 t1 cat)
expect_eq "exec stdin echoed" $'line one\nline two' "$out"

rc=0
c task exec --exec-id e2 t1 sh -c 'echo exec-out; exit 5' </dev/null >/dev/null || rc=$?
expect_eq "exec exit code" 5 "$rc"

# pids: the init and a running exec
c task exec --exec-id sleeper t1 sleep 1000 </dev/null >/dev/null &
exec_client=$!
wait_until 30 sh -c "[ \$(ctr -a '$CONTAINERD_SOCK' -n '$E2E_NS' task ps t1 2>/dev/null | tail -n +2 | wc -l) -ge 2 ]" ||
  fail "task ps does not list the exec: $(c task ps t1 2>&1)"
c task ps t1 | awk 'NR > 1 { print $1 }' | grep -qx "$pid" || fail "task ps misses the init pid $pid"
log "ok: ctr task ps lists init and exec"
c task kill -s SIGKILL --exec-id sleeper t1
rc=0
wait "$exec_client" || rc=$?
expect_eq "killed exec exit code" 137 "$rc"

# stats
metrics=$(c task metrics t1 2>&1) || fail "ctr task metrics failed: $metrics"
echo "$metrics" | grep -q 'pids.current' || fail "metrics without pids.current: $metrics"
log "ok: ctr task metrics"

# Pause is not possible with process isolation: Unimplemented (hypervisor: shim_uvm_e2e.sh)
if [ "${E2E_ISOLATION:-process}" != process ]; then
  :
elif out=$(c task pause t1 2>&1); then
  fail "pause unexpectedly succeeded"
else
  echo "$out" | grep -qi 'not implemented\|not supported' || fail "pause error unclear: $out"
  log "ok: pause answers Unimplemented"
fi

# SIGTERM is delivered to the process, which traps it and exits 7
c task kill -s SIGTERM t1
wait_until 30 status_is t1 STOPPED || fail "t1 did not stop on SIGTERM: $(c task ls)"
log "ok: ctr task ls shows STOPPED"
c task delete t1 >/dev/null
c container rm t1
# exit status through a waiting client: SIGKILL -> 137, SIGTERM trap -> 7
run_term_out=$(mktemp)
on_exit rm -f "$run_term_out"
run_rm term1 sh -c 'trap "echo got-term; exit 7" TERM; echo ready; while true; do sleep 0.1; done' \
  </dev/null >"$run_term_out" 2>&1 &
client=$!
wait_until 30 grep -q ready "$run_term_out" || fail "term1 never became ready"
c task kill -s SIGTERM term1
rc=0
wait "$client" || rc=$?
expect_eq "SIGTERM trapped exit code" 7 "$rc"
grep -q got-term "$run_term_out" || fail "trap output lost: $(cat "$run_term_out")"

: >"$run_term_out"
run_rm kill1 sh -c 'echo ready; exec sleep 1000' </dev/null >"$run_term_out" 2>&1 &
client=$!
wait_until 30 grep -q ready "$run_term_out" || fail "kill1 never became ready"
c task kill -s SIGKILL kill1
rc=0
wait "$client" || rc=$?
expect_eq "SIGKILL exit code" 137 "$rc"

# an exec of a missing binary fails clearly; the task keeps working
run_d t2 sleep 1000
wait_until 30 status_is t2 RUNNING || fail "t2 not running"
rc=0
out=$(c task exec --exec-id bad t2 /no/such/thing </dev/null 2>&1) || rc=$?
[ "$rc" -ne 0 ] || fail "exec of a missing binary succeeded"
echo "$out" | grep -qiE 'no such file|not found' || fail "unclear exec error: $out"
out=$(c task exec --exec-id good t2 echo still-fine </dev/null)
expect_eq "exec after a failed exec" "still-fine" "$out"

# kill --all reaches the execs too
c task exec --exec-id long t2 sleep 1000 </dev/null >/dev/null &
exec_client=$!
wait_until 30 sh -c "[ \$(ctr -a '$CONTAINERD_SOCK' -n '$E2E_NS' task ps t2 2>/dev/null | tail -n +2 | wc -l) -ge 2 ]" ||
  fail "exec 'long' never showed up"
c task kill -a -s SIGKILL t2
rc=0
wait "$exec_client" || rc=$?
expect_eq "exec killed by kill --all" 137 "$rc"
wait_until 30 status_is t2 STOPPED || fail "t2 did not stop"
c task delete t2 >/dev/null
c container rm t2

# nothing of the finished containers is left
assert_nothing_left echo1
assert_nothing_left kill1
e2e_finish
