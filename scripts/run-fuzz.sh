#!/usr/bin/env bash
# Runs each libFuzzer target for FUZZ_SECONDS, seeded from test/fuzz/corpus/<name>.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${FUZZ_SECONDS:-30}"
for f in "$@"; do
  name=$(basename "$f")
  seeds="test/fuzz/corpus/${name#fuzz_}"
  work="build/fuzz/corpus/$name"
  mkdir -p "$work"
  echo "=== fuzz: $name for ${secs}s"
  args=("$work")
  [ -d "$seeds" ] && args+=("$seeds")
  "$f" -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1 "${args[@]}" 2>&1 | tail -n 15
done
echo "fuzz: all targets ran clean"
