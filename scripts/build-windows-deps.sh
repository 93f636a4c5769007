#!/usr/bin/env bash
# Cross-builds the Windows (x86_64-w64-mingw32) dependencies from Debian's own
# source packages: libuv1, jansson, protobuf-c (runtime library only) and
# cmocka, as static libraries installed into build/windows/sysroot.
#
# Idempotent and cached: Debian packages are installed only when missing,
# sources are fetched once into build/windows/src, and a package is rebuilt
# only when its stamp in the sysroot is missing.
#
# The Windows-only Debian packages (mingw-w64, wine, cmake, ...) are installed
# here rather than by scripts/deps.sh, so `make test` on Linux needs no wine.
set -euo pipefail
cd "$(dirname "$0")/.."

WIN=${WIN_BUILD:-build/windows}
SRC="$WIN/src"
SYSROOT="$WIN/sysroot"
HOST=x86_64-w64-mingw32
JOBS=$(nproc 2>/dev/null || echo 2)

WIN_PACKAGES=(
  gcc-mingw-w64-x86-64 binutils-mingw-w64-x86-64 mingw-w64-x86-64-dev
  cmake make pkg-config autoconf automake libtool file
  dpkg-dev # apt-get source
  wine64   # runs the unit tests (make test-windows)
  protobuf-c-compiler # generated sources shared with the Linux build
)
SOURCES=(libuv1 jansson protobuf-c cmocka)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive

log() { echo "windows-deps: $*"; }

install_packages() {
  local missing=() pkg
  for pkg in "${WIN_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$pkg")
    fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  $SUDO apt-get update -qq
  $SUDO apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends "${missing[@]}"
}

