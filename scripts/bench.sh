#!/usr/bin/env bash
# make bench: containerd-shim-runhcs-v1 (ours, process isolation: shim + host
# guest agent `gcs` + crun) against containerd-shim-runc-v2 (+ runc), both under
# one private containerd 1.6, in one run, with alternating A/B rounds.
#
# Measures: resident memory with one sleeping container (RSS and PSS of the
# shim's process tree, the container's own processes excluded), `ctr run --rm
# ... echo` wall time, ttrpc State round trip p50/p99 (bench/ttrpc-state-bench),
# 1 GiB stdout relay to ctr, 50 containers started at once (time, memory).
# Hypervisor isolation (a QEMU utility VM per shim; a second table): UVM boot ->
# guest agent ready (build/test/uvm-run boot, and the shims' own log lines), `ctr
# run --rm ... echo` in a UVM, memory with one sleeping container in a UVM (shim +
# QEMU + the UVM's run dir when /run is a tmpfs), a pod of 20 containers in one UVM
# (time to start them all, memory).
#
# Output (build/bench/): results.md (table), results.png (gnuplot), raw/ (every
# sample), profile.md (perf/smaps findings for missed targets). The README
# section between <!-- bench:start --> and <!-- bench:end --> gets the table.
#
# Knobs: BENCH_RUN_ROUNDS (11), BENCH_STATE_CALLS (10000 per shim, in BENCH_STATE_ROUNDS
# (10) rounds; p99 = median of the rounds' p99s), BENCH_STATE_BATCH
# (100: consecutive calls to one shim), BENCH_STATE_CALLS_CBC (2000: the extra
# call-by-call run), BENCH_RELAY_ROUNDS (9),
# BENCH_RELAY_MIB (1024), BENCH_MEM_ROUNDS (5), BENCH_DENSITY_N (50),
# BENCH_DENSITY_ROUNDS (3), BENCH_HV_BOOT_ROUNDS (3), BENCH_HV_ECHO_ROUNDS (3),
# BENCH_HV_MEM_ROUNDS (3), BENCH_HV_POD_N (20 containers in the pod, sandbox
# included), BENCH_HV_POD_PARALLEL (4 members started at a time), BENCH_HV_SETTLE_S
# (5: wait before sampling a UVM's memory), BENCH_BOOT_DIR (boot files, default
# <shim dir>/../LinuxBootFiles, then build/LinuxBootFiles), BENCH_BUDGET_S (720:
# measurements still pending after that are reported as skipped), BENCH_HARD_LIMIT_S
# (840: then the run is stopped and cleaned up without a report; with the build
# this keeps `make bench` under 15 min), BENCH_PROFILE (1 = perf profile of our shim),
# BENCH_README (1 = update README.md), BENCH_OUT (build/bench), BENCH_SHIM_DIR (where
# containerd-shim-runhcs-v1 and gcs are, build/bin).
#
# One or a few rows: BENCH_ONLY="memory state" runs only those measurements
# (words: memory echo state relay density hypervisor) into build/bench-only/
# (BENCH_OUT to change) and never touches README.md; e.g.
#   make -j2 all build/bench/bin/ttrpc-state-bench && BENCH_ONLY=state scripts/bench.sh
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO_ROOT"
export REPO_ROOT BUILD=build
BIN_DIR=${BENCH_SHIM_DIR:-$REPO_ROOT/build/bin}
BENCH_BIN=$REPO_ROOT/build/bench/bin
OUT=${BENCH_OUT:-$REPO_ROOT/build/bench}
RAW=$OUT/raw
RUN_ROUNDS=${BENCH_RUN_ROUNDS:-11}
STATE_CALLS=${BENCH_STATE_CALLS:-10000}
STATE_ROUNDS=${BENCH_STATE_ROUNDS:-10}
STATE_BATCH=${BENCH_STATE_BATCH:-100}
STATE_CALLS_CBC=${BENCH_STATE_CALLS_CBC:-2000}
RELAY_ROUNDS=${BENCH_RELAY_ROUNDS:-9}
RELAY_MIB=${BENCH_RELAY_MIB:-1024}
MEM_ROUNDS=${BENCH_MEM_ROUNDS:-5}
DENSITY_N=${BENCH_DENSITY_N:-50}
DENSITY_ROUNDS=${BENCH_DENSITY_ROUNDS:-3}
HV_BOOT_ROUNDS=${BENCH_HV_BOOT_ROUNDS:-3}
HV_ECHO_ROUNDS=${BENCH_HV_ECHO_ROUNDS:-3}
HV_MEM_ROUNDS=${BENCH_HV_MEM_ROUNDS:-3}
HV_POD_N=${BENCH_HV_POD_N:-20}
HV_POD_PARALLEL=${BENCH_HV_POD_PARALLEL:-4}
HV_SETTLE_S=${BENCH_HV_SETTLE_S:-5}
BUDGET_S=${BENCH_BUDGET_S:-720}
HARD_LIMIT_S=${BENCH_HARD_LIMIT_S:-840}
PROFILE=${BENCH_PROFILE:-1}
BENCH_ONLY=${BENCH_ONLY:-}
if [ -n "$BENCH_ONLY" ]; then
  OUT=${BENCH_OUT:-$REPO_ROOT/build/bench-only}
  RAW=$OUT/raw
  export BENCH_README=0 # a partial run never replaces the README's table
fi
NS=bench
IMAGE=localhost/busybox:test

if [ "$(id -u)" -ne 0 ]; then
  echo "bench: needs root (containerd, runc, crun, mounts)" >&2
  exit 1
