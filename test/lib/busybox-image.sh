#!/usr/bin/env bash
# Offline busybox OCI image for integration tests.
#
# Source it (after test/lib/containerd.sh) and call:
#   busybox_image_tarball          build (or reuse) the OCI-layout tarball, print its path
#   busybox_image_import [NS]      import it into the private containerd in namespace NS
#                                  (default: $CONTAINERD_NAMESPACE or "default"), unpacked
#                                  for $CONTAINERD_SNAPSHOTTER; the image is $BUSYBOX_IMAGE
# Or run it: `bash test/lib/busybox-image.sh` prints the tarball path.
#
# The tarball holds one uncompressed layer (test/lib/busybox-rootfs.sh), an image
# config, a manifest, index.json and oci-layout for linux/<host arch>. It is cached in
# $BUSYBOX_IMAGE_CACHE (default <repo>/build/cache/busybox-image), keyed by the
# sha256 of the busybox binary and of the scripts that shape the image, and built
# under a lock so parallel test runs share one copy.

BUSYBOX_IMAGE=${BUSYBOX_IMAGE:-localhost/busybox:test}
_busybox_image_lib_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

_busybox_sha256() {
  sha256sum "$1" | cut -d' ' -f1
}

_busybox_size() {
  stat -c %s "$1"
}

# Writes the OCI layout for image $BUSYBOX_IMAGE into directory $1.
_busybox_image_layout() {
  local out=$1 work=$1.work arch
  arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
  mkdir -p "$work/rootfs" "$out/blobs/sha256"
  bash "$_busybox_image_lib_dir/busybox-rootfs.sh" "$work/rootfs" >/dev/null
  # Reproducible layer: fixed order, owners and times.
  local entries
  mapfile -t entries < <(cd "$work/rootfs" && LC_ALL=C ls -A)
  LC_ALL=C tar -C "$work/rootfs" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
    --format=gnu -cf "$work/layer.tar" -- "${entries[@]}" || return 1
  local layer_digest layer_size
  layer_digest=$(_busybox_sha256 "$work/layer.tar")
  layer_size=$(_busybox_size "$work/layer.tar")
  mv "$work/layer.tar" "$out/blobs/sha256/$layer_digest"

  printf '%s' "{\"architecture\":\"$arch\",\"os\":\"linux\",\"config\":{\"Env\":[\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\"],\"Cmd\":[\"sh\"],\"WorkingDir\":\"/\"},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:$layer_digest\"]},\"history\":[{\"created_by\":\"test/lib/busybox-image.sh\"}]}" >"$work/config.json"
  local config_digest config_size
  config_digest=$(_busybox_sha256 "$work/config.json")
  config_size=$(_busybox_size "$work/config.json")
  mv "$work/config.json" "$out/blobs/sha256/$config_digest"

  printf '%s' "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:$config_digest\",\"size\":$config_size},\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"sha256:$layer_digest\",\"size\":$layer_size}]}" >"$work/manifest.json"
  local manifest_digest manifest_size
  manifest_digest=$(_busybox_sha256 "$work/manifest.json")
  manifest_size=$(_busybox_size "$work/manifest.json")
  mv "$work/manifest.json" "$out/blobs/sha256/$manifest_digest"

  local tag=${BUSYBOX_IMAGE##*:}
  printf '%s' "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:$manifest_digest\",\"size\":$manifest_size,\"platform\":{\"architecture\":\"$arch\",\"os\":\"linux\"},\"annotations\":{\"io.containerd.image.name\":\"$BUSYBOX_IMAGE\",\"org.opencontainers.image.ref.name\":\"$tag\"}}]}" >"$out/index.json"
  printf '%s' '{"imageLayoutVersion":"1.0.0"}' >"$out/oci-layout"
  rm -rf "$work"
}

_busybox_image_key() {
  local busybox=/bin/busybox
  [ -x "$busybox" ] || busybox=/usr/bin/busybox
  cat "$busybox" "$_busybox_image_lib_dir/busybox-rootfs.sh" "${BASH_SOURCE[0]}" 2>/dev/null |
    sha256sum | cut -c1-16
}

busybox_image_tarball() {
  local repo_root cache key tarball
  repo_root=${REPO_ROOT:-$(cd "$_busybox_image_lib_dir/../.." && pwd)}
  cache=${BUSYBOX_IMAGE_CACHE:-$repo_root/build/cache/busybox-image}
  key=$(_busybox_image_key)-$(printf '%s' "$BUSYBOX_IMAGE" | sha256sum | cut -c1-8)
  tarball="$cache/busybox-oci-$key.tar"
  mkdir -p "$cache" || return 1
  (
    flock -w 300 9 || { echo "busybox-image: lock timeout on $cache/.lock" >&2; exit 1; }
    [ -s "$tarball" ] && exit 0
    local tmp
    tmp=$(mktemp -d "$cache/build.XXXXXX") || exit 1
    trap 'rm -rf "$tmp"' EXIT
    _busybox_image_layout "$tmp/layout" || exit 1
    (cd "$tmp/layout" && LC_ALL=C tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
      -cf "$tmp/image.tar" oci-layout index.json blobs) || exit 1
    mv "$tmp/image.tar" "$tarball"
    # Tarballs from older inputs are dead weight now.
    find "$cache" -maxdepth 1 -name 'busybox-oci-*.tar' ! -path "$tarball" -delete
  ) 9>"$cache/.lock" || return 1
  printf '%s\n' "$tarball"
}

busybox_image_import() {
  local ns=${1:-${CONTAINERD_NAMESPACE:-default}} tarball
  tarball=$(busybox_image_tarball) || { echo "busybox-image: building the image failed" >&2; return 1; }
  containerd_ctr -n "$ns" images import ${CONTAINERD_SNAPSHOTTER:+--snapshotter "$CONTAINERD_SNAPSHOTTER"} \
    "$tarball" >/dev/null || { echo "busybox-image: ctr images import $tarball failed" >&2; return 1; }
  if ! containerd_ctr -n "$ns" images ls -q | grep -qxF "$BUSYBOX_IMAGE"; then
    echo "busybox-image: $BUSYBOX_IMAGE missing after import; images:" >&2
    containerd_ctr -n "$ns" images ls -q >&2
    return 1
  fi
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  busybox_image_tarball
fi
