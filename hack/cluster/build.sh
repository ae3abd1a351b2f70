#!/usr/bin/env bash
# Builds (or reuses) the local cluster's Go binaries: Kubernetes, etcd, CoreDNS, helm, Traefik and
# kube-network-policies, from their upstream modules, unchanged, and fetches the Gateway API and Prometheus Operator
# CRDs. Each set lands in
# a cache folder keyed by its version (binaries also by the Go version), so a second run builds nothing. Prints the
# folder that holds each set (one per line: name=path) on stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

cache=${RUNWAY_CACHE:-$HOME/.cache/runway}
gover=$(go env GOVERSION)
export GOFLAGS=-buildvcs=false CGO_ENABLED=0
# Go runs one job per core by default, and a job may be a Kubernetes link of ~2 GiB: no more jobs than cores or
# than 2 GiB pieces of the memory available now.
jobs=$(nproc)
mem_jobs=$(($(awk '/^MemAvailable:/ {print $2}' /proc/meminfo) / (2 * 1024 * 1024)))
[ "$mem_jobs" -lt "$jobs" ] && jobs=$mem_jobs
[ "$jobs" -ge 1 ] || jobs=1
# -dwarf=false: the compiler skips debug info that the link (-w) drops anyway (~15% of compile CPU). The binaries
# record it among their build settings, so they are not byte-identical to earlier builds, but they do the same:
# cache keys stay, and folders built before are used as they are.
build_flags=(-p "$jobs" -trimpath -gcflags=all=-dwarf=false)

log() { echo "build: $*" >&2; }

# Writable module copies of build_module, removed on exit whatever happens.
scratch=()
trap 'rm -rf "${scratch[@]}"' EXIT

# module_dir MODULE@VERSION: downloads the module into the Go module cache (read-only there) and prints its folder.
# Runs in an empty folder, so that no go.mod around the caller is consulted or touched.
module_dir() {
  local empty json rc=0
  empty=$(mktemp -d)
  json=$(cd "$empty" && go mod download -json "$1") || rc=$?
  rmdir "$empty"
  if [ "$rc" != 0 ]; then
    log "go mod download $1 failed: $json"
    return "$rc"
  fi
  jq -er .Dir <<<"$json"
}

