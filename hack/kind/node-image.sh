#!/usr/bin/env bash
# Builds (or reuses) Runway's kind node image for podman, without Docker and without pulling an image: a Debian
# root filesystem with systemd, containerd, runc and the CNI plugins (mmdebstrap, Debian packages); kind's base image
# files (entrypoint, kubelet units) from the pinned kind module; kubelet, kubeadm and kubectl of the local cluster's
# Kubernetes version; and the images of the control plane (API server, controller manager, scheduler, kube-proxy,
# etcd, CoreDNS, pause) and of kube-network-policies, packed from our own builds, imported into the node's containerd
# when it boots.
# Also builds kind, crictl and kubeadm from their Go modules. Everything is cached under ~/.cache/runway by version.
# Prints two lines on stdout: kind=<kind binary> and image=<node image reference in podman's storage>.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../cluster/lib.sh
source "$here/../cluster/lib.sh"
# shellcheck source=kind.env
source "$here/kind.env"
# shellcheck source=../cluster/netpol.sh
source "$here/../cluster/netpol.sh"

[ "$(id -u)" = 0 ] || die "run as root (mmdebstrap, podman)"
need go jq mmdebstrap podman gcc ctr
export GOFLAGS=-buildvcs=false CGO_ENABLED=0
gover=$(go env GOVERSION)
kind_cache=$RUNWAY_CACHE/kind
mkdir -p "$kind_cache"

work=$(mktemp -d "$kind_cache/work.XXXXXX")
trap 'rm -rf "$work"' EXIT

# module_dir MODULE@VERSION: the module's folder in the Go module cache (downloaded if missing).
module_dir() {
  (cd "$work" && go mod download -json "$1") | jq -er .Dir
}

# go_tool NAME VERSION PACKAGE@VERSION: `go install`s a module's command into $RUNWAY_CACHE/bin/NAME-VERSION-GOVERSION.
go_tool() {
  local out=$RUNWAY_CACHE/bin/$1-$2-$gover
  if [ ! -f "$out/.complete" ]; then
    log "building $1 $2"
    GOBIN=$out go install -trimpath -ldflags '-s -w' "$3"
    touch "$out/.complete"
  fi
  echo "$out/$1"
}

