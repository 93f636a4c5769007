#!/usr/bin/env bash
# The uvm/ layer against a real QEMU utility VM and our guest agent
# (test/tools/uvm-run.c):
#   run           UVM document from io.microsoft.virtualmachine.* annotations, boot,
#                 rootfs as an ext4 SCSI disk (reference counted), busybox container:
#                 stdout byte-exact, exit code, boot_id differs from the host's;
#                 pause/resume; disk removed in the guest; QEMU gone after close
#   boot-timeout  a 0.3 s boot timeout gives a clear error, nothing left running
#   garbage       the guest's "agent" writes garbage on the bridge: start fails
#   kill-qemu     QEMU killed under a running container: loss reported, wait fails
#   kill-agent    the guest agent killed: loss reported, QEMU gone
set -uo pipefail
REPO_ROOT=${REPO_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
TEST_BIN_DIR=${TEST_BIN_DIR:-$REPO_ROOT/build/test}
cd "$REPO_ROOT"

skip() { echo "shim_uvm_layer: SKIP: $*"; exit 77; }
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 not installed (make deps)"
command -v mkfs.ext4 >/dev/null || skip "mkfs.ext4 missing"
command -v crun >/dev/null || skip "crun missing (for the OCI spec template)"
[ -x "$TEST_BIN_DIR/uvm-run" ] || skip "$TEST_BIN_DIR/uvm-run not built"

work=$(mktemp -d /tmp/uvm-layer-XXXXXX)
qemu_pids() { # every QEMU the tool started (logged as "qemu pid N")
    cat "$work"/*.out 2>/dev/null | sed -n 's/.*qemu pid \([0-9][0-9]*\).*/\1/p'
}
cleanup() {
    for p in $(qemu_pids); do kill -9 "$p" 2>/dev/null; done
    rm -rf "$work"
}
trap cleanup EXIT

# The image always carries the plain (non-sanitizer) agent: it runs in the guest.
if [ ! -x build/bin/gcs ]; then
    timeout 600 make --no-print-directory SANITIZE= BUILD=build build/bin/gcs >"$work/make.log" 2>&1 ||
        skip "cannot build build/bin/gcs"
fi
if ! GCS_BIN=build/bin/gcs timeout 600 scripts/build-uvm.sh build/LinuxBootFiles >"$work/build.log" 2>&1; then
    cat "$work/build.log"
    echo "shim_uvm_layer: FAIL: cannot build the boot files"
    exit 1
fi
BOOT=$REPO_ROOT/build/LinuxBootFiles
"$REPO_ROOT/test/lib/busybox-rootfs.sh" "$work/rootfs" >/dev/null || skip "no busybox rootfs"
(cd "$work" && crun spec) || skip "crun spec failed"

failed=0
for scenario in run boot-timeout garbage kill-qemu kill-agent; do
    dir="$work/$scenario"
    mkdir -p "$dir"
    timeout --kill-after=10 240 "$TEST_BIN_DIR/uvm-run" "$scenario" "$BOOT" "$work/rootfs" \
        "$work/config.json" "$dir" >"$dir.out" 2>&1
    rc=$?
    grep -E '^(ok|FAIL) - |^agent-ready|^container-run|^rootfs-image|^disk-add' "$dir.out" | sed "s/^/[$scenario] /"
    if [ $rc -ne 0 ]; then
        echo "shim_uvm_layer: FAIL: $scenario (rc $rc)"
        tail -30 "$dir.out"
        [ -f "$dir/vm/vm.log" ] && tail -20 "$dir/vm/vm.log"
        failed=1
    fi
    for p in $(sed -n 's/.*qemu pid \([0-9][0-9]*\).*/\1/p' "$dir.out"); do
        if kill -0 "$p" 2>/dev/null; then
            echo "shim_uvm_layer: FAIL: $scenario left QEMU $p running"
            failed=1
        fi
    done
done
[ $failed -eq 0 ] && echo "shim_uvm_layer: PASS"
exit $failed
