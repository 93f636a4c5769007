#!/usr/bin/env bash
# Private containerd 1.6 instance for integration tests. Source this file.
#
#   on_exit CMD...        run CMD at script exit (last registered runs first);
#                         this library owns the EXIT trap, do not set your own
#   containerd_start      start a private containerd (root, state, sockets all
#                         under one temp dir) and wait until `ctr version` answers
#   containerd_stop       stop it (SIGTERM, then SIGKILL); state is kept
#   containerd_restart    stop + start with the same config, paths and state
#   containerd_ctr ARGS   ctr against the private instance (bounded by $CTR_TIMEOUT, 60s)
#   wait_until SECS CMD   poll CMD until it succeeds (returns 1 after SECS seconds)
#   containerd_cleanup    kill tasks and shims of this instance, stop it, unmount
#                         and remove its directory (registered with on_exit); if the
#                         script fails, the daemon log is copied to
#                         $REPO_ROOT/$BUILD/test-logs/containerd-<script>.log
#   fail MSG / log MSG    report helpers (fail prints the containerd log tail, exits 1)
#
# Exports after containerd_start: CONTAINERD_DIR, CONTAINERD_CONFIG, CONTAINERD_ROOT,
# CONTAINERD_STATE, CONTAINERD_SOCK, CONTAINERD_TTRPC (= <sock>.ttrpc), CTR_ADDRESS and
# CONTAINERD_ADDRESS (= the grpc socket, so plain `ctr` works too), CONTAINERD_LOG,
# CONTAINERD_PID, CONTAINERD_SNAPSHOTTER (overlayfs when it works, else native; ctr
# reads it for run/import).
#
# Knobs, read by containerd_start: CONTAINERD_EXTRA_PATH (prepended to the daemon's
# PATH, where it looks up shim binaries), CONTAINERD_EXTRA_TOML (appended to the
# config, e.g. "[timeouts]" tables), CONTAINERD_LOG_LEVEL (default debug, which also
# makes containerd start shims with -debug), CONTAINERD_START_TIMEOUT (seconds, 60),
# CONTAINERD_TMP (parent of the temp dir, default /tmp), KEEP_TEST_DIR=1 (keep the
# temp dir for debugging).
#
# Shim sockets still go to /run/containerd/s (hard-coded by containerd); a system
# containerd can keep running alongside since every other path is private.

_harness_exit_cmds=()

on_exit() {
  _harness_exit_cmds+=("$*")
}

