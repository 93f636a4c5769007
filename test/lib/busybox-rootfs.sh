#!/usr/bin/env bash
# Builds a minimal busybox root filesystem from Debian's busybox-static.
# Usage: busybox-rootfs.sh DIR     (DIR is created; existing content is kept)
set -euo pipefail
dir="${1:?usage: busybox-rootfs.sh DIR}"
busybox=/bin/busybox
if ! file -L "$busybox" 2>/dev/null | grep -q 'statically linked' && [ -x /usr/bin/busybox ]; then
  busybox=/usr/bin/busybox
fi
mkdir -p "$dir"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,root,run,var}
chmod 1777 "$dir/tmp"
install -m 0755 "$busybox" "$dir/bin/busybox"
for applet in $("$dir/bin/busybox" --list); do
  [ -e "$dir/bin/$applet" ] || ln -s busybox "$dir/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$dir/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$dir/etc/group"
printf 'busybox\n' >"$dir/etc/hostname"
