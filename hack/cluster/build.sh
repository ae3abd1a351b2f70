#!/usr/bin/env bash
# Builds (or reuses) the local cluster's Go binaries: Kubernetes, etcd, CoreDNS and helm, from their upstream
# modules, unchanged. Each set lands in a cache folder keyed by its version and the Go version, so a second run
# builds nothing. Prints the folder that holds the binaries (one per line: name=path) on stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

cache=${RUNWAY_CACHE:-$HOME/.cache/runway}
gover=$(go env GOVERSION)
export GOFLAGS=-buildvcs=false CGO_ENABLED=0
# One package at a time with two compile jobs: a Kubernetes link can take ~2 GiB.
build_flags=(-p 2 -trimpath)

log() { echo "build: $*" >&2; }

# build_set NAME VERSION MODULE_DIR LDFLAGS PKG...: builds every PKG into $cache/bin/NAME-VERSION-GOVERSION.
build_set() {
  local name=$1 version=$2 moddir=$3 ldflags=$4
  shift 4
  local out="$cache/bin/$name-$version-$gover"
  if [ -f "$out/.complete" ]; then
    echo "$name=$out"
    return
  fi
  mkdir -p "$out"
  local start=$SECONDS pkg
  for pkg in "$@"; do
    local bin=${pkg##*/}
    [ "$bin" = v3 ] && bin=etcd # go.etcd.io/etcd/server/v3 is etcd's main package
    if [ ! -x "$out/$bin" ]; then
      log "$name $version: $bin"
      (cd "$here/gomod/$moddir" && go build "${build_flags[@]}" -ldflags "-s -w $ldflags" -o "$out/$bin.tmp" "$pkg")
      mv "$out/$bin.tmp" "$out/$bin"
    fi
  done
  touch "$out/.complete"
  log "$name $version built in $((SECONDS - start)) s"
  echo "$name=$out"
}

k8s_minor=${K8S_VERSION#v1.}
k8s_minor=${k8s_minor%%.*}
k8s_ldflags="-X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1"
k8s_ldflags+=" -X k8s.io/component-base/version.gitMinor=$k8s_minor -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
k8s_ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"

build_set kubernetes "$K8S_VERSION" kubernetes "$k8s_ldflags" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy \
  k8s.io/kubernetes/cmd/kubectl
build_set etcd "$ETCD_VERSION" etcd "" go.etcd.io/etcd/server/v3
build_set coredns "$COREDNS_VERSION" coredns "" github.com/coredns/coredns
build_set helm "$HELM_VERSION" helm "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" helm.sh/helm/v3/cmd/helm
