#!/usr/bin/env bash
# Runs every cmocka unit-test binary given; prints a total line at the end.
set -uo pipefail
passed=0
failed=0
failed_names=()
for t in "$@"; do
  echo "=== unit: $(basename "$t")"
  if "$t"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    failed_names+=("$(basename "$t")")
  fi
done
echo "unit test binaries: $passed passed, $failed failed"
if [ "$failed" -ne 0 ]; then
  echo "failed: ${failed_names[*]}"
  exit 1
fi
