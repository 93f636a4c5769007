#!/usr/bin/env bash
# Hypervisor isolation faults, end to end through containerd + our shim + QEMU:
#   - QEMU killed under a running task and a running exec: both exit with an error
#     status (255), /tasks/exit events are published, the shim keeps answering
#     (ctr task ls, delete), nothing is left running
#   - the guest agent killed (from a container sharing the UVM's pid namespace):
#     the same
#   - boot timeout (the "agent" is tail: it never answers): create fails with a
#     clear error, no QEMU, no shim left
#   - a guest that sends garbage on the bridge (the "agent" is yes): the same
set -euo pipefail
source "$(dirname "$0")/shim_e2e_lib.bash"
command -v qemu-system-x86_64 >/dev/null || { echo "SKIP: qemu-system-x86_64 missing"; exit 77; }
command -v mkfs.ext4 >/dev/null || { echo "SKIP: mkfs.ext4 missing"; exit 77; }
source "$(dirname "$0")/shim_uvm_lib.bash"
uvm_boot_files_ok || { echo "SKIP: no boot files (make uvm)"; exit 77; }
e2e_setup
uvm_track_qemus

work=$(mktemp -d /tmp/shim_uvm_faults.XXXXXX)
on_exit rm -rf "$work"
containerd_ctr events >"$work/events" 2>&1 &
events_pid=$!
on_exit "kill $events_pid 2>/dev/null"

exit_status_of() { # NAME: exit_status of its /tasks/exit event (init: "id" = NAME)
  grep -F "\"container_id\":\"$1\"" "$work/events" | grep '/tasks/exit' |
    grep -F "\"id\":\"$1\"" | grep -o '"exit_status":[0-9]*' | head -1 | cut -d: -f2
}

# $1 NAME, $2 how to break the UVM (a command run on the host)
break_uvm_case() {
  local name=$1 how=$2
  # In the UVM's own pid namespace: a container that can see (and kill) the agent.
  c run -d --runtime "$SHIM_RUNTIME" --annotation io.runhcs.isolation=hypervisor \
    --with-ns pid:/proc/1/ns/pid "${UVM_ARGS[@]}" "$BUSYBOX_IMAGE" "$name" sh -c 'echo up; sleep 1000' </dev/null
  wait_until 60 status_is "$name" RUNNING || fail "$name not RUNNING: $(c task ls)"
  c task exec --exec-id long "$name" sleep 1000 </dev/null >/dev/null 2>&1 &
  local exec_client=$!
  wait_until 30 sh -c "[ \$(ctr -a '$CONTAINERD_SOCK' -n '$E2E_NS' task ps $name 2>/dev/null | tail -n +2 | wc -l) -ge 2 ]" ||
    fail "exec did not start in $name"
  eval "$how"
  wait_until 60 status_is "$name" STOPPED || fail "$name did not stop after the fault: $(c task ls)"
  log "ok: $name STOPPED after the fault"
  local rc=0
  wait "$exec_client" || rc=$?
  [ "$rc" -ne 0 ] || fail "the exec of $name reported success after the fault"
  log "ok: the exec failed too (ctr exit $rc)"
  wait_until 10 sh -c "grep -F '\"container_id\":\"$name\"' '$work/events' | grep -q /tasks/exit" ||
    fail "no /tasks/exit for $name"
  local st
  st=$(exit_status_of "$name")
  [ -n "$st" ] && [ "$st" -ne 0 ] || fail "exit status of $name is [$st], want an error status"
  log "ok: /tasks/exit published for $name with status $st"
  c task ls >/dev/null || fail "the shim does not answer after the fault"
  c task delete "$name" >/dev/null
  c container rm "$name" >/dev/null
  assert_nothing_left "$name"
  uvm_assert_no_qemu
}

# --- QEMU dies
break_uvm_case fq 'p=$(uvm_qemu_pids); [ -n "$p" ] || fail "no QEMU found"; kill -9 $p; log "killed QEMU $p"'

# --- the guest agent dies: a container in the UVM's pid namespace kills it
break_uvm_case fa 'c task exec --exec-id killer fa sh -c "kill -9 \$(pidof gcs)" </dev/null >/dev/null 2>&1 || true; log "killed the guest agent"'

# --- boot timeout and garbage: create fails clearly, nothing is left
start_fails_case() { # NAME ANNOTATIONS... -- expected message
  local name=$1 want=$2
  shift 2
  local out rc=0
  out=$(c run --rm --runtime "$SHIM_RUNTIME" --annotation io.runhcs.isolation=hypervisor "$@" \
    "${UVM_ARGS[@]}" "$BUSYBOX_IMAGE" "$name" true </dev/null 2>&1) || rc=$?
  [ $rc -ne 0 ] || fail "$name: run succeeded"
  echo "$out" | grep -q "$want" || fail "$name: error lacks [$want]: $out"
  log "ok: $name fails clearly: $(echo "$out" | tail -1 | cut -c1-200)"
  c container rm "$name" >/dev/null 2>&1 || true
  assert_nothing_left "$name"
  uvm_assert_no_qemu
}
start_fails_case ft "boot timeout" \
  --annotation io.microsoft.virtualmachine.lcow.kernelbootoptions=uvm.agent=/bin/tail \
  --annotation io.runhcs.uvm.boot-timeout-ms=4000
start_fails_case fg "bridge lost" \
  --annotation io.microsoft.virtualmachine.lcow.kernelbootoptions=uvm.agent=/bin/yes

# --- the shim itself SIGKILLed: its VM is orphaned until the next hypervisor shim
# ends it (run dir owner is dead) -- nothing stays running for good
uvm_run_d fk sleep 1000
wait_until 60 status_is fk RUNNING || fail "fk not RUNNING: $(c task ls)"
orphan=$(uvm_qemu_pids)
[ -n "$orphan" ] || fail "no QEMU for fk"
for p in $(shim_pids); do kill -9 "$p"; done
log "killed the shim of fk (its QEMU $orphan)"
wait_until 60 sh -c "! ctr -a '$CONTAINERD_SOCK' -n '$E2E_NS' task ls 2>/dev/null | grep -q '^fk .*RUNNING'" ||
  fail "fk still RUNNING after its shim died"
c task delete fk >/dev/null 2>&1 || true
c container rm fk >/dev/null 2>&1 || true
out=$(uvm_run_rm fk2 echo next-shim </dev/null)
expect_eq "a new shim works" "next-shim" "$out"
wait_until 30 sh -c "! kill -0 $orphan 2>/dev/null" || fail "the orphaned QEMU $orphan is still running"
log "ok: the orphaned VM was ended by the next shim"
uvm_assert_no_qemu
e2e_finish
