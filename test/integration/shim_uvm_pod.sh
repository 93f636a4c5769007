#!/usr/bin/env bash
# Pods with hypervisor isolation: the sandbox (io.kubernetes.cri.container-type=
# sandbox) creates the pod's UVM in its shim; a workload (container-type=container,
# same sandbox-id) is created in that UVM by that shim: one QEMU, one shim, the
# same boot_id. Workload deleted first, then the sandbox (CRI order); the UVM goes
# with the sandbox; nothing is left.
set -euo pipefail
source "$(dirname "$0")/shim_e2e_lib.bash"
command -v qemu-system-x86_64 >/dev/null || { echo "SKIP: qemu-system-x86_64 missing"; exit 77; }
command -v mkfs.ext4 >/dev/null || { echo "SKIP: mkfs.ext4 missing"; exit 77; }
source "$(dirname "$0")/shim_uvm_lib.bash"
uvm_boot_files_ok || { echo "SKIP: no boot files (make uvm)"; exit 77; }
e2e_setup
uvm_track_qemus

pod=pod1
c run -d --runtime "$SHIM_RUNTIME" \
  --annotation io.kubernetes.cri.container-type=sandbox \
  --annotation io.kubernetes.cri.sandbox-id=$pod \
  --annotation io.microsoft.virtualmachine.computetopology.memory.sizeinmb=512 \
  "${UVM_ARGS[@]}" "$BUSYBOX_IMAGE" $pod sh -c 'cat /proc/sys/kernel/random/boot_id > /tmp/id; sleep 1000' </dev/null
wait_until 60 status_is $pod RUNNING || fail "sandbox not RUNNING: $(c task ls)"
sandbox_id=$(c task exec --exec-id id1 $pod cat /proc/sys/kernel/random/boot_id </dev/null)
[ ${#sandbox_id} -eq 36 ] || fail "sandbox boot_id [$sandbox_id]"
[ "$sandbox_id" != "$(cat /proc/sys/kernel/random/boot_id)" ] || fail "the sandbox runs on the host kernel"
qemus=$(uvm_qemu_pids | wc -l)
expect_eq "QEMU processes for the sandbox" 1 "$qemus"

out=$(c run --rm --runtime "$SHIM_RUNTIME" \
  --annotation io.kubernetes.cri.container-type=container \
  --annotation io.kubernetes.cri.sandbox-id=$pod \
  "${UVM_ARGS[@]}" "$BUSYBOX_IMAGE" w1 sh -c 'cat /proc/sys/kernel/random/boot_id; echo workload-ok' </dev/null)
expect_eq "workload output" "workload-ok" "$(echo "$out" | sed -n 2p)"
expect_eq "workload boot_id = sandbox boot_id (one UVM)" "$sandbox_id" "$(echo "$out" | head -1)"
expect_eq "QEMU processes for the pod" 1 "$(uvm_qemu_pids | wc -l)"
expect_eq "shim processes for the pod" 1 "$(shim_pids | wc -l)"

# A long-running workload, then CRI's order: workload stopped and deleted, sandbox last.
c run -d --runtime "$SHIM_RUNTIME" \
  --annotation io.kubernetes.cri.container-type=container \
  --annotation io.kubernetes.cri.sandbox-id=$pod \
  "${UVM_ARGS[@]}" "$BUSYBOX_IMAGE" w2 sleep 1000 </dev/null
wait_until 60 status_is w2 RUNNING || fail "w2 not RUNNING: $(c task ls)"
expect_eq "QEMU processes with two workloads" 1 "$(uvm_qemu_pids | wc -l)"
if out=$(c task pause w2 2>&1); then
  fail "pausing one container of a shared UVM succeeded"
fi
log "ok: pausing one pod member is refused: $out"
remove_container w2
c task kill -s SIGKILL $pod
wait_until 30 status_is $pod STOPPED || fail "sandbox did not stop"
c task delete $pod >/dev/null
c container rm $pod >/dev/null
assert_nothing_left $pod
uvm_assert_no_qemu
uvm_assert_no_images
e2e_finish
