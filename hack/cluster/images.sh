# The cluster's own images (pause, CoreDNS, Traefik) and the import of every tarball in target/images
# (sourced by up.sh).
# shellcheck shell=bash

# stale TARGET SOURCE...: true when TARGET is missing or older than one of the sources.
stale() {
  local target=$1 src
  shift
  [ -e "$target" ] || return 0
  for src in "$@"; do
    [ "$src" -nt "$target" ] && return 0
  done
  return 1
}

# image_tarball REF BINARY [ARG...]: (re)builds target/images/<name>-<tag>.tar when the binary or the tool changed.
image_tarball() {
  local ref=$1 binary=$2
  local file=${ref##*/}
  local tarball=$IMAGE_DIR/${file//:/-}.tar
  if stale "$tarball" "$binary" "$REPO/hack/cluster/oci-image.sh"; then
    "$REPO/hack/cluster/oci-image.sh" --no-import "$@" >/dev/null
  fi
}

build_pause_image() {
  local src=$REPO/hack/cluster/pause/pause.c bin=$REPO/target/pause/pause
  if stale "$bin" "$src"; then
    mkdir -p "$(dirname "$bin")"
    gcc -static -O2 -s -Wall -Wextra -Werror -o "$bin.tmp" "$src"
    mv "$bin.tmp" "$bin"
  fi
  image_tarball "$PAUSE_IMAGE" "$bin"
}

build_coredns_image() {
  image_tarball "$COREDNS_IMAGE" "$COREDNS_BIN/coredns"
}

build_traefik_image() {
  image_tarball "$TRAEFIK_IMAGE" "$TRAEFIK_BIN/traefik"
}

# import_images: every tarball in target/images into the k8s.io namespace (the CRI plugin's); content already
# present is not copied again.
import_images() {
  build_pause_image
  build_coredns_image
  build_traefik_image
  local tarball
  for tarball in "$IMAGE_DIR"/*.tar; do
    ctr --address "$CONTAINERD_SOCK" -n k8s.io images import "$tarball" >/dev/null
    log "imported $(basename "$tarball")"
  done
}
