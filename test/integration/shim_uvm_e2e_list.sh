#!/usr/bin/env bash
# The task-service end-to-end list (shim_e2e_basic.sh, shim_e2e_io.sh) again, with
# hypervisor isolation: every container in its own QEMU utility VM. Process-only
# checks (host pids, Pause = Unimplemented) are skipped there by the scripts.
set -uo pipefail
REPO_ROOT=${REPO_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${BUILD:-build}
BIN_DIR=${BIN_DIR:-$REPO_ROOT/$BUILD/bin}
command -v qemu-system-x86_64 >/dev/null || { echo "SKIP: qemu-system-x86_64 missing"; exit 77; }
grep -q "starting utility VM" "$BIN_DIR/containerd-shim-runhcs-v1" 2>/dev/null ||
  { echo "SKIP: this shim has no hypervisor mode"; exit 77; }
[ -r "$BIN_DIR/../LinuxBootFiles/kernel" ] || [ -r "$REPO_ROOT/build/LinuxBootFiles/kernel" ] ||
  { echo "SKIP: no boot files (make uvm)"; exit 77; }
export E2E_ISOLATION=hypervisor E2E_NS=e2e-uvm
export SHIM_UVM_BOOT_TIMEOUT_MS=${SHIM_UVM_BOOT_TIMEOUT_MS:-40000}
failed=0
for t in shim_e2e_basic shim_e2e_io; do
  echo "=== $t (hypervisor)"
  bash "$(dirname "$0")/$t.sh"
  rc=$?
  [ $rc -eq 0 ] || { echo "shim_uvm_e2e_list: FAIL: $t (rc $rc)"; failed=1; }
done
[ $failed -eq 0 ] && echo "shim_uvm_e2e_list: PASS"
exit $failed
