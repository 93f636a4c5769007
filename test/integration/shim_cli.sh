#!/usr/bin/env bash
# The shim binary's command line as containerd 1.6 drives it (shim-contract.md
# §3.2-§3.8): `start` from the bundle directory with a log FIFO, options on
# stdin and stdout captured through a pipe; pod grouping; `delete`; Shutdown.
set -euo pipefail

REPO_ROOT=${REPO_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BIN_DIR=${BIN_DIR:-$REPO_ROOT/build/bin}
TEST_BIN_DIR=${TEST_BIN_DIR:-$REPO_ROOT/build/test}
SHIM=$BIN_DIR/containerd-shim-runhcs-v1
PROBE=$TEST_BIN_DIR/shim-probe

if [ "$(id -u)" -ne 0 ]; then
  echo "SKIP: needs root (the socket directory /run/containerd/s is fixed)"
  exit 77
fi
for f in "$SHIM" "$PROBE"; do
  [ -x "$f" ] || { echo "missing $f (run make test-build)"; exit 1; }
done

WORK=$(mktemp -d /tmp/shim_cli.XXXXXX)
NS=shimcli
ADDRESS=$WORK/containerd.sock # only hashed into socket names: unique per run
LOG_READERS=()

cleanup() {
  set +e
  for pidfile in "$WORK"/*/shim.pid; do
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    kill -9 "$pid" 2>/dev/null
  done
  for r in "${LOG_READERS[@]}"; do kill "$r" 2>/dev/null; done
  for a in "$WORK"/*/address; do
    [ -f "$a" ] || continue
    rm -f "$(sed 's|^unix://||' "$a")"
  done
  for b in "$WORK"/*/; do umount -l "$b/rootfs" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  for b in "$WORK"/*/; do
    [ -f "$b/log.txt" ] && { echo "--- ${b}log.txt" >&2; cat "$b/log.txt" >&2; }
  done
  exit 1
}

# wait_until SECONDS CMD...: polls CMD every 0.1 s.
wait_until() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.1
  done
}

# make_bundle NAME ANNOTATIONS_JSON: config.json plus a log FIFO held open
# O_RDWR and drained, as containerd does before running start.
make_bundle() {
  local b=$WORK/$1
  mkdir -p "$b/rootfs"
  printf '{"ociVersion":"1.0.2","process":{"args":["sh"],"cwd":"/"},"root":{"path":"rootfs"},"linux":{},"annotations":%s}\n' "$2" >"$b/config.json"
  mkfifo -m 0700 "$b/log"
  cat <>"$b/log" >"$b/log.txt" &
  LOG_READERS+=($!)
}

expected_address() {
  printf 'unix:///run/containerd/s/%s' "$(printf '%s' "$ADDRESS/$NS/$1" | sha256sum | cut -d' ' -f1)"
}

# run_start NAME ID STDIN_FILE [DEBUG_FLAG]: start as containerd does; sets START_OUT,
# START_ERR, START_RC. stdout goes through a FIFO whose EOF must come promptly:
# a daemon that inherited it would keep it open.
run_start() {
  local b=$WORK/$1 id=$2 in=$3 debug=${4--debug}
  local pipe=$WORK/start-stdout.$$
  rm -f "$pipe"
  mkfifo "$pipe"
  (cd "$b" && exec "$SHIM" -namespace "$NS" -address "$ADDRESS" \
    -publish-binary /usr/bin/containerd -id "$id" $debug start <"$in" >"$pipe" 2>"$b/start.err") &
  local spid=$!
  if ! timeout 20 cat "$pipe" >"$b/start.out"; then
    fail "start for $id: stdout did not reach EOF within 20 s (inherited pipe?)"
  fi
  set +e
  wait "$spid"
  START_RC=$?
  set -e
  rm -f "$pipe"
  START_OUT=$(cat "$b/start.out")
  START_ERR=$(cat "$b/start.err")
}