# Adds a deb-src entry (bookworm main, the mirror of the existing deb entry)
# unless some source already offers deb-src. Returns 0 when one was added.
ensure_deb_src() {
  if grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    return 1
  fi
  local mirror
  mirror=$(sed -n 's/^URIs:[[:space:]]*\(http[^[:space:]]*\/debian\)\/*$/\1/p' \
    /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)
  if [ -z "$mirror" ]; then
    mirror=$(sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\(http[^[:space:]]*\/debian\)\/\?[[:space:]]\+bookworm[[:space:]].*/\2/p' \
      /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -n1)
  fi
  mirror=${mirror:-http://deb.debian.org/debian}
  log "adding deb-src entry for $mirror bookworm main"
  $SUDO tee /etc/apt/sources.list.d/debian-src.sources >/dev/null <<EOF
Types: deb-src
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  return 0
}

# Unpacked source tree of Debian source package $1 (fetched once).
source_dir() {
  find "$SRC/$1" -mindepth 1 -maxdepth 1 -type d -name '*-*' 2>/dev/null | sort | head -n1
}

fetch_sources() {
  local need=() pkg
  for pkg in "${SOURCES[@]}"; do
    [ -f "$SYSROOT/.stamp-$pkg" ] && continue
    [ -n "$(source_dir "$pkg")" ] || need+=("$pkg")
  done
  [ ${#need[@]} -eq 0 ] && return 0
  if ensure_deb_src || ! apt-get source --print-uris "${need[0]}" >/dev/null 2>&1; then
    $SUDO apt-get update -qq
  fi
  for pkg in "${need[@]}"; do
    log "apt-get source $pkg"
    rm -rf "${SRC:?}/$pkg"
    mkdir -p "$SRC/$pkg"
    # Debian patches applied by dpkg-source; no build dependencies needed.
    (cd "$SRC/$pkg" && apt-get source -qq -o APT::Sandbox::User=root "$pkg" >/dev/null)
  done
}

write_toolchain() {
  mkdir -p "$WIN"
  cat >"$WIN/toolchain.cmake" <<EOF
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)
set(CMAKE_C_COMPILER $HOST-gcc)
set(CMAKE_RC_COMPILER $HOST-windres)
set(CMAKE_AR $(command -v $HOST-ar))
set(CMAKE_RANLIB $(command -v $HOST-ranlib))
set(CMAKE_FIND_ROOT_PATH /usr/$HOST $(realpath -m "$SYSROOT"))
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
EOF
}

cmake_build() { # <pkg> <cmake options...>
  local pkg=$1 dir bdir
  shift
  dir=$(source_dir "$pkg")
  bdir="$WIN/depbuild/$pkg"
  rm -rf "$bdir"
  cmake -S "$dir" -B "$bdir" -DCMAKE_TOOLCHAIN_FILE="$(realpath "$WIN/toolchain.cmake")" \
    -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$(realpath -m "$SYSROOT")" \
    -DCMAKE_INSTALL_LIBDIR=lib "$@" >"$WIN/depbuild/$pkg.log" 2>&1
  cmake --build "$bdir" -j"$JOBS" >>"$WIN/depbuild/$pkg.log" 2>&1
  cmake --install "$bdir" >>"$WIN/depbuild/$pkg.log" 2>&1
}

build_libuv1() {
  cmake_build libuv1 -DLIBUV_BUILD_TESTS=OFF -DLIBUV_BUILD_BENCH=OFF
  # Only the static archive is wanted: drop the DLL and its import library
  # so nothing links against them by accident.
  rm -f "$SYSROOT"/lib/libuv.dll.a "$SYSROOT"/bin/libuv.dll
}

# C99 printf/strtod from mingw (as the project itself is built), not MSVCRT's.
build_jansson() {
  cmake_build jansson -DJANSSON_BUILD_SHARED_LIBS=OFF -DJANSSON_BUILD_DOCS=OFF \
    -DJANSSON_EXAMPLES=OFF -DJANSSON_WITHOUT_TESTS=ON -DCMAKE_C_FLAGS=-D__USE_MINGW_ANSI_STDIO=1
}

build_cmocka() {
  cmake_build cmocka -DBUILD_SHARED_LIBS=OFF -DWITH_STATIC_LIB=ON -DWITH_EXAMPLES=OFF \
    -DUNIT_TESTING=OFF -DPICKY_DEVELOPER=OFF
  rm -f "$SYSROOT"/lib/libcmocka.dll.a "$SYSROOT"/bin/cmocka.dll
}

# Autotools, runtime library only (no protoc-c plugin, so no C++ protobuf).
build_protobuf-c() {
  local dir bdir prefix
  dir=$(realpath "$(source_dir protobuf-c)")
  bdir="$WIN/depbuild/protobuf-c"
  prefix=$(realpath -m "$SYSROOT")
  rm -rf "$bdir"
  mkdir -p "$bdir"
  if [ ! -x "$dir/configure" ]; then
    (cd "$dir" && autoreconf -fi) >"$WIN/depbuild/protobuf-c.log" 2>&1
  fi
  (cd "$bdir" && "$dir/configure" --host=$HOST --prefix="$prefix" --disable-shared \
    --enable-static --disable-protoc) >>"$WIN/depbuild/protobuf-c.log" 2>&1
  make -C "$bdir" -j"$JOBS" >>"$WIN/depbuild/protobuf-c.log" 2>&1
  make -C "$bdir" install >>"$WIN/depbuild/protobuf-c.log" 2>&1
}

main() {
  install_packages
  local pkg todo=()
  for pkg in "${SOURCES[@]}"; do
    [ -f "$SYSROOT/.stamp-$pkg" ] || todo+=("$pkg")
  done
  if [ ${#todo[@]} -eq 0 ]; then
    log "sysroot up to date ($SYSROOT)"
    return 0
  fi
  mkdir -p "$SRC" "$SYSROOT" "$WIN/depbuild"
  fetch_sources
  write_toolchain
  for pkg in "${todo[@]}"; do
    log "building $pkg for $HOST (log: $WIN/depbuild/$pkg.log)"
    if ! "build_$pkg"; then
      log "building $pkg failed; last lines of $WIN/depbuild/$pkg.log:"
      tail -n 30 "$WIN/depbuild/$pkg.log" >&2
      exit 1
    fi
    touch "$SYSROOT/.stamp-$pkg"
  done
  log "sysroot ready ($SYSROOT)"
}

main "$@"