# kubeadm of K8S_VERSION, built like build.sh builds the other Kubernetes commands: in a copy of its wrapper module
# (gomod/kubernetes lacks the go.sum lines of kubeadm's own dependencies, which `go get` adds to the copy).
build_kubeadm() {
  local out=$RUNWAY_CACHE/bin/kubeadm-$K8S_VERSION-$gover
  if [ ! -f "$out/.complete" ]; then
    log "building kubeadm $K8S_VERSION"
    local minor=${K8S_VERSION#v1.} ldflags src=$work/kubeadm-module
    minor=${minor%%.*}
    ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1"
    ldflags+=" -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
    ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
    cp -r "$REPO/hack/cluster/gomod/kubernetes" "$src"
    (cd "$src" && go get "k8s.io/kubernetes/cmd/kubeadm@$K8S_VERSION" &&
      go build -p 2 -trimpath -ldflags "$ldflags" -o "$out/kubeadm" k8s.io/kubernetes/cmd/kubeadm)
    touch "$out/.complete"
  fi
  echo "$out/kubeadm"
}

# base_rootfs: the Debian root filesystem (a tarball from mmdebstrap), keyed by suite and package list.
base_rootfs() {
  local key tarball
  key=$(printf '%s\n' "$NODE_SUITE" "$NODE_PACKAGES" | sha256sum | cut -c1-12)
  tarball=$kind_cache/rootfs-$NODE_SUITE-$key.tar
  if [ ! -f "$tarball" ]; then
    log "mmdebstrap: Debian $NODE_SUITE root filesystem for the node image"
    local mirror=http://deb.debian.org/debian
    mmdebstrap --variant=minbase --mode=root --format=tar --include="$NODE_PACKAGES" "$NODE_SUITE" "$tarball.tmp" \
      "deb $mirror $NODE_SUITE main" "deb $mirror $NODE_SUITE-updates main" \
      "deb http://deb.debian.org/debian-security $NODE_SUITE-security main" >&2
    mv "$tarball.tmp" "$tarball"
  fi
  echo "$tarball"
}

# pack IMAGE BINARY [USER]: one control-plane image with the local cluster's OCI tool, into the node's /kind/images.
pack() {
  "$REPO/hack/cluster/oci-image.sh" --no-import --out "$root/kind/images" --user "${3:-0:0}" "$1" "$2" >/dev/null
}

# pack_kube_proxy: kube-proxy needs iptables (the legacy backend: kind's entrypoint selects it in a fresh node),
# taken from the node's own root filesystem with the libraries and xtables extensions it loads.
pack_kube_proxy() {
  local rootfs=$work/kube-proxy ref=runway.local/kube-proxy:$K8S_VERSION lib
  mkdir -p "$rootfs/usr/local/bin" "$rootfs/usr/sbin" "$rootfs/usr/lib/x86_64-linux-gnu" "$rootfs/etc" "$rootfs/run"
  install -m 0755 "$K8S_BIN/kube-proxy" "$rootfs/usr/local/bin/kube-proxy"
  cp -a "$root/usr/sbin/xtables-legacy-multi" "$rootfs/usr/sbin/"
  for lib in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
    ln -s xtables-legacy-multi "$rootfs/usr/sbin/$lib"
  done
  cp -a "$root/usr/lib/x86_64-linux-gnu/xtables" "$rootfs/usr/lib/x86_64-linux-gnu/"
  # Every library the binary and its extensions link, resolved inside the node's root filesystem.
  while read -r lib; do
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -L "$root$lib" "$rootfs$lib"
  done < <(chroot "$root" sh -c 'ldd /usr/sbin/xtables-legacy-multi /usr/lib/x86_64-linux-gnu/xtables/*.so' |
    awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\// && $i !~ /:$/) print $i }' | sort -u)
  printf 'root:x:0:0:root:/root:/sbin/nologin\n' >"$rootfs/etc/passwd"
  printf 'root:x:0:\n' >"$rootfs/etc/group"
  tar -C "$rootfs" --numeric-owner -cf "$work/kube-proxy.tar" .
  podman import --quiet --change 'ENTRYPOINT ["/usr/local/bin/kube-proxy"]' \
    --change 'ENV PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' "$work/kube-proxy.tar" "$ref" >/dev/null
  podman save --quiet --format docker-archive -o "$root/kind/images/kube-proxy-$K8S_VERSION.tar" "$ref" >/dev/null
  podman rmi "$ref" >/dev/null
}

# assemble TARBALL: the node's root filesystem as a tarball.
assemble() {
  local kind_files kind_dir
  kind_dir=$(module_dir "sigs.k8s.io/kind@$KIND_VERSION")
  kind_files=$kind_dir/images/base/files
  root=$work/root
  mkdir -p "$root"
  tar -C "$root" --xattrs --xattrs-include='*' -xf "$(base_rootfs)"

  # kind's base image files, unchanged, and the same clean-up of systemd units as kind's Dockerfile.
  install -m 0755 "$kind_files/usr/local/bin/entrypoint" "$kind_files/usr/local/bin/clean-install" \
    "$root/usr/local/bin/"
  install -d -m 0755 "$root/kind/bin" "$root/kind/manifests" "$root/kind/images" "$root/etc/kubernetes/manifests" \
    "$root/etc/systemd/system/kubelet.service.d" "$root/etc/containerd/certs.d/_default" "$root/etc/cni/net.d"
  install -m 0755 "$kind_files"/kind/bin/*.sh "$root/kind/bin/"
  install -m 0644 "$kind_files/etc/systemd/system/kubelet.service" "$kind_files/etc/systemd/system/kubelet.slice" \
    "$kind_files/etc/systemd/system/undo-mount-hacks.service" "$root/etc/systemd/system/"
  install -m 0644 "$kind_files"/etc/systemd/system/kubelet.service.d/* "$root/etc/systemd/system/kubelet.service.d/"
  install -m 0644 "$kind_files/etc/default/kubelet" "$root/etc/default/kubelet"
  install -m 0644 "$kind_files/etc/crictl.yaml" "$root/etc/crictl.yaml"
  install -m 0644 "$kind_files"/etc/sysctl.d/* "$root/etc/sysctl.d/"
  find "$root/lib/systemd/system/sysinit.target.wants/" -name systemd-tmpfiles-setup.service -delete
  rm -f "$root"/lib/systemd/system/multi-user.target.wants/* "$root"/etc/systemd/system/*.wants/* \
    "$root"/lib/systemd/system/local-fs.target.wants/* "$root"/lib/systemd/system/sockets.target.wants/*udev* \
    "$root"/lib/systemd/system/sockets.target.wants/*initctl* "$root"/lib/systemd/system/basic.target.wants/*
  echo "ReadKMsg=no" >>"$root/etc/systemd/journald.conf"

  # Ours: containerd's unit and config, the registry block, the CNI config, the image import, the StorageClass.
  install -m 0644 "$here/node/containerd.service" "$here/node/runway-images.service" "$root/etc/systemd/system/"
  install -m 0644 "$here/node/containerd-config.toml" "$root/etc/containerd/config.toml"
  install -m 0644 "$here/node/hosts.toml" "$root/etc/containerd/certs.d/_default/hosts.toml"
  sed "s|@KIND_NODE_POD_CIDR@|$KIND_NODE_POD_CIDR|" "$here/node/10-runway-ptp.conflist" \
    >"$root/etc/cni/net.d/10-runway-ptp.conflist"
  install -m 0644 "$here/node/default-storage.yaml" "$root/kind/manifests/default-storage.yaml"
  # The runtime's base spec as kind makes it: containerd's default plus kind's product-files hook, no rlimits.
  chroot "$root" ctr oci spec |
    jq '.hooks.createContainer[.hooks.createContainer | length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' |
    jq 'del(.process.rlimits)' >"$root/etc/containerd/cri-base.json"
  chroot "$root" systemctl enable kubelet.service containerd.service undo-mount-hacks.service runway-images.service \
    >/dev/null 2>&1
  chroot "$root" systemctl mask systemd-binfmt.service >/dev/null 2>&1

  # Kubernetes: the node's binaries and the version kind reads.
  install -m 0755 "$K8S_BIN/kubelet" "$K8S_BIN/kubectl" "$KUBEADM" "$root/usr/bin/"
  install -m 0755 "$CRICTL" "$root/usr/local/bin/crictl"
  echo "$K8S_VERSION" >"$root/kind/version"

  # Images: kubeadm's names under imageRepository runway.local (see node/kind-config.yaml), all run as root like
  # upstream's; pause as on the local cluster.
  local component
  for component in kube-apiserver kube-controller-manager kube-scheduler; do
    pack "runway.local/$component:$K8S_VERSION" "$K8S_BIN/$component"
  done
  pack "runway.local/etcd:${ETCD_VERSION#v}" "$ETCD_BIN/etcd"
  pack "runway.local/coredns:${COREDNS_VERSION#v}" "$COREDNS_BIN/coredns"
  gcc -static -O2 -s -Wall -Wextra -Werror -o "$work/pause" "$REPO/hack/cluster/pause/pause.c"
  pack "runway.local/pause:3.10" "$work/pause" 65532:65532
  pack_kube_proxy
  # NetworkPolicy enforcement: kind applies /kind/manifests/default-cni.yaml once the control plane is up, the slot
  # of its own kindnet (with disableDefaultCNI: false, see node/kind-config.yaml). Here it holds only
  # kube-network-policies, as on the local cluster; pod networking stays the static CNI config above. The packets
  # it judges reach it through the steering chain, made at the node's boot as on the local cluster's host.
  pack "$KNP_IMAGE" "$(knp_bin)"
  render_netpol_manifest >"$root/kind/manifests/default-cni.yaml"
  install -m 0755 "$REPO/hack/cluster/netpol-steer.sh" "$root/usr/local/bin/runway-netpol-steer"
  # This machine is the kind network's gateway, its first address.
  sed -e "s|@KIND_POD_SUBNET@|$KIND_POD_SUBNET|" -e "s|@KIND_HOST_IP@|${KIND_NETWORK_SUBNET%.*}.1|" \
    "$here/node/runway-netpol-steer.service" >"$root/etc/systemd/system/runway-netpol-steer.service"
  chroot "$root" systemctl enable runway-netpol-steer.service >/dev/null 2>&1

  tar -C "$root" --numeric-owner --xattrs --xattrs-include='*' -cf "$1.tmp" .
  mv "$1.tmp" "$1"
}

"$REPO/hack/cluster/build.sh" >/dev/null # Kubernetes, etcd, CoreDNS, helm, Traefik, kube-network-policies (cached)
bin_dirs
KIND=$(go_tool kind "$KIND_VERSION" "sigs.k8s.io/kind@$KIND_VERSION")
CRICTL=$(go_tool crictl "$CRICTL_VERSION" "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION")
KUBEADM=$(build_kubeadm)

# The image's key: everything that goes into it.
key=$( {
  printf '%s\n' "$gover" "$NODE_SUITE" "$NODE_PACKAGES"
  cat "$here/kind.env" "$REPO/hack/cluster/versions.env" "$0" "$REPO/hack/cluster/oci-image.sh" \
    "$REPO/hack/cluster/pause/pause.c" "$here"/node/* "$REPO/hack/cluster/netpol.sh" \
    "$REPO/hack/cluster/netpol-steer.sh" "$REPO/hack/cluster/manifests/kube-network-policies.yaml"
} | sha256sum | cut -c1-12)
image=runway.local/kind-node:$K8S_VERSION-$key
tarball=$kind_cache/node-$K8S_VERSION-$key.tar
if ! podman image exists "$image"; then
  if [ ! -f "$tarball" ]; then
    start=$SECONDS
    log "assembling the node image $image"
    assemble "$tarball"
    log "node image assembled in $((SECONDS - start)) s"
  fi
  podman import --quiet --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' \
    --change 'ENV container=docker' --change 'STOPSIGNAL SIGRTMIN+3' "$tarball" "$image" >/dev/null
  # Older node images: their tarballs, and their podman images unless a kind node still runs one.
  find "$kind_cache" -maxdepth 1 -name 'node-*.tar' ! -name "${tarball##*/}" -delete
  podman images --format '{{.Repository}}:{{.Tag}}' --filter reference=runway.local/kind-node | grep -vxF "$image" |
    xargs -r podman rmi >/dev/null 2>&1 || true
fi
echo "kind=$KIND"
echo "image=$image"
