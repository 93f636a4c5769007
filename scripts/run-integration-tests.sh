#!/usr/bin/env bash
# Runs every test/integration/*.sh. Each script exits 0 (pass), 77 (skip) or
# anything else (fail). BUILD names the build directory whose binaries are used.
set -uo pipefail
cd "$(dirname "$0")/.."
export BUILD="${BUILD:-build}"
export REPO_ROOT="$PWD"
export BIN_DIR="$REPO_ROOT/$BUILD/bin"
export TEST_BIN_DIR="$REPO_ROOT/$BUILD/test"
passed=0
failed=0
skipped=0
failed_names=()
for t in test/integration/*.sh; do
  [ -e "$t" ] || continue
  name=$(basename "$t" .sh)
  echo "=== integration: $name"
  start=$(date +%s)
  timeout --kill-after=10 "${INTEGRATION_TIMEOUT:-900}" bash "$t"
  rc=$?
  dur=$(($(date +%s) - start))
  case $rc in
    0) passed=$((passed + 1)); echo "--- PASS $name (${dur}s)";;
    77) skipped=$((skipped + 1)); echo "--- SKIP $name (${dur}s)";;
    *) failed=$((failed + 1)); failed_names+=("$name"); echo "--- FAIL $name rc=$rc (${dur}s)";;
  esac
done
echo "integration: $passed passed, $failed failed, $skipped skipped"
if [ "$failed" -ne 0 ]; then
  echo "failed: ${failed_names[*]}"
  exit 1
fi