fi
for tool in containerd ctr runc crun containerd-shim-runc-v2 gnuplot; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is not installed (make deps)" >&2; exit 1; }
done
for f in "$BIN_DIR/containerd-shim-runhcs-v1" "$BIN_DIR/gcs" "$BENCH_BIN/ttrpc-state-bench"; do
  [ -x "$f" ] || { echo "bench: missing $f (run make bench)" >&2; exit 1; }
done

# shellcheck source=../test/lib/containerd.sh
source "$REPO_ROOT/test/lib/containerd.sh"
# shellcheck source=../test/lib/busybox-image.sh
source "$REPO_ROOT/test/lib/busybox-image.sh"
# shellcheck source=../bench/lib.bash
source "$REPO_ROOT/bench/lib.bash"
# shellcheck source=../bench/report.bash
source "$REPO_ROOT/bench/report.bash"

# A private copy of our shim and its agent (found next to the shim), so that a
# rebuild during the run cannot mix versions. Shims are found on containerd's
# PATH; info level so neither shim runs with -debug.
rm -rf "$RAW"
mkdir -p "$RAW/bin"
cp "$BIN_DIR/containerd-shim-runhcs-v1" "$BIN_DIR/gcs" "$RAW/bin/"
(cd "$RAW/bin" && sha256sum containerd-shim-runhcs-v1 gcs >"$RAW/binaries.sha256")
export CONTAINERD_EXTRA_PATH=$RAW/bin
export CONTAINERD_LOG_LEVEL=info
export CONTAINERD_FAIL_LOG_DIR=$OUT

# Hypervisor isolation: a private copy of the boot files too (the initrd carries
# gcs), found by the shim through the hcsshim annotation; uvm-run for the bare
# boot time.
HV_BOOT_DIR=$RAW/LinuxBootFiles
HV_PREREQ_REASON=""
HV_BOOT_REASON=""
UVM_RUN=""
if ! bench_wanted hypervisor; then
  HV_PREREQ_REASON="skipped: BENCH_ONLY=$BENCH_ONLY"
fi
BOOT_SRC=${BENCH_BOOT_DIR:-$BIN_DIR/../LinuxBootFiles}
[ -r "$BOOT_SRC/kernel" ] || BOOT_SRC=$REPO_ROOT/build/LinuxBootFiles
if [ -n "$HV_PREREQ_REASON" ]; then
  :
elif ! command -v qemu-system-x86_64 >/dev/null; then
  HV_PREREQ_REASON="qemu-system-x86_64 not installed (make deps)"
elif ! command -v mkfs.ext4 >/dev/null; then
  HV_PREREQ_REASON="mkfs.ext4 not installed"
elif [ ! -r "$BOOT_SRC/kernel" ] || [ ! -r "$BOOT_SRC/initrd.img" ]; then
  HV_PREREQ_REASON="no boot files in $BOOT_SRC (make uvm)"
else
  mkdir -p "$HV_BOOT_DIR"
  cp "$BOOT_SRC/kernel" "$BOOT_SRC/initrd.img" "$HV_BOOT_DIR/"
  [ ! -r "$BOOT_SRC/kernel.version" ] || cp "$BOOT_SRC/kernel.version" "$HV_BOOT_DIR/"
  (cd "$HV_BOOT_DIR" && sha256sum kernel initrd.img >>"$RAW/binaries.sha256")
fi
if [ -n "$HV_PREREQ_REASON" ]; then
  HV_BOOT_REASON=$HV_PREREQ_REASON
elif timeout 300 make -C "$REPO_ROOT" --no-print-directory SANITIZE= BUILD=build build/test/uvm-run \
  >"$RAW/make-uvm-run.log" 2>&1 && [ -x "$REPO_ROOT/build/test/uvm-run" ]; then
  cp "$REPO_ROOT/build/test/uvm-run" "$RAW/bin/"
  UVM_RUN=$RAW/bin/uvm-run
else
  HV_BOOT_REASON="cannot build build/test/uvm-run (raw/make-uvm-run.log)"
fi

: >"$RAW/results.tsv"
T0=$SECONDS
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "bench: output in $OUT (load average $LOAD_START)"

# Hard bound on the whole run: SIGTERM ourselves, which runs the EXIT cleanup.
(
  trap 'kill "$sleeper" 2>/dev/null; exit 0' TERM
  sleep "$HARD_LIMIT_S" &
  sleeper=$!
  wait "$sleeper" && echo "bench: hard limit of ${HARD_LIMIT_S}s reached, stopping" >&2 && kill -TERM $$
) </dev/null &
BENCH_HELPER_PIDS+=($!)
on_exit bench_kill_helpers
# Exit handlers run last-registered first: this one runs after containerd's
# cleanup; the one registered after containerd_start runs before it.
on_exit hv_kill_leftover_vms

containerd_start
on_exit hv_note_shim_vms
busybox_image_import "$NS" || fail "busybox image import failed"

# A = ours, B = runc-v2; rounds alternate the order (ABAB, BABA, ...).
RT_NAMES=(runhcs runc)
RT_ARGS_runhcs=(--runtime io.containerd.runhcs.v1 --annotation io.runhcs.isolation=process)
RT_ARGS_runc=(--runtime io.containerd.runc.v2)
RT_ARGS_runhcs_hv=(--runtime io.containerd.runhcs.v1 --annotation io.runhcs.isolation=hypervisor
  --annotation "io.microsoft.virtualmachine.bootfilesrootpath=$HV_BOOT_DIR")

OURS_OK=0
OURS_REASON=""
bench_probe_ours
HV_OK=0
HV_REASON="n/a (UVM not probed)"
HV_ACCEL=""
bench_probe_hypervisor

for part in memory echo state relay density hypervisor; do
  if bench_wanted "$part"; then
    "bench_$part"
  fi
done

bench_report
log "bench: done in $((SECONDS - T0)) s; $OUT/results.md, $OUT/results.png"