_harness_exit_rc=0
_harness_run_exit() {
  local rc=$? i
  _harness_exit_rc=$rc
  set +e
  for ((i = ${#_harness_exit_cmds[@]} - 1; i >= 0; i--)); do
    eval "${_harness_exit_cmds[i]}"
  done
  exit "$rc"
}
trap _harness_run_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log() {
  echo "[$(date +%H:%M:%S)] $*" >&2
}

fail() {
  echo "FAIL: $*" >&2
  local problems
  if [ -n "${CONTAINERD_LOG:-}" ] && [ -s "$CONTAINERD_LOG" ]; then
    problems=$(grep -E 'level=(warning|error|fatal)' "$CONTAINERD_LOG" | tail -n 20)
    if [ -n "$problems" ]; then
      echo "---- containerd warnings and errors (full log: $CONTAINERD_LOG) ----" >&2
      printf '%s\n----\n' "$problems" >&2
    fi
  fi
  exit 1
}

# wait_until SECONDS CMD...: polls CMD every 0.1s until it succeeds; 1 on timeout.
wait_until() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

containerd_ctr() {
  timeout --kill-after=5 "${CTR_TIMEOUT:-60}" ctr --address "$CONTAINERD_SOCK" "$@"
}

_containerd_write_config() {
  cat >"$CONTAINERD_CONFIG" <<EOF
version = 2
root = "$CONTAINERD_ROOT"
state = "$CONTAINERD_STATE"
# Nothing that needs a network, CNI, or a kernel feature we do not test.
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "$CONTAINERD_SOCK"

[ttrpc]
  address = "$CONTAINERD_TTRPC"

[debug]
  level = "${CONTAINERD_LOG_LEVEL:-debug}"

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "$CONTAINERD_DIR/opt"
${CONTAINERD_EXTRA_TOML:-}
EOF
}

# Creates the instance directory and config on the first start only, so a
# restart reuses root, state and sockets.
_containerd_prepare() {
  if [ -n "${CONTAINERD_DIR:-}" ] && [ -f "${CONTAINERD_CONFIG:-}" ]; then
    return 0
  fi
  CONTAINERD_DIR=$(mktemp -d "${CONTAINERD_TMP:-/tmp}/ctrd-test.XXXXXX") || fail "mktemp failed"
  export CONTAINERD_DIR
  export CONTAINERD_CONFIG="$CONTAINERD_DIR/config.toml"
  export CONTAINERD_ROOT="$CONTAINERD_DIR/root"
  export CONTAINERD_STATE="$CONTAINERD_DIR/state"
  export CONTAINERD_SOCK="$CONTAINERD_DIR/containerd.sock"
  export CONTAINERD_TTRPC="$CONTAINERD_SOCK.ttrpc"
  export CONTAINERD_LOG="$CONTAINERD_DIR/containerd.log"
  export CTR_ADDRESS="$CONTAINERD_SOCK"
  export CONTAINERD_ADDRESS="$CONTAINERD_SOCK"
  mkdir -p "$CONTAINERD_ROOT" "$CONTAINERD_STATE" "$CONTAINERD_DIR/opt"
  _containerd_write_config
  on_exit containerd_cleanup
}

_containerd_pick_snapshotter() {
  if [ -n "${CONTAINERD_SNAPSHOTTER:-}" ]; then
    return 0
  fi
  if containerd_ctr plugins ls 2>/dev/null | awk '$1 == "io.containerd.snapshotter.v1" && $2 == "overlayfs" && $NF == "ok" { found = 1 } END { exit !found }'; then
    export CONTAINERD_SNAPSHOTTER=overlayfs
  else
    export CONTAINERD_SNAPSHOTTER=native
  fi
}

containerd_start() {
  command -v containerd >/dev/null || fail "containerd is not installed"
  _containerd_prepare
  if [ -n "${CONTAINERD_PID:-}" ] && kill -0 "$CONTAINERD_PID" 2>/dev/null; then
    fail "containerd_start: private containerd (pid $CONTAINERD_PID) is already running"
  fi
  # A stale socket from a killed instance would let the readiness check pass too early.
  rm -f "$CONTAINERD_SOCK" "$CONTAINERD_TTRPC"
  echo "==== containerd start $(date -u +%FT%TZ)" >>"$CONTAINERD_LOG"
  PATH="${CONTAINERD_EXTRA_PATH:+$CONTAINERD_EXTRA_PATH:}$PATH" \
    containerd --config "$CONTAINERD_CONFIG" >>"$CONTAINERD_LOG" 2>&1 </dev/null &
  export CONTAINERD_PID=$!
  local deadline=$((SECONDS + ${CONTAINERD_START_TIMEOUT:-60}))
  while :; do
    if ! kill -0 "$CONTAINERD_PID" 2>/dev/null; then
      wait "$CONTAINERD_PID" 2>/dev/null || true
      tail -n 20 "$CONTAINERD_LOG" >&2
      CONTAINERD_PID=
      fail "containerd exited during startup (log: $CONTAINERD_LOG)"
    fi
    if [ -S "$CONTAINERD_SOCK" ] && [ -S "$CONTAINERD_TTRPC" ] &&
      CTR_TIMEOUT=10 containerd_ctr version >/dev/null 2>&1; then
      break
    fi
    if ((SECONDS >= deadline)); then
      fail "containerd did not answer 'ctr version' within ${CONTAINERD_START_TIMEOUT:-60}s"
    fi
    sleep 0.2
  done
  _containerd_pick_snapshotter
  log "containerd $CONTAINERD_PID ready at $CONTAINERD_SOCK (snapshotter $CONTAINERD_SNAPSHOTTER)"
}

containerd_stop() {
  local pid=${CONTAINERD_PID:-}
  [ -n "$pid" ] || return 0
  CONTAINERD_PID=
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null
  local deadline=$((SECONDS + 30))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "containerd $pid ignored SIGTERM for 30s, killing it"
    kill -KILL "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null || true
  return 0
}

containerd_restart() {
  containerd_stop
  containerd_start
}

# Pids of processes (shims, ctr clients) whose command line names our socket.
_containerd_client_pids() {
  local f pid
  for f in /proc/[0-9]*/cmdline; do
    pid=${f#/proc/}
    pid=${pid%/cmdline}
    [ "$pid" != "$$" ] || continue
    # Processes may vanish while we look.
    if { tr '\0' '\n' <"$f"; } 2>/dev/null | grep -qxF -e "$CONTAINERD_SOCK" -e "unix://$CONTAINERD_SOCK"; then
      echo "$pid"
    fi
  done
}

# Kills and deletes every task and container of this instance, bounded in time.
_containerd_remove_tasks() {
  local ns id pid cg
  for ns in $(CTR_TIMEOUT=10 containerd_ctr namespaces ls -q 2>/dev/null); do
    for id in $(CTR_TIMEOUT=10 containerd_ctr -n "$ns" containers ls -q 2>/dev/null); do
      CTR_TIMEOUT=10 containerd_ctr -n "$ns" tasks kill -a -s SIGKILL "$id" >/dev/null 2>&1
      CTR_TIMEOUT=20 containerd_ctr -n "$ns" tasks delete -f "$id" >/dev/null 2>&1
      CTR_TIMEOUT=10 containerd_ctr -n "$ns" containers rm "$id" >/dev/null 2>&1
      # A container whose shim is gone may still have processes in runc's
      # cgroup (/<ns>/<id> on v2, /<controller>/<ns>/<id> on v1).
      for cg in /sys/fs/cgroup/"$ns/$id" /sys/fs/cgroup/*/"$ns/$id"; do
        [ -f "$cg/cgroup.procs" ] || continue
        while read -r pid; do
          kill -KILL "$pid" 2>/dev/null
        done <"$cg/cgroup.procs"
      done
      for cg in /sys/fs/cgroup/"$ns/$id" /sys/fs/cgroup/*/"$ns/$id"; do
        [ -d "$cg" ] && _containerd_rmdir_retry "$cg"
      done
      # A shim killed without cleanup leaves its socket, named as containerd
      # names it: sha256 of "<grpc address>/<namespace>/<id>".
      rm -f "/run/containerd/s/$(printf '%s' "$CONTAINERD_SOCK/$ns/$id" | sha256sum | cut -d' ' -f1)"
    done
    # Empty leftovers only (rmdir fails on anything still in use).
    rmdir /sys/fs/cgroup/"$ns" /sys/fs/cgroup/*/"$ns" "/run/containerd/runc/$ns" 2>/dev/null
  done
  return 0
}

# Killed processes leave their cgroup a moment later.
_containerd_rmdir_retry() {
  local i
  for i in 1 2 3 4 5 6 7 8 9 10; do
    rmdir "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

_containerd_unmount_all() {
  local mnt
  # Deepest first (mountinfo lists parents before children).
  for mnt in $(awk -v dir="$CONTAINERD_DIR/" 'index($5, dir) == 1 { print $5 }' /proc/self/mountinfo | tac); do
    umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null
  done
}

containerd_cleanup() {
  [ -n "${CONTAINERD_DIR:-}" ] && [ -d "$CONTAINERD_DIR" ] || return 0
  if [ -n "${CONTAINERD_PID:-}" ] && kill -0 "$CONTAINERD_PID" 2>/dev/null; then
    _containerd_remove_tasks
  fi
  containerd_stop
  local pid
  for pid in $(_containerd_client_pids); do
    kill -KILL "$pid" 2>/dev/null
  done
  _containerd_unmount_all
  # The temp dir goes away; keep the daemon log of a failed test.
  if [ "$_harness_exit_rc" -ne 0 ] && [ -s "$CONTAINERD_LOG" ]; then
    local keep
    keep="${CONTAINERD_FAIL_LOG_DIR:-${REPO_ROOT:-.}/${BUILD:-build}/test-logs}/containerd-$(basename "$0" .sh).log"
    mkdir -p "$(dirname "$keep")" && cp "$CONTAINERD_LOG" "$keep" && log "containerd log kept: $keep"
  fi
  if [ -n "${KEEP_TEST_DIR:-}" ]; then
    log "keeping $CONTAINERD_DIR (KEEP_TEST_DIR set)"
  else
    rm -rf --one-file-system "$CONTAINERD_DIR"
  fi
  CONTAINERD_DIR=
  return 0
}
