#!/usr/bin/env bash
# `make demo`: a private containerd 1.6 runs a busybox container through our
# containerd-shim-runhcs-v1, prints its output and cleans everything up again.
# Needs root. DEMO_ISOLATION=hypervisor (default: the shim boots a QEMU utility
# VM from build/LinuxBootFiles with our gcs agent inside, which runs the
# container with crun) or process (the gcs agent runs next to the shim).
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN_DIR=${BIN_DIR:-$REPO_ROOT/build/bin}
export REPO_ROOT BUILD=${BUILD:-build}

if [ "$(id -u)" -ne 0 ]; then
  echo "demo: needs root (containerd, crun, mounts)" >&2
  exit 1
fi
for f in "$BIN_DIR/containerd-shim-runhcs-v1" "$BIN_DIR/gcs"; do
  [ -x "$f" ] || { echo "demo: missing $f (run make)" >&2; exit 1; }
done

ISOLATION=${DEMO_ISOLATION:-hypervisor}
if [ "$ISOLATION" = hypervisor ]; then
  command -v qemu-system-x86_64 >/dev/null || { echo "demo: qemu-system-x86_64 missing (make deps)" >&2; exit 1; }
  # The boot files next to the shim (build/bin/../LinuxBootFiles; cached rebuild ~1 s).
  GCS_BIN=$BIN_DIR/gcs "$REPO_ROOT/scripts/build-uvm.sh" "$BIN_DIR/../LinuxBootFiles" | tail -1
fi

source "$REPO_ROOT/test/lib/containerd.sh"
source "$REPO_ROOT/test/lib/busybox-image.sh"
export CONTAINERD_EXTRA_PATH=$BIN_DIR CONTAINERD_LOG_LEVEL=${CONTAINERD_LOG_LEVEL:-info}

log "starting a private containerd (shim from $BIN_DIR on its PATH)"
containerd_start
log "importing the local busybox image as $BUSYBOX_IMAGE"
busybox_image_import demo >/dev/null

cmd=(containerd_ctr -n demo run --rm --runtime io.containerd.runhcs.v1
  --annotation io.runhcs.isolation=$ISOLATION "$BUSYBOX_IMAGE" demo1)
log "running: ctr run --rm --runtime io.containerd.runhcs.v1 --annotation io.runhcs.isolation=$ISOLATION $BUSYBOX_IMAGE demo1 ..."
echo "-----"
start=$(date +%s%N)
"${cmd[@]}" sh -c 'echo "hello from busybox via containerd-shim-runhcs-v1"; echo "  hostname: $(hostname), pid in container: $$, kernel: $(uname -r), boot_id: $(cat /proc/sys/kernel/random/boot_id)"' </dev/null
end=$(date +%s%N)
echo "-----"
log "host boot_id: $(cat /proc/sys/kernel/random/boot_id) ($ISOLATION isolation; ctr run took $(( (end - start) / 1000000 )) ms)"
log "done; cleaning up"
