#!/usr/bin/env bash
# Builds the Linux utility VM boot files into build/LinuxBootFiles/:
#   kernel      the uncompressed ELF vmlinux (PVH entry: fast direct boot on
#               QEMU microvm/q35, linux-uvm.md §2)
#   bzImage     the compressed kernel as Debian ships it (for other loaders)
#   initrd.img  an uncompressed newc cpio: busybox-static, our /init, the
#               agent build/bin/gcs, crun + its libraries, the kernel modules
#               for virtio/serial/scsi/ext4/overlay/9p/fuse/net.
#
# Everything comes from Debian packages: linux-image-amd64 is fetched with
# `apt-get download` and unpacked into build/cache/uvm (never installed on the
# host); busybox-static and crun are taken from the installed packages.
# Intermediate results are cached in build/cache/uvm keyed by package versions
# so a repeated run only re-packs the cpio when an input changed.
#
# Usage: scripts/build-uvm.sh [OUT_DIR]   (env GCS_BIN: the agent binary)
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${1:-build/LinuxBootFiles}
CACHE=build/cache/uvm
GCS_BIN=${GCS_BIN:-build/bin/gcs}
mkdir -p "$CACHE/debs" "$OUT"

log() { echo "build-uvm: $*" >&2; }
die() { log "error: $*"; exit 1; }

for tool in cpio depmod modprobe python3 dpkg-deb busybox; do
    command -v "$tool" >/dev/null || die "$tool missing (run make deps)"
done
[ -x /bin/busybox ] || die "busybox-static missing (run make deps)"
command -v crun >/dev/null || die "crun missing (run make deps)"

# ---- the kernel package --------------------------------------------------------
resolve_kpkg() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}'; }
kpkg=$(resolve_kpkg)
if [ -z "$kpkg" ] && ! ls "$CACHE"/debs/linux-image-*.deb >/dev/null 2>&1; then
    log "no apt lists for linux-image-amd64: apt-get update"
    apt-get update -qq >/dev/null 2>&1 || true
    kpkg=$(resolve_kpkg)
fi
if [ -z "$kpkg" ]; then
    # No apt lists (offline): reuse whatever kernel the cache already holds.
    kpkg=$(ls "$CACHE"/debs/linux-image-*.deb 2>/dev/null | head -1 | xargs -r basename | cut -d_ -f1)
    [ -n "$kpkg" ] || die "cannot resolve linux-image-amd64 (apt-get update?)"
