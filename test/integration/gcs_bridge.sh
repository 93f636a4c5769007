#!/usr/bin/env bash
# GCS bridge end to end: the host API (gcs/guest_connection.h, via
# test/tools/gcs-host-e2e.c) against the real guest agent ($BIN_DIR/gcs) running
# busybox containers with crun, the agent killed mid-request, and fake guests
# that send garbage, truncated headers, Size < 16, a 1 GiB claim, bad JSON.
set -uo pipefail
REPO_ROOT="${REPO_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}"
BUILD="${BUILD:-build}"
BIN_DIR="${BIN_DIR:-$REPO_ROOT/$BUILD/bin}"
TEST_BIN_DIR="${TEST_BIN_DIR:-$REPO_ROOT/$BUILD/test}"
tool="$TEST_BIN_DIR/gcs-host-e2e"
agent="$BIN_DIR/gcs"

if [ ! -x "$tool" ]; then
  echo "missing $tool (make test-build)"
  exit 1
fi

failed=0
run() { # name, then the command
  local name=$1
  shift
  echo "--- $name"
  if ! timeout --kill-after=10 600 "$@"; then
    echo "--- $name FAILED"
    failed=1
    return 1
  fi
}

work=$(mktemp -d /tmp/gcs-e2e.XXXXXX)
tag="t$$"
cleanup() {
  # Containers of a killed agent are taken down by the tool; their cgroups
  # (named after the tagged container ids) are left empty: remove them.
  # If the tool itself died, kill what is still in those cgroups first.
  local d pid
  for d in /sys/fs/cgroup/*/e2e-"$tag"-* /sys/fs/cgroup/e2e-"$tag"-*; do
    [ -f "$d/cgroup.procs" ] || continue
    while read -r pid; do kill -KILL "$pid" 2>/dev/null; done <"$d/cgroup.procs"
  done
  for d in /sys/fs/cgroup/*/e2e-"$tag"-* /sys/fs/cgroup/e2e-"$tag"-*; do
    [ -d "$d" ] || continue
    for _ in 1 2 3 4 5 6 7 8 9 10; do rmdir "$d" 2>/dev/null && break; sleep 0.2; done
  done
  rm -rf "$work"
}
trap cleanup EXIT

# Fault cases need no agent.
mkdir -p "$work/fake"
for mode in garbage short-header size-small huge bad-json die noise silent; do
  run "fake guest: $mode" "$tool" fake "$mode" --work "$work/fake"
done

if [ "$(id -u)" -ne 0 ] || ! command -v crun >/dev/null; then
  echo "SKIP real-agent part: needs root and crun"
  [ $failed -eq 0 ] && exit 77
  exit 1
fi
if [ ! -x "$agent" ]; then
  echo "SKIP real-agent part: $agent not built"
  [ $failed -eq 0 ] && exit 77
  exit 1
fi

"$REPO_ROOT/test/lib/busybox-rootfs.sh" "$work/rootfs" >/dev/null

for scenario in agent kill; do
  dir="$work/$scenario"
  mkdir -p "$dir"
  if ! run "real agent: $scenario" "$tool" "$scenario" --agent "$agent" --rootfs "$work/rootfs" \
      --work "$dir" --tag "$tag"; then
    echo "--- agent log (last 60 lines):"
    tail -n 60 "$dir/agent.log" 2>/dev/null
  fi
done

exit $failed
