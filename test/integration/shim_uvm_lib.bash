# Helpers for test/integration/shim_uvm_*.sh (sourced after shim_e2e_lib.bash).

# Boot files: the shim looks next to its binary (build/bin/../LinuxBootFiles); the
# sanitizer build (build/san/bin) uses the plain build's through the annotation.
if ! grep -q "starting utility VM" "$BIN_DIR/containerd-shim-runhcs-v1"; then
  echo "SKIP: this shim has no hypervisor mode"
  exit 77
fi
UVM_ARGS=()
# A boot that hangs must fail with the shim's clear error before ctr's own 60 s bound.
export SHIM_UVM_BOOT_TIMEOUT_MS=${SHIM_UVM_BOOT_TIMEOUT_MS:-40000}
if [ ! -r "$BIN_DIR/../LinuxBootFiles/kernel" ]; then
  UVM_ARGS=(--annotation "io.microsoft.virtualmachine.bootfilesrootpath=$REPO_ROOT/build/LinuxBootFiles")
fi

uvm_boot_files_ok() {
  local dir=$BIN_DIR/../LinuxBootFiles
  [ -r "$dir/kernel" ] || dir=$REPO_ROOT/build/LinuxBootFiles
  [ -r "$dir/kernel" ] && [ -r "$dir/initrd.img" ]
}

# uvm_run_rm NAME CMD...: ctr run --rm with hypervisor isolation.
uvm_run_rm() {
  local name=$1
  shift
  c run --rm --runtime "$SHIM_RUNTIME" --annotation io.runhcs.isolation=hypervisor \
    "${UVM_ARGS[@]}" "$BUSYBOX_IMAGE" "$name" "$@"
}

uvm_run_d() {
  local name=$1
  shift
  c run -d --runtime "$SHIM_RUNTIME" --annotation io.runhcs.isolation=hypervisor \
    "${UVM_ARGS[@]}" "$BUSYBOX_IMAGE" "$name" "$@" </dev/null
}

# QEMU processes started by our shims (their -kernel is our boot files).
uvm_qemu_pids() {
  local f pid
  for f in /proc/[0-9]*/cmdline; do
    pid=${f#/proc/}
    pid=${pid%/cmdline}
    { tr '\0' '\n' <"$f"; } 2>/dev/null | head -1 | grep -q 'qemu-system' || continue
    { tr '\0' '\n' <"$f"; } 2>/dev/null | grep -q '/run/runhcs-uvm/uvm-' && echo "$pid"
  done
  return 0
}

uvm_no_qemu() {
  [ -z "$(uvm_qemu_pids)" ]
}

# Kills (by pid) any VM of ours left when the test ends.
uvm_track_qemus() {
  on_exit 'for p in $(uvm_qemu_pids); do kill -9 "$p" 2>/dev/null; done'
}

uvm_assert_no_qemu() {
  wait_until 30 uvm_no_qemu || fail "QEMU left running: $(uvm_qemu_pids)"
  log "ok: no QEMU left"
}

uvm_assert_no_images() {
  local left
  left=$( (ls -d /run/runhcs-uvm/uvm-* 2>/dev/null || true) | while read -r d; do
    p=$(cat "$d/owner" 2>/dev/null || echo 0)
    kill -0 "$p" 2>/dev/null && echo "$d"
  done)
  [ -z "$left" ] || fail "UVM run directories of live shims left: $left"
}
