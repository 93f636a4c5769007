# Shared setup for test/integration/shim_e2e_*.sh (sourced, not a test itself:
# the runner only picks up *.sh). A private containerd 1.6 with $BIN_DIR on its
# PATH, so `--runtime io.containerd.runhcs.v1` resolves to our shim, the local
# busybox image, and helpers that run containers with process isolation.

REPO_ROOT=${REPO_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BUILD=${BUILD:-build}
BIN_DIR=${BIN_DIR:-$REPO_ROOT/$BUILD/bin}
SHIM_RUNTIME=io.containerd.runhcs.v1
E2E_NS=${E2E_NS:-e2e}

if [ "$(id -u)" -ne 0 ]; then
  echo "SKIP: needs root (containerd, crun, mounts)"
  exit 77
fi
for tool in containerd ctr crun; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool is not installed"; exit 77; }
done
for f in "$BIN_DIR/containerd-shim-runhcs-v1" "$BIN_DIR/gcs"; do
  [ -x "$f" ] || { echo "missing $f (run make)"; exit 1; }
done

# shellcheck source=../lib/containerd.sh
source "$REPO_ROOT/test/lib/containerd.sh"
# shellcheck source=../lib/busybox-image.sh
source "$REPO_ROOT/test/lib/busybox-image.sh"

export CONTAINERD_EXTRA_PATH=$BIN_DIR
# Containers exit right away in most tests; keep containerd's waits short.
export CONTAINERD_EXTRA_TOML=${CONTAINERD_EXTRA_TOML:-}

e2e_setup() {
  # Sanitizer reports of the shim and the agent go to files: the shim's stderr
  # (containerd's log FIFO) is no longer read once containerd disconnected.
  E2E_SAN_DIR=$(mktemp -d /tmp/shim_e2e_san.XXXXXX)
  on_exit rm -rf "$E2E_SAN_DIR"
  export ASAN_OPTIONS="log_path=$E2E_SAN_DIR/asan${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
  export UBSAN_OPTIONS="log_path=$E2E_SAN_DIR/ubsan:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
  containerd_start
  busybox_image_import "$E2E_NS" >/dev/null
}

# ctr in our namespace.
c() {
  containerd_ctr -n "$E2E_NS" "$@"
}

# E2E_ISOLATION=hypervisor runs the same tests in utility VMs (shim_uvm_e2e_list.sh).
# The sanitizer build (build/san/bin) has no LinuxBootFiles next to it: use the plain one's.
E2E_RUN_ARGS=()
if [ "${E2E_ISOLATION:-process}" = hypervisor ] && [ ! -r "$BIN_DIR/../LinuxBootFiles/kernel" ]; then
  E2E_RUN_ARGS=(--annotation "io.microsoft.virtualmachine.bootfilesrootpath=$REPO_ROOT/build/LinuxBootFiles")
fi

# run_rm NAME CMD...: ctr run --rm through our shim (process isolation).
run_rm() {
  local name=$1
  shift
  c run --rm --runtime "$SHIM_RUNTIME" --annotation io.runhcs.isolation=${E2E_ISOLATION:-process} \
    "${E2E_RUN_ARGS[@]}" "$BUSYBOX_IMAGE" "$name" "$@"
}

# run_d NAME CMD...: detached task.
run_d() {
  local name=$1
  shift
  c run -d --runtime "$SHIM_RUNTIME" --annotation io.runhcs.isolation=${E2E_ISOLATION:-process} \
    "${E2E_RUN_ARGS[@]}" "$BUSYBOX_IMAGE" "$name" "$@" </dev/null
}

# task_status NAME: the STATUS column of `ctr task ls`.
task_status() {
  c task ls 2>/dev/null | awk -v id="$1" '$1 == id { print $3 }'
}

task_pid() {
  c task ls 2>/dev/null | awk -v id="$1" '$1 == id { print $2 }'
}

status_is() {
  [ "$(task_status "$1")" = "$2" ]
}

# remove_container NAME: kill, delete the task and the container.
remove_container() {
  c task kill -s SIGKILL "$1" >/dev/null 2>&1 || true
  wait_until 30 status_is "$1" STOPPED || true
  c task delete "$1" >/dev/null 2>&1 || true
  c container rm "$1" >/dev/null 2>&1 || true
}

shim_socket_of() {
  echo "/run/containerd/s/$(printf '%s' "$CONTAINERD_SOCK/$E2E_NS/$1" | sha256sum | cut -d' ' -f1)"
}

shim_pids() {
  local f pid
  for f in /proc/[0-9]*/cmdline; do
    pid=${f#/proc/}
    pid=${pid%/cmdline}
    { tr '\0' '\n' <"$f"; } 2>/dev/null | grep -q 'containerd-shim-runhcs-v1' || continue
    { tr '\0' '\n' <"$f"; } 2>/dev/null | grep -qxF "$CONTAINERD_SOCK" && echo "$pid"
  done
  return 0
}

no_shims_left() {
  [ -z "$(shim_pids)" ]
}

# assert_nothing_left NAME: no shim process, no socket, no rootfs mount, no bundle.
assert_nothing_left() {
  local name=$1
  wait_until 30 no_shims_left || fail "shim processes left behind: $(shim_pids)"
  local sock
  sock=$(shim_socket_of "$name")
  if [ -e "$sock" ]; then
    ls -la --time-style=full-iso "$sock" >&2
    grep -l "$(basename "$sock")" /proc/[0-9]*/cmdline 2>/dev/null >&2 || true
    e2e_dump_sanitizer
    fail "shim socket left behind for $name"
  fi
  if grep -qF "$CONTAINERD_STATE/io.containerd.runtime.v2.task/$E2E_NS/$name/" /proc/self/mountinfo; then
    fail "rootfs of $name is still mounted"
  fi
  [ ! -d "$CONTAINERD_STATE/io.containerd.runtime.v2.task/$E2E_NS/$name" ] ||
    fail "bundle of $name left behind"
}

e2e_dump_sanitizer() {
  if [ -n "$(ls -A "$E2E_SAN_DIR" 2>/dev/null)" ]; then
    head -n 80 "$E2E_SAN_DIR"/* >&2
  fi
}

# Call last: sanitizer reports from the shim or the agent end up in
# containerd's log (the shim's stderr is the log FIFO); so do crashes.
e2e_finish() {
  if [ -n "$(ls -A "$E2E_SAN_DIR" 2>/dev/null)" ]; then
    head -n 80 "$E2E_SAN_DIR"/* >&2
    fail "sanitizer reports from the shim or the agent"
  fi
  if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$CONTAINERD_LOG"; then
    grep -E -A30 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$CONTAINERD_LOG" | head -80 >&2
    fail "sanitizer report in the containerd log"
  fi
  log "PASS $(basename "$0")"
}

# expect_eq WHAT EXPECTED ACTUAL
expect_eq() {
  [ "$2" = "$3" ] || fail "$1: expected [$2], got [$3]"
  log "ok: $1"
}
