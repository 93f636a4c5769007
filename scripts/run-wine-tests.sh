#!/usr/bin/env bash
# Runs Windows unit-test executables under wine64, headless, each bounded in
# time; prints "N passed, M failed" at the end. The wine prefix lives in
# $WIN_BUILD/wineprefix (build/windows by default) and is initialized once.
set -uo pipefail
cd "$(dirname "$0")/.."

WIN_BUILD=${WIN_BUILD:-build/windows}
WINE=${WINE:-$(command -v wine64 || echo /usr/lib/wine/wine64)}
WINESERVER=${WINESERVER:-$(command -v wineserver || echo "$(dirname "$WINE")/wineserver")}
TIMEOUT=${WINE_TEST_TIMEOUT:-120}

export WINEPREFIX="$PWD/$WIN_BUILD/wineprefix"
export WINEARCH=win64
export WINEDEBUG=-all
# No Mono/Gecko installers, no display: console programs only.
export WINEDLLOVERRIDES="mscoree,mshtml="
unset DISPLAY WAYLAND_DISPLAY

if [ ! -x "$WINE" ]; then
  echo "run-wine-tests: wine64 not found (run scripts/build-windows-deps.sh)" >&2
  exit 1
fi

if [ ! -f "$WINEPREFIX/system.reg" ]; then
  echo "run-wine-tests: initializing $WINEPREFIX"
  mkdir -p "$WINEPREFIX"
  timeout --kill-after=10 300 "$WINE" wineboot --init >/dev/null 2>&1 || true
  "$WINESERVER" -w 2>/dev/null || true
  if [ ! -f "$WINEPREFIX/system.reg" ]; then
    echo "run-wine-tests: wineboot failed to create $WINEPREFIX" >&2
    exit 1
  fi
fi

passed=0
failed=0
failed_names=()
for t in "$@"; do
  name=$(basename "$t" .exe)
  echo "=== wine: $name"
  # cwd = repo root, so tests find test/golden and friends by relative path.
  timeout --kill-after=10 "$TIMEOUT" "$WINE" "$t"
  rc=$?
  if [ "$rc" -eq 0 ]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    failed_names+=("$name(rc=$rc)")
  fi
done
# The wineserver lingers a few seconds after its last client: wait for it.
"$WINESERVER" -w 2>/dev/null || true
echo "windows unit tests (wine): $passed passed, $failed failed"
if [ "$failed" -ne 0 ]; then
  echo "failed: ${failed_names[*]}"
  exit 1
fi
