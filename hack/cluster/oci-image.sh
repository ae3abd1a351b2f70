#!/usr/bin/env bash
# Packs one binary into a single-layer OCI image tarball, without Docker, and imports it into the local cluster's
# containerd when that is running.
#
#   oci-image.sh [--user UID[:GID]] [--out DIR] [--no-import] [--label KEY=VALUE]... NAME:TAG BINARY [ENTRYPOINT_ARG...]
#
# The binary lands at /usr/local/bin/<its file name> and is the entrypoint, followed by ENTRYPOINT_ARG. A
# dynamically linked binary gets the shared libraries that `ldd` lists and the loader. The process runs as
# 65532:65532 unless --user says otherwise. The tarball (target/images/<name>-<tag>.tar by default) holds both an
# OCI layout (oci-layout, index.json, blobs/) and a docker-archive manifest.json naming the same blobs, so
# `ctr images import`, `docker load` and `kind load image-archive` all take it. Each --label goes into the image
# config's Labels and the manifest's annotations (the OCI keys org.opencontainers.image.*). Prints the tarball's path.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

usage() {
  sed -n '5,12p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

user=65532:65532
out_dir=$repo/target/images
import=auto
labels='{}'
while [ $# -gt 0 ]; do
  case $1 in
    --user) user=$2; shift 2 ;;
    --out) out_dir=$2; shift 2 ;;
    --no-import) import=no; shift ;;
    --import) import=yes; shift ;;
    --label)
      [[ $2 == ?*=* ]] || die "oci-image: --label takes KEY=VALUE, not $2"
      labels=$(jq -c --arg k "${2%%=*}" --arg v "${2#*=}" '. + {($k): $v}' <<<"$labels")
      shift 2
      ;;
    -h | --help) usage ;;
    --*) echo "oci-image: unknown option $1" >&2; usage ;;
    *) break ;;
  esac
done
[ $# -ge 2 ] || usage
ref=$1
binary=$2
shift 2
[[ $ref == *:* && ${ref##*:} != */* ]] || die "oci-image: $ref needs a tag (name:tag)"
[ -x "$binary" ] || die "oci-image: $binary is not an executable file"
[[ $user == *:* ]] || user=$user:$user
need jq # hack/cluster/deps.sh installs it

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# copy_libs BINARY ROOTFS: copies the loader and every shared library `ldd` resolves, at their own paths.
copy_libs() {
  local bin=$1 rootfs=$2 lib
  if ! ldd "$bin" >/dev/null 2>&1; then
    return # static: ldd fails with "not a dynamic executable"
  fi
  # Lines look like "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)".
  while read -r lib; do
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -L "$lib" "$rootfs$lib"
  done < <(ldd "$bin" | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i }' | sort -u)
}

# make_rootfs ROOTFS: the binary, its libraries, a passwd/group naming the image's user, and a writable /tmp.
make_rootfs() {
  local rootfs=$1 uid=${user%%:*} gid=${user##*:}
  mkdir -p "$rootfs/usr/local/bin" "$rootfs/etc" "$rootfs/tmp"
  chmod 1777 "$rootfs/tmp"
  cp -L "$binary" "$rootfs/usr/local/bin/$bin_name"
  chmod 0755 "$rootfs/usr/local/bin/$bin_name"
  copy_libs "$binary" "$rootfs"
  printf 'root:x:0:0:root:/root:/sbin/nologin\n' >"$rootfs/etc/passwd"
  printf 'root:x:0:\n' >"$rootfs/etc/group"
  if [ "$uid" != 0 ]; then
    printf 'app:x:%s:%s:app:/tmp:/sbin/nologin\n' "$uid" "$gid" >>"$rootfs/etc/passwd"
    printf 'app:x:%s:\n' "$gid" >>"$rootfs/etc/group"
  fi
}

# add_blob FILE: moves FILE into blobs/sha256 under its digest and prints the digest (hex only).
add_blob() {
  local digest
  digest=$(sha256sum "$1" | cut -d' ' -f1)
  mv "$1" "$work/image/blobs/sha256/$digest"
  echo "$digest"
}

size_of() { stat -c %s "$work/image/blobs/sha256/$1"; }

bin_name=$(basename "$binary")
make_rootfs "$work/rootfs"
mkdir -p "$work/image/blobs/sha256"

# A reproducible layer: sorted entries, fixed owner and time; diff_id is the digest of the uncompressed tar.
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 --format=posix \
  --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime -C "$work/rootfs" -cf "$work/layer.tar" .
diff_id=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
gzip -n -6 "$work/layer.tar"
layer=$(add_blob "$work/layer.tar.gz")

entrypoint=$(jq -cn --arg bin "/usr/local/bin/$bin_name" '$ARGS.positional | [$bin] + .' --args "$@")
jq -cn --arg user "$user" --arg diff "sha256:$diff_id" --argjson ep "$entrypoint" --argjson labels "$labels" '{
  architecture: "amd64", os: "linux", created: "1970-01-01T00:00:00Z",
  config: ({User: $user, Entrypoint: $ep, WorkingDir: "/", Env: ["PATH=/usr/local/bin:/usr/bin:/bin"]}
    + (if $labels == {} then {} else {Labels: $labels} end)),
  rootfs: {type: "layers", diff_ids: [$diff]},
  history: [{created: "1970-01-01T00:00:00Z", created_by: "hack/cluster/oci-image.sh"}]
}' >"$work/config.json"
config=$(add_blob "$work/config.json")

jq -cn --arg c "sha256:$config" --argjson cs "$(size_of "$config")" --arg l "sha256:$layer" \
  --argjson ls "$(size_of "$layer")" --argjson labels "$labels" '{
  schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
  config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $c, size: $cs},
  layers: [{mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: $l, size: $ls}]
} + (if $labels == {} then {} else {annotations: $labels} end)' >"$work/manifest.json"
manifest=$(add_blob "$work/manifest.json")

jq -cn --arg m "sha256:$manifest" --argjson ms "$(size_of "$manifest")" --arg ref "$ref" --arg tag "${ref##*:}" '{
  schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json",
  manifests: [{mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $m, size: $ms,
    platform: {architecture: "amd64", os: "linux"},
    annotations: {"io.containerd.image.name": $ref, "org.opencontainers.image.ref.name": $tag}}]
}' >"$work/image/index.json"
echo '{"imageLayoutVersion":"1.0.0"}' >"$work/image/oci-layout"
jq -cn --arg c "blobs/sha256/$config" --arg l "blobs/sha256/$layer" --arg ref "$ref" \
  '[{Config: $c, RepoTags: [$ref], Layers: [$l]}]' >"$work/image/manifest.json"

mkdir -p "$out_dir"
file_name=${ref##*/}
tarball=$out_dir/${file_name//:/-}.tar
tar --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$work/image" -cf "$tarball.tmp" \
  oci-layout index.json manifest.json blobs
mv "$tarball.tmp" "$tarball"

# import_image: into the k8s.io namespace, the only one the CRI plugin (and so the kubelet) sees.
import_image() {
  ctr --address "$CONTAINERD_SOCK" -n k8s.io images import "$tarball" >&2
}

case $import in
  yes) import_image ;;
  auto)
    if [ -S "$CONTAINERD_SOCK" ] && ctr --address "$CONTAINERD_SOCK" version >/dev/null 2>&1; then
      import_image
    else
      echo "oci-image: cluster containerd not running; $ref not imported (make up imports target/images/*.tar)" >&2
    fi
    ;;
esac
echo "$tarball"