fi
kver=${kpkg#linux-image-}                          # e.g. 6.1.0-56-amd64
deb=$(ls "$CACHE"/debs/"${kpkg}"_*.deb 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$deb" ]; then
    log "downloading $kpkg"
    (cd "$CACHE/debs" && apt-get download "$kpkg" >/dev/null 2>&1) || die "apt-get download $kpkg failed"
    deb=$(ls "$CACHE"/debs/"${kpkg}"_*.deb | sort -V | tail -1)
fi
kpkgver=$(dpkg-deb -f "$deb" Version)
KDIR="$CACHE/kernel-${kver}_${kpkgver}"
if [ ! -e "$KDIR/.done" ]; then
    log "unpacking $kpkg $kpkgver"
    rm -rf "$KDIR" && mkdir -p "$KDIR"
    dpkg-deb -x "$deb" "$KDIR/pkg"
    depmod -b "$KDIR/pkg" "$kver"
    cp "$KDIR/pkg/boot/vmlinuz-$kver" "$KDIR/bzImage"
    # vmlinux = the xz payload of the bzImage (magic FD 37 7A 58 5A 00).
    python3 - "$KDIR/bzImage" "$KDIR/vmlinux" <<'EOF'
import lzma, sys
data = open(sys.argv[1], 'rb').read()
pos = data.find(b'\xfd7zXZ\x00')
while pos >= 0:
    try:
        out = lzma.LZMADecompressor().decompress(data[pos:])
        if out[:4] == b'\x7fELF':
            open(sys.argv[2], 'wb').write(out)
            sys.exit(0)
    except lzma.LZMAError:
        pass
    pos = data.find(b'\xfd7zXZ\x00', pos + 1)
sys.exit('no xz-compressed ELF payload found')
EOF
    touch "$KDIR/.done"
    # Drop older kernels (a Debian update brings a new one).
    for old in "$CACHE"/kernel-*; do
        [ "$old" = "$KDIR" ] || rm -rf "$old"
    done
    for old in "$CACHE"/debs/*.deb; do
        [ "$old" = "$deb" ] || rm -f "$old"
    done
fi

# ---- module lists (dependency order, as modprobe resolves them) ------------------
# crc32c-intel / crct10dif-pclmul fail with ENODEV on TCG's CPU and cost 80 ms each.
resolve() {
    for m in "$@"; do
        modprobe -d "$KDIR/pkg" -S "$kver" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
    done | sed "s|^.*/lib/modules/$kver/||" | grep -v -e crc32c-intel -e crct10dif-pclmul |
        awk '!seen[$0]++'
}
early=$(resolve virtio_ring virtio)
early_mmio=$(resolve virtio_mmio)
early_pci=$(resolve virtio_pci)
channel=$(resolve virtio_console virtio_rng button evdev)
# late: what the agent needs for the first container (SCSI disks, ext4,
# overlay), loaded in the background at boot. extra: in the image, loaded only
# with the kernel argument uvm.extramodules=1 (the agent uses none of them;
# loading them costs ~0.3 s of guest CPU, taken from the first container).
late=$(resolve virtio_scsi sd_mod crc32c_generic ext4 overlay |
    grep -vxF -f <(printf '%s\n' $early $early_mmio $early_pci $channel))
extra=$(resolve 9p 9pnet_virtio 9pnet_fd fuse virtiofs virtio_net vsock vmw_vsock_virtio_transport |
    grep -vxF -f <(printf '%s\n' $early $early_mmio $early_pci $channel $late))

# ---- inputs and the cache key ----------------------------------------------------
if [ ! -x "$GCS_BIN" ]; then
    log "building the agent ($GCS_BIN)"
    make -s "$GCS_BIN" >&2 || die "building $GCS_BIN failed"
fi
bbver=$(dpkg-query -W -f='${Version}' busybox-static)
crunver=$(dpkg-query -W -f='${Version}' crun)
HELPER="$CACHE/uvm-helper"
if [ ! -x "$HELPER" ] || [ uvm/initramfs/uvm-helper.c -nt "$HELPER" ]; then
    log "compiling uvm-helper (static)"
    cc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -static -o "$HELPER" uvm/initramfs/uvm-helper.c
fi
# Optional agent flags the image's init may use (decided here, not at boot).
features=""
agent_help=$("$GCS_BIN" -h 2>&1 || true)
for f in bridge-device stdio-device; do
    case "$agent_help" in *"-$f"*) features="${features:+$features }$f" ;; esac
done
key=$( { echo "$kver $kpkgver $bbver $crunver $features"; printf '%s\n' $early $early_mmio $early_pci $channel $late - $extra;
    sha256sum "$GCS_BIN" "$HELPER" uvm/initramfs/init scripts/build-uvm.sh; } | sha256sum | cut -c1-16)
CPIO="$CACHE/initrd-$key.cpio"

# ---- the root file system --------------------------------------------------------
copy_with_libs() { # copy_with_libs ROOT BINARY DEST_PATH: binary + its shared libraries
    local root=$1 bin=$2 dest=$3
    install -D -m 0755 "$bin" "$root$dest"
    # A static binary (the gcs agent is linked -static) has none: ldd fails.
    { ldd "$bin" 2>/dev/null || true; } | awk '/=> \//{print $3} /^\t\/[^ ]+ \(/{print $1}' | while read -r lib; do
        [ -e "$root$lib" ] || install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
    done
}

