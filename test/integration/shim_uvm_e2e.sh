#!/usr/bin/env bash
# Hypervisor isolation end to end: real containerd 1.6 + our shim + a QEMU utility
# VM (make uvm boot files, found at build/bin/../LinuxBootFiles) + our guest agent.
#   - ctr run --rm echo: stdout, stderr, exit codes; the container runs under another
#     kernel (its boot_id differs from the host's)
#   - a long-running task: RUNNING, exec with stdin to EOF, exec exit code, ps,
#     SIGKILL of an exec -> 137, SIGTERM trapped -> 7, Pause/Resume (PAUSED, frozen,
#     RUNNING again), events paused/resumed
#   - after delete: no QEMU, no shim, no rootfs image, no mount left
set -euo pipefail
source "$(dirname "$0")/shim_e2e_lib.bash"
command -v qemu-system-x86_64 >/dev/null || { echo "SKIP: qemu-system-x86_64 missing"; exit 77; }
command -v mkfs.ext4 >/dev/null || { echo "SKIP: mkfs.ext4 missing"; exit 77; }
source "$(dirname "$0")/shim_uvm_lib.bash"
# The image always carries the plain agent (it runs in the guest); cached rebuild ~1 s.
if [ -x "$REPO_ROOT/build/bin/gcs" ]; then
  (cd "$REPO_ROOT" && GCS_BIN=build/bin/gcs timeout 600 scripts/build-uvm.sh build/LinuxBootFiles) >/dev/null 2>&1 || true
fi
uvm_boot_files_ok || { echo "SKIP: no boot files (make uvm)"; exit 77; }
e2e_setup
uvm_track_qemus

work=$(mktemp -d /tmp/shim_uvm_e2e.XXXXXX)
on_exit rm -rf "$work"
containerd_ctr events >"$work/events" 2>&1 &
events_pid=$!
on_exit "kill $events_pid 2>/dev/null"

# --- echo under another kernel, timed
host_boot_id=$(cat /proc/sys/kernel/random/boot_id)
t0=$(date +%s%N)
out=$(uvm_run_rm echo1 sh -c 'echo hello from a utility VM; cat /proc/sys/kernel/random/boot_id' </dev/null)
t1=$(date +%s%N)
log "ctr run --rm echo in a UVM: $(( (t1 - t0) / 1000000 )) ms"
expect_eq "echo output" "hello from a utility VM" "$(echo "$out" | head -1)"
guest_boot_id=$(echo "$out" | sed -n 2p)
[ ${#guest_boot_id} -eq 36 ] && [ "$guest_boot_id" != "$host_boot_id" ] ||
  fail "boot_id [$guest_boot_id] must be a different kernel's than the host's [$host_boot_id]"
log "ok: the container runs under another kernel (boot_id $guest_boot_id)"
uvm_assert_no_qemu

errfile=$work/err
out=$(uvm_run_rm stderr1 sh -c 'echo to-stdout; echo to-stderr >&2; exit 3' </dev/null 2>"$errfile") && rc=0 || rc=$?
expect_eq "stdout only" "to-stdout" "$out"
expect_eq "stderr only" "to-stderr" "$(cat "$errfile")"
expect_eq "exit code" 3 "$rc"

# --- a long-running task
uvm_run_d t1 sh -c 'trap "echo got-term; exit 7" TERM; while true; do sleep 0.1; done'
wait_until 60 status_is t1 RUNNING || fail "t1 not RUNNING: $(c task ls)"
log "ok: RUNNING"
out=$(printf 'line one\nline two\n' | c task exec --exec-id e1 t1 cat)
expect_eq "exec stdin echoed" $'line one\nline two' "$out"
rc=0
c task exec --exec-id e2 t1 sh -c 'echo exec-out; exit 5' </dev/null >/dev/null || rc=$?
expect_eq "exec exit code" 5 "$rc"
c task exec --exec-id sleeper t1 sleep 1000 </dev/null >/dev/null &
exec_client=$!
wait_until 30 sh -c "[ \$(ctr -a '$CONTAINERD_SOCK' -n '$E2E_NS' task ps t1 2>/dev/null | tail -n +2 | wc -l) -ge 2 ]" ||
  fail "task ps does not list the exec: $(c task ps t1 2>&1)"
log "ok: ctr task ps lists init and exec"
c task kill -s SIGKILL --exec-id sleeper t1
rc=0
wait "$exec_client" || rc=$?
expect_eq "killed exec exit code" 137 "$rc"

# --- Pause / Resume: the whole UVM is frozen (QMP stop) and thawed
c task pause t1
wait_until 30 status_is t1 PAUSED || fail "t1 not PAUSED: $(c task ls)"
log "ok: PAUSED"
if timeout 3 ctr -a "$CONTAINERD_SOCK" -n "$E2E_NS" task exec --exec-id frozen t1 true </dev/null; then
  fail "an exec completed while the UVM was paused"
fi
log "ok: nothing runs while paused"
c task resume t1
wait_until 30 status_is t1 RUNNING || fail "t1 not RUNNING after resume: $(c task ls)"
rc=0
c task exec --exec-id after t1 sh -c 'exit 4' </dev/null || rc=$?
expect_eq "exec after resume" 4 "$rc"
wait_until 10 grep -q '/tasks/paused' "$work/events" || fail "no /tasks/paused event"
wait_until 10 grep -q '/tasks/resumed' "$work/events" || fail "no /tasks/resumed event"
log "ok: paused/resumed events"

c task kill -s SIGTERM t1
wait_until 30 status_is t1 STOPPED || fail "t1 did not stop on SIGTERM: $(c task ls)"
c task delete t1 >/dev/null
c container rm t1
wait_until 30 grep -q '/tasks/exit.*"t1"' "$work/events" || fail "no exit event for t1"
grep -F '"container_id":"t1"' "$work/events" | grep '/tasks/exit' | grep -q '"exit_status":7' ||
  fail "t1 exit status is not 7: $(grep '"t1"' "$work/events")"
log "ok: SIGTERM trapped -> 7"
assert_nothing_left t1
uvm_assert_no_qemu
uvm_assert_no_images
e2e_finish
