#!/usr/bin/env bash
# Stdio end to end: 64 MiB of stdout byte-exact (no lost tail), a tty through
# `ctr run -t`, the file:// and binary:// log URIs.
set -euo pipefail
source "$(dirname "$0")/shim_e2e_lib.bash"
e2e_setup

work=$(mktemp -d /tmp/shim_e2e_io.XXXXXX)
on_exit rm -rf "$work"

# --- 64 MiB on stdout, compared by sha256 with the same generator on the host
size=$((64 << 20))
gen="yes abcdefghijklmnopqrstuvwxyz0123456789 | head -c $size"
expected=$(sh -c "$gen" | sha256sum | cut -d' ' -f1)
CTR_TIMEOUT=300 run_rm big1 sh -c "$gen" </dev/null >"$work/big.out"
expect_eq "64 MiB stdout size" "$size" "$(stat -c %s "$work/big.out")"
expect_eq "64 MiB stdout sha256" "$expected" "$(sha256sum <"$work/big.out" | cut -d' ' -f1)"

# the tail written right before exit is never lost (repeat: timing dependent)
for i in 1 2 3 4 5; do
  out=$(run_rm "tail$i" sh -c 'head -c 1000000 /dev/zero | tr "\0" x; echo; echo LAST-LINE' </dev/null | tail -n 1)
  expect_eq "last line after 1 MB ($i)" "LAST-LINE" "$out"
done

# --- tty: ctr run -t needs a pty on its own side; script(1) gives it one
if command -v script >/dev/null; then
  script -qec "ctr --address $CONTAINERD_SOCK -n $E2E_NS run -t --rm --runtime $SHIM_RUNTIME \
    --annotation io.runhcs.isolation=process $BUSYBOX_IMAGE tty1 sh -c 'tty; [ -t 0 ] && [ -t 1 ] && echo is-a-tty; exit 4'" \
    "$work/tty.typescript" </dev/null >"$work/tty.out" 2>&1 || rc=$?
  grep -q '/dev/pts/' "$work/tty.out" || fail "tty: no pts device in output: $(cat "$work/tty.out")"
  grep -q 'is-a-tty' "$work/tty.out" || fail "tty: stdin/stdout are not a terminal: $(cat "$work/tty.out")"
  expect_eq "tty exit code" 4 "${rc:-0}"
  # exec with a tty (ResizePty on an exec)
  run_d ttyhost sleep 1000
  wait_until 30 status_is ttyhost RUNNING || fail "ttyhost not running"
  script -qec "ctr --address $CONTAINERD_SOCK -n $E2E_NS task exec -t --exec-id tx ttyhost \
    sh -c 'tty; echo exec-tty-ok'" "$work/tty2.typescript" </dev/null >"$work/tty2.out" 2>&1 ||
    fail "exec -t failed: $(cat "$work/tty2.out")"
  grep -q '/dev/pts/' "$work/tty2.out" || fail "exec -t: no pts: $(cat "$work/tty2.out")"
  grep -q 'exec-tty-ok' "$work/tty2.out" || fail "exec -t: output lost: $(cat "$work/tty2.out")"
  log "ok: exec with a tty"
  remove_container ttyhost
else
  log "script(1) missing: tty check skipped"
fi

# --- file:// log URI (detached task, both streams appended to the file)
run_file="$work/logs/file.log"
c run -d --log-uri "file://$run_file" --runtime "$SHIM_RUNTIME" --annotation io.runhcs.isolation=process \
  "$BUSYBOX_IMAGE" file1 sh -c 'echo file-out; echo file-err >&2' </dev/null
wait_until 30 status_is file1 STOPPED || fail "file1 did not finish: $(c task ls)"
grep -qx file-out "$run_file" || fail "file:// missing stdout: $(cat "$run_file" 2>&1)"
grep -qx file-err "$run_file" || fail "file:// missing stderr: $(cat "$run_file" 2>&1)"
c task delete file1 >/dev/null
c container rm file1
log "ok: file:// log URI"

# --- binary:// log URI: a logger that copies fd 3/4 to files and closes fd 5 when ready
cat >"$work/logger.sh" <<'LOGGER'
#!/bin/sh
dir=$1
echo "$CONTAINER_ID $CONTAINER_NAMESPACE" >"$dir/bin.env"
exec 5>&-
cat <&3 >"$dir/bin.stdout" &
cat <&4 >"$dir/bin.stderr" &
wait
LOGGER
chmod +x "$work/logger.sh"
c run -d --log-uri "binary://$work/logger.sh?$work=" --runtime "$SHIM_RUNTIME" \
  --annotation io.runhcs.isolation=process "$BUSYBOX_IMAGE" bin1 sh -c 'echo bin-out; echo bin-err >&2' </dev/null
wait_until 30 status_is bin1 STOPPED || fail "bin1 did not finish: $(c task ls)"
wait_until 30 grep -qx bin-out "$work/bin.stdout" || fail "binary:// stdout: $(cat "$work/bin.stdout" 2>&1)"
wait_until 30 grep -qx bin-err "$work/bin.stderr" || fail "binary:// stderr: $(cat "$work/bin.stderr" 2>&1)"
expect_eq "binary:// logger env" "bin1 $E2E_NS" "$(cat "$work/bin.env")"
c task delete bin1 >/dev/null
c container rm bin1

# Nobody reads the output of a detached task (ctr run -d exits): SIGKILL still
# ends it; the unread output is dropped once it made no progress for a while.
run_d noreader yes
wait_until 30 status_is noreader RUNNING || fail "noreader not running"
sleep 1
c task kill -s SIGKILL noreader
wait_until 60 status_is noreader STOPPED || fail "a task with an unread stdout cannot be killed: $(c task ls)"
c task delete noreader >/dev/null
c container rm noreader
log "ok: SIGKILL ends a task whose output nobody reads"

assert_nothing_left big1
assert_nothing_left noreader
e2e_finish