if [ ! -e "$CPIO" ]; then
    log "assembling the root file system (key $key)"
    ROOT="$CACHE/root-$key"
    rm -rf "$ROOT" && mkdir -p "$ROOT"
    for d in bin sbin usr/bin usr/sbin lib lib64 etc proc sys dev run tmp root var/run newroot \
        sys/fs/cgroup lib/modules; do
        mkdir -p "$ROOT/$d"
    done
    # The kernel hands /init this console as fds 0-2 (early messages).
    mknod -m 0600 "$ROOT/dev/console" c 5 1 2>/dev/null || true
    install -m 0755 /bin/busybox "$ROOT/bin/busybox"
    for app in $(/bin/busybox --list); do
        [ -e "$ROOT/bin/$app" ] || ln -s busybox "$ROOT/bin/$app"
    done
    install -m 0755 uvm/initramfs/init "$ROOT/init"
    install -m 0755 "$HELPER" "$ROOT/bin/uvm-helper"
    copy_with_libs "$ROOT" "$GCS_BIN" /bin/gcs
    copy_with_libs "$ROOT" "$(command -v crun)" /usr/bin/crun
    ln -s crun "$ROOT/usr/bin/runc-compat" 2>/dev/null || true
    printf 'root:x:0:0:root:/root:/bin/sh\n' >"$ROOT/etc/passwd"
    printf 'root:x:0:\n' >"$ROOT/etc/group"
    : >"$ROOT/etc/resolv.conf"
    echo uvm >"$ROOT/etc/hostname"
    mkdir -p "$ROOT/etc/uvm"
    echo "$features" >"$ROOT/etc/uvm/agent-features"
    for list in early early_mmio early_pci channel late extra; do
        name=${list//_/-}
        printf '%s\n' ${!list} >"$ROOT/lib/modules/$name.list"
        for m in ${!list}; do
            install -D -m 0644 "$KDIR/pkg/lib/modules/$kver/$m" "$ROOT/lib/modules/$m"
        done
    done
    # Drop the modules' appended signatures: the kernel would hash every
    # module (sha256 under TCG, ~10-20 ms per module) only to find a valid
    # signature; an unsigned module loads at once (the kernel is not built
    # with MODULE_SIG_FORCE; it logs "tainting kernel" once). The image is
    # what the host trusts, not the module signatures.
    find "$ROOT/lib/modules" -name '*.ko' -print0 | xargs -0 -r python3 -c '
import struct, sys
MAGIC = b"~Module signature appended~\n"
for path in sys.argv[1:]:
    data = open(path, "rb").read()
    if not data.endswith(MAGIC):
        continue
    # struct module_signature (12 bytes, sig_len big-endian last) + signature
    sig_len = struct.unpack(">I", data[-len(MAGIC) - 4:-len(MAGIC)])[0]
    end = len(data) - len(MAGIC) - 12 - sig_len
    if end > 0:
        open(path, "wb").write(data[:end])
'
    (cd "$ROOT" && find . -mindepth 1 | LC_ALL=C sort |
        cpio --quiet -o -H newc --owner 0:0 --reproducible >"../initrd-$key.cpio.tmp")
    mv "$CACHE/initrd-$key.cpio.tmp" "$CPIO"
    rm -rf "$ROOT"
    # Keep only the newest few images.
    ls -t "$CACHE"/initrd-*.cpio | tail -n +4 | xargs -r rm -f
fi

for pair in "$KDIR/vmlinux:kernel" "$KDIR/bzImage:bzImage" "$CPIO:initrd.img"; do
    src=${pair%%:*} dst="$OUT/${pair##*:}"
    if ! cmp -s "$src" "$dst"; then
        cp "$src" "$dst.tmp" && mv -f "$dst.tmp" "$dst"
    fi
done
echo "$kver" >"$OUT/kernel.version.tmp" && mv -f "$OUT/kernel.version.tmp" "$OUT/kernel.version"

size() { stat -c %s "$1"; }
mib() { awk -v b="$1" 'BEGIN{printf "%.1f MiB", b/1048576}'; }
k=$(size "$OUT/kernel") i=$(size "$OUT/initrd.img") z=$(size "$OUT/bzImage")
log "kernel $kver: vmlinux $(mib "$k"), bzImage $(mib "$z")"
log "initrd.img $(mib "$i") uncompressed; boot size (vmlinux + initrd) $(mib $((k + i)))"
log "agent features: ${features:-none}"