listening() { "$PROBE" call "$1" Connect probe >/dev/null 2>&1; }
alive() { kill -0 "$1" 2>/dev/null; }
# Exited: gone, or a zombie waiting for PID 1 to reap it.
dead() { ! kill -0 "$1" 2>/dev/null || [ "$(ps -o stat= -p "$1" | cut -c1)" = Z ]; }

printf '' >"$WORK/empty"
"$PROBE" runtimeoptions /etc/containerd/runtime.toml >"$WORK/runtimeoptions.bin"
"$PROBE" runhcs-options debug >"$WORK/runhcs.bin"

# ---- 1. start a pod sandbox shim ---------------------------------------------------------
make_bundle pod1 '{"io.kubernetes.cri.container-type":"sandbox","io.kubernetes.cri.sandbox-id":"pod1"}'
run_start pod1 pod1 "$WORK/runtimeoptions.bin"
[ "$START_RC" -eq 0 ] || fail "start pod1 exited $START_RC: $START_ERR"
[ -z "$START_ERR" ] || fail "start pod1 wrote to stderr: $START_ERR"
ADDR_POD=$(expected_address pod1)
[ "$START_OUT" = "$ADDR_POD" ] || fail "start printed '$START_OUT', want '$ADDR_POD'"
[ "$(wc -c <"$WORK/pod1/start.out")" -eq 89 ] || fail "start output is not exactly the address"
[[ "$START_OUT" =~ ^unix:///run/containerd/s/[0-9a-f]{64}$ ]] || fail "bad address format"
[ "$(cat "$WORK/pod1/address")" = "$ADDR_POD" ] || fail "bundle address file differs"
[ "$(wc -c <"$WORK/pod1/address")" -eq 89 ] || fail "address file has extra bytes"
POD_PID=$(cat "$WORK/pod1/shim.pid")
alive "$POD_PID" || fail "daemon $POD_PID not running after start"
SOCK=${ADDR_POD#unix://}
[ -S "$SOCK" ] || fail "socket $SOCK missing"
[ "$(stat -c %a "$SOCK")" = 600 ] || fail "socket mode $(stat -c %a "$SOCK")"

# The daemon: own session, cwd = bundle, stdio not containerd's pipes.
[ "$(ps -o sid= -p "$POD_PID" | tr -d ' ')" = "$POD_PID" ] || fail "daemon is not a session leader"
[ "$(readlink "/proc/$POD_PID/cwd")" = "$WORK/pod1" ] || fail "daemon cwd is not the bundle"
for fd in /proc/"$POD_PID"/fd/*; do
  target=$(readlink "$fd" || true)
  case "$target" in
    *start-stdout* | *start.err* | *start.out*) fail "daemon holds $target" ;;
  esac
done
[ "$(readlink "/proc/$POD_PID/fd/0")" = /dev/null ] || fail "daemon stdin is not /dev/null"
[ "$(readlink "/proc/$POD_PID/fd/1")" = /dev/null ] || fail "daemon stdout is not /dev/null"
[ "$(readlink "/proc/$POD_PID/fd/2")" = "$WORK/pod1/log" ] || fail "daemon stderr is not the log FIFO"
ls -l /proc/"$POD_PID"/fd | grep -q 'memfd:shim-options' && fail "daemon kept the options memfd open"

# It answers on the socket.
out=$("$PROBE" call "$ADDR_POD" Connect pod1) || fail "Connect failed: $out"
grep -q "^code=0 " <<<"$out" || fail "Connect: $out"
grep -Eq "shim_pid=$POD_PID task_pid=[0-9]+ version=2" <<<"$out" || fail "Connect payload: $out"
# No task was created: the skeleton answers Unimplemented, a task service NotFound.
out=$("$PROBE" call "$ADDR_POD" State pod1) || fail "State call failed: $out"
grep -Eq '^code=(12 message="not implemented yet"|5 )' <<<"$out" || fail "State: $out"
wait_until 10 grep -q 'msg="shim serving" .*id=pod1' "$WORK/pod1/log.txt" || fail "no serving line in the log"
grep -q 'ignoring runtime options of an unknown type' "$WORK/pod1/log.txt" || fail "unknown options not logged"

# ---- 2. a pod member gets the same shim ------------------------------------------------------
make_bundle c1 '{"io.kubernetes.cri.container-type":"container","io.kubernetes.cri.sandbox-id":"pod1"}'
run_start c1 c1 "$WORK/empty"
[ "$START_RC" -eq 0 ] || fail "start c1 exited $START_RC: $START_ERR"
[ "$START_OUT" = "$ADDR_POD" ] || fail "member got '$START_OUT', want the pod's '$ADDR_POD'"
[ "$(cat "$WORK/c1/address")" = "$ADDR_POD" ] || fail "member address file differs"
[ "$(cat "$WORK/c1/shim.pid")" = "$POD_PID" ] || fail "member shim.pid is not the pod shim's pid"
[ "$(pgrep -f -- "-socket $ADDR_POD" | wc -l)" -eq 1 ] || fail "more than one daemon for the pod"

# CRI-less grouping by sandbox id alone works too.
make_bundle c2 '{"io.kubernetes.cri.sandbox-id":"pod1"}'
run_start c2 c2 "$WORK/runhcs.bin"
[ "$START_OUT" = "$ADDR_POD" ] || fail "sandbox-id grouping: got '$START_OUT'"

# ---- 3. delete: parseable, idempotent, harmless to the running pod shim --------------------------
for b in c1 c1 pod1; do
  (cd "$WORK/$b" && "$SHIM" -namespace "$NS" -address "$ADDRESS" -publish-binary /usr/bin/containerd \
    -id "$b" -bundle "$WORK/$b" delete </dev/null >"$WORK/$b/delete.out" 2>"$WORK/$b/delete.err") ||
    fail "delete $b exited non-zero: $(cat "$WORK/$b/delete.err")"
  dec=$("$PROBE" decode-delete <"$WORK/$b/delete.out") || fail "delete $b output does not parse"
  [[ "$dec" =~ ^pid=0\ exit_status=255\ exited_at=([0-9]+)$ ]] || fail "delete $b decoded to '$dec'"
  now=$(date +%s)
  [ $((now - BASH_REMATCH[1])) -lt 60 ] || fail "exited_at is not now: $dec"
done
alive "$POD_PID" || fail "delete killed the shared shim"
[ -S "$SOCK" ] || fail "delete removed a live shim's socket"
listening "$ADDR_POD" || fail "shim no longer answers after delete"

# ---- 4. start failures are clear and leave nothing behind -------------------------------------
make_bundle broken '{}'
echo '{"process": ' >"$WORK/broken/config.json"
run_start broken broken "$WORK/empty"
[ "$START_RC" -eq 1 ] || fail "broken config.json: exit $START_RC"
[ -z "$START_OUT" ] || fail "broken config.json printed '$START_OUT'"
grep -q "config.json: invalid JSON" <<<"$START_ERR" || fail "unclear error: $START_ERR"
[ ! -e "$(expected_address broken | sed 's|^unix://||')" ] || fail "socket left behind"

make_bundle orphan '{"io.kubernetes.cri.container-type":"container","io.kubernetes.cri.sandbox-id":"nopod"}'
run_start orphan orphan "$WORK/empty"
[ "$START_RC" -eq 1 ] || fail "member of a missing pod: exit $START_RC"
grep -q "not running" <<<"$START_ERR" || fail "unclear error: $START_ERR"

printf '\x0a\x40oops' >"$WORK/garbage.bin"
make_bundle garbage '{}'
run_start garbage garbage "$WORK/garbage.bin"
[ "$START_RC" -eq 1 ] || fail "garbage options: exit $START_RC"
grep -q "google.protobuf.Any" <<<"$START_ERR" || fail "unclear error: $START_ERR"

set +e
"$SHIM" -bogus x start </dev/null >"$WORK/bogus.out" 2>"$WORK/bogus.err"
rc=$?
set -e
[ "$rc" -eq 1 ] || fail "unknown flag: exit $rc"
grep -q "flag provided but not defined: -bogus" "$WORK/bogus.err" || fail "unknown flag message: $(cat "$WORK/bogus.err")"

# ---- 5. a stale socket from a killed shim is replaced ---------------------------------------------
make_bundle solo '{}'
run_start solo solo "$WORK/runtimeoptions.bin" ""
[ "$START_RC" -eq 0 ] || fail "start solo: $START_ERR"
listening "$START_OUT" || fail "solo daemon does not answer"
grep -q 'level=debug' "$WORK/solo/log.txt" && fail "debug lines without -debug or options"
ADDR_SOLO=$START_OUT
[ "$ADDR_SOLO" = "$(expected_address solo)" ] || fail "solo address"
SOLO_PID=$(cat "$WORK/solo/shim.pid")
kill -9 "$SOLO_PID"
wait_until 10 dead "$SOLO_PID" || fail "could not kill solo"
[ -S "${ADDR_SOLO#unix://}" ] || fail "expected a stale socket file"
# (runhcs Options.log_level=debug, no -debug flag)
run_start solo solo "$WORK/runhcs.bin" ""
[ "$START_RC" -eq 0 ] || fail "restart over a stale socket: $START_ERR"
[ "$START_OUT" = "$ADDR_SOLO" ] || fail "restart address changed"
SOLO_PID2=$(cat "$WORK/solo/shim.pid")
[ "$SOLO_PID2" != "$SOLO_PID" ] && alive "$SOLO_PID2" || fail "no new daemon over the stale socket"
listening "$ADDR_SOLO" || fail "new solo daemon does not answer"
wait_until 10 grep -q 'level=debug msg="runtime options" log_level=debug type_url=containerd.runhcs.v1.Options' \
  "$WORK/solo/log.txt" || fail "Options.log_level=debug not applied"

# ---- 6. Shutdown: only the shim's own id stops it; socket removed -----------------------------------
out=$("$PROBE" call "$ADDR_POD" Shutdown c1) || fail "Shutdown c1: $out"
grep -q "^code=0 " <<<"$out" || fail "Shutdown c1: $out"
sleep 0.3
alive "$POD_PID" || fail "a member's Shutdown stopped the pod shim"
out=$("$PROBE" call "$ADDR_POD" Shutdown pod1) || fail "Shutdown pod1: $out"
grep -q "^code=0 " <<<"$out" || fail "Shutdown pod1: $out"
wait_until 15 dead "$POD_PID" || fail "pod shim still running after Shutdown"
[ ! -e "$SOCK" ] || fail "socket $SOCK not removed"
grep -q 'msg="shim exiting" .*id=pod1' "$WORK/pod1/log.txt" || fail "no exit line in the log"

out=$("$PROBE" call "$ADDR_SOLO" Shutdown solo) || fail "Shutdown solo: $out"
wait_until 15 dead "$SOLO_PID2" || fail "solo shim still running after Shutdown"
[ ! -e "${ADDR_SOLO#unix://}" ] || fail "solo socket not removed"

# delete after the shim is gone: still fine.
(cd "$WORK/pod1" && "$SHIM" -namespace "$NS" -address "$ADDRESS" -id pod1 -bundle "$WORK/pod1" delete \
  </dev/null | "$PROBE" decode-delete >/dev/null) || fail "delete after shutdown"

# Sanitizer builds: the daemons must have exited clean.
if grep -l "Sanitizer" "$WORK"/*/log.txt 2>/dev/null; then
  fail "sanitizer report in a daemon log"
fi
echo "shim_cli: all checks passed"
