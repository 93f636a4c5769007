#!/usr/bin/env bash
# Installs every Debian package the build, tests, fuzzers and benchmarks need.
# Idempotent: does nothing when everything is present.
set -euo pipefail

PACKAGES=(
  # build
  build-essential pkg-config clang clang-format
  libuv1-dev libjansson-dev libprotobuf-c-dev protobuf-c-compiler libprotobuf-dev
  # unit tests, fuzzing (libFuzzer runtime ships with clang's compiler-rt)
  libcmocka-dev libclang-rt-14-dev
  # real peers for integration tests
  containerd runc crun busybox-static
  golang-go golang-github-containerd-ttrpc-dev golang-github-gogo-protobuf-dev
  # test plumbing
  procps psmisc util-linux iproute2 kmod
  # Linux utility VM (scripts/build-uvm.sh; linux-image-amd64 is only downloaded, never installed)
  qemu-system-x86 cpio python3 e2fsprogs
  # benchmarks (make bench: charts)
  gnuplot-nox
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$pkg")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
