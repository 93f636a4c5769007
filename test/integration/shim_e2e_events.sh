#!/usr/bin/env bash
# Events in containerd's order (ctr events), a bad executable (clear error,
# nothing left behind), the hypervisor default's error, unknown runtime
# options accepted.
set -euo pipefail
source "$(dirname "$0")/shim_e2e_lib.bash"
e2e_setup

work=$(mktemp -d /tmp/shim_e2e_events.XXXXXX)
on_exit rm -rf "$work"

# --- ctr events: create -> start -> exit -> delete; exec-added -> exec-started -> exit
containerd_ctr events >"$work/events" 2>&1 &
events_pid=$!
on_exit "kill $events_pid 2>/dev/null"
sleep 1 # let the subscription reach containerd
rc=0
run_rm ev1 sh -c 'exit 2' </dev/null || rc=$?
expect_eq "ev1 exit code" 2 "$rc"
run_d ev2 sleep 1000
wait_until 30 status_is ev2 RUNNING || fail "ev2 not running"
c task exec --exec-id x1 ev2 true </dev/null
remove_container ev2

topics_of() { # topics of one container, in order (ctr events: "<time> <topic> <json>")
  grep -F "\"container_id\":\"$1\"" "$work/events" | grep -o "/tasks/[a-z-]*" | tr '\n' ' '
}
wait_until 30 sh -c "grep -q '/tasks/delete.*\"ev2\"' '$work/events'" || fail "no delete event for ev2: $(cat "$work/events")"
expect_eq "ev1 event order" "/tasks/create /tasks/start /tasks/exit /tasks/delete " "$(topics_of ev1)"
grep -F '"container_id":"ev1"' "$work/events" | grep '/tasks/exit' | grep -q '"exit_status":2' ||
  fail "TaskExit of ev1 lacks exit_status 2: $(grep ev1 "$work/events")"
expect_eq "ev2 event order" \
  "/tasks/create /tasks/start /tasks/exec-added /tasks/exec-started /tasks/exit /tasks/delete /tasks/exit /tasks/delete " \
  "$(topics_of ev2)"

# --- a bad executable: a clear error and nothing left behind
rc=0
run_rm bad1 /no/such/binary </dev/null >"$work/bad.out" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "a missing executable succeeded"
grep -qiE 'no such file|not found|executable' "$work/bad.out" || fail "unclear error: $(cat "$work/bad.out")"
log "ok: bad executable: $(head -c 200 "$work/bad.out")"
c container rm bad1 >/dev/null 2>&1 || true
assert_nothing_left bad1

# --- Linux containers default to hypervisor isolation: a utility VM when the boot
# files are there (test/integration/shim_uvm_*.sh cover it), else a clear error
rc=0
c run --rm --runtime "$SHIM_RUNTIME" "$BUSYBOX_IMAGE" hv1 cat /proc/sys/kernel/random/boot_id \
  </dev/null >"$work/hv.out" 2>&1 || rc=$?
if [ "$rc" -eq 0 ]; then
  [ "$(head -1 "$work/hv.out")" != "$(cat /proc/sys/kernel/random/boot_id)" ] ||
    fail "default (hypervisor) isolation ran on the host kernel"
  log "ok: hypervisor isolation by default (a utility VM)"
else
  grep -qiE "kernel|boot file|qemu" "$work/hv.out" || fail "unclear error: $(cat "$work/hv.out")"
  log "ok: hypervisor default without boot files refused clearly: $(head -c 200 "$work/hv.out")"
fi
c container rm hv1 >/dev/null 2>&1 || true
assert_nothing_left hv1

# --- unknown runtime options (runtimeoptions.v1.Options from --runtime-config-path) are accepted
echo '# empty' >"$work/runtime.toml"
out=$(c run --rm --runtime "$SHIM_RUNTIME" --runtime-config-path "$work/runtime.toml" \
  --annotation io.runhcs.isolation=process "$BUSYBOX_IMAGE" opt1 echo opts-ok </dev/null)
expect_eq "unknown runtime options tolerated" "opts-ok" "$out"

# --- status codes of the task API, straight at the shim's socket (§1.6, §2.3)
PROBE=${TEST_BIN_DIR:-$REPO_ROOT/$BUILD/test}/shim-probe
if [ -x "$PROBE" ]; then
  run_d codes1 sleep 1000
  wait_until 30 status_is codes1 RUNNING || fail "codes1 not running"
  addr="unix://$(shim_socket_of codes1)"
  expect_code() { # METHOD ID CODE
    local got
    got=$("$PROBE" call "$addr" "$1" "$2" | sed -n 's/^code=\([0-9]*\).*/\1/p')
    expect_eq "$1($2) status code" "$3" "$got"
  }
  expect_code State nope 5          # NotFound
  expect_code Kill nope 5
  expect_code Pause codes1 12       # Unimplemented with process isolation
  expect_code Resume codes1 12
  expect_code Checkpoint codes1 12
  expect_code Update codes1 3       # InvalidArgument: no resources
  expect_code Exec codes1 6         # AlreadyExists: empty exec id
  expect_code Create codes1 6       # AlreadyExists: same task id
  expect_code Start codes1 9        # FailedPrecondition: already running
  expect_code Delete codes1 9       # FailedPrecondition: still running
  expect_code ResizePty codes1 9    # FailedPrecondition: not a terminal
  expect_code Connect codes1 0
  remove_container codes1
  assert_nothing_left codes1
else
  log "shim-probe not built: status code checks skipped"
fi

e2e_finish