# build_set NAME VERSION MODULE_DIR LDFLAGS PKG...: builds every PKG into $cache/bin/NAME-VERSION-GOVERSION, in one
# `go build` so that packages they share are loaded and compiled once and links overlap other work.
build_set() {
  local name=$1 version=$2 moddir=$3 ldflags=$4
  shift 4
  local out="$cache/bin/$name-$version-$gover"
  if [ -f "$out/.complete" ]; then
    echo "$name=$out"
    return
  fi
  mkdir -p "$out"
  local start=$SECONDS pkg bin tmp pkgs=() bins=() dest
  for pkg in "$@"; do
    bin=${pkg##*/}
    [ "$bin" = v3 ] && bin=etcd # go.etcd.io/etcd/server/v3 is etcd's main package
    [ -x "$out/$bin" ] && continue
    pkgs+=("$pkg")
    bins+=("$bin")
  done
  if [ ${#pkgs[@]} -gt 0 ]; then
    log "$name $version: ${bins[*]}"
    # Into a folder next to $out, so the binaries appear there whole (mv on one file system).
    tmp=$(mktemp -d "$out/.build.XXXXXX")
    scratch+=("$tmp")
    dest=$tmp/ # several: each named after its package's last element
    [ ${#pkgs[@]} = 1 ] && dest=$tmp/${bins[0]}
    (cd "$here/gomod/$moddir" && go build "${build_flags[@]}" -ldflags "-s -w $ldflags" -o "$dest" "${pkgs[@]}")
    for bin in "${bins[@]}"; do
      mv "$tmp/$bin" "$out/$bin"
    done
    rm -rf "$tmp"
  fi
  touch "$out/.complete"
  log "$name $version built in $((SECONDS - start)) s"
  echo "$name=$out"
}

# build_module NAME VERSION MODULE LDFLAGS PKG [BIN]: builds PKG (relative to the module) as BIN (default: PKG's
# last element) into $cache/bin/NAME-VERSION-GOVERSION inside a writable copy of MODULE@VERSION as published, so
# that the module's own go.mod, go.sum and replace directives apply. (Replaces count only in the main module: a wrapper module like
# gomod/ would ignore them, and `go install MODULE@VERSION` refuses a module that has them.)
build_module() {
  local name=$1 version=$2 module=$3 ldflags=$4 pkg=$5 bin=${6:-${5##*/}}
  local out="$cache/bin/$name-$version-$gover"
  if [ -f "$out/.complete" ]; then
    echo "$name=$out"
    return
  fi
  local start=$SECONDS dir src
  log "$name $version: downloading $module"
  dir=$(module_dir "$module@$version")
  src=$(mktemp -d)
  scratch+=("$src")
  cp -r "$dir/." "$src"
  chmod -R u+w "$src"
  mkdir -p "$out"
  log "$name $version: $bin"
  (cd "$src" && go build "${build_flags[@]}" -ldflags "-s -w $ldflags" -o "$out/$bin.tmp" "$pkg")
  mv "$out/$bin.tmp" "$out/$bin"
  rm -rf "$src"
  touch "$out/.complete"
  log "$name $version built in $((SECONDS - start)) s"
  echo "$name=$out"
}

# fetch_crds NAME VERSION MODULE DIR [FILE...]: copies the CRD files of DIR inside MODULE@VERSION (the FILEs, else
# every *.yaml but kustomization.yaml) into $cache/crds/NAME-VERSION.
fetch_crds() {
  local name=$1 version=$2 module=$3 sub=$4
  shift 4
  local out="$cache/crds/$name-$version"
  if [ ! -f "$out/.complete" ]; then
    local dir file files=("$@")
    dir=$(module_dir "$module@$version")
    if [ ${#files[@]} -eq 0 ]; then
      for file in "$dir/$sub"/*.yaml; do files+=("${file##*/}"); done
    fi
    mkdir -p "$out"
    for file in "${files[@]}"; do
      [ "$file" = kustomization.yaml ] || install -m 0644 "$dir/$sub/$file" "$out/"
    done
    touch "$out/.complete"
    log "$name $version: CRDs from $module/$sub"
  fi
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
# Only the plugins gomod/coredns/main.go names; the "-slim" key keeps it apart from caches of the full build.
build_set coredns "$COREDNS_VERSION-slim" coredns "" runway.dev/testbed/coredns
build_set helm "$HELM_VERSION" helm "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" helm.sh/helm/v3/cmd/helm
# The web UI is embedded from webui/static, which the published module ships with a placeholder only: no Node build,
# and Traefik serves an empty dashboard (we do not enable it).
build_module traefik "$TRAEFIK_VERSION" github.com/traefik/traefik/v3 \
  "-X github.com/traefik/traefik/v3/pkg/version.Version=$TRAEFIK_VERSION" ./cmd/traefik
# kube-network-policies: its one main package is ./cmd (upstream's image calls the binary netpol).
build_module kube-network-policies "$KUBE_NETWORK_POLICIES_VERSION" sigs.k8s.io/kube-network-policies "" ./cmd \
  kube-network-policies
fetch_crds gateway-api "$GATEWAY_API_VERSION" sigs.k8s.io/gateway-api config/crd/standard
# Only the kinds the chart renders: the other seven (Prometheus, Alertmanager, ...) would only be unused API.
fetch_crds prometheus-operator "$PROMETHEUS_OPERATOR_VERSION" github.com/prometheus-operator/prometheus-operator \
  example/prometheus-operator-crd monitoring.coreos.com_servicemonitors.yaml monitoring.coreos.com_podmonitors.yaml \
  monitoring.coreos.com_prometheusrules.yaml
