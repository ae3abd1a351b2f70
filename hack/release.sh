#!/usr/bin/env bash
# Releases Runway to an OCI registry: packs the release binaries (target/release, built by `make release`) as
# images, pushes them with skopeo, packages the chart with that registry and tag as its image defaults, and pushes it
# with helm. No Docker engine needed. Prints every pushed reference with its digest.
#
#   hack/release.sh --registry REGISTRY [--tag TAG] [--plain-http] [--out DIR] [--pushed COMPONENT=DIGEST]...
#
# REGISTRY is host[:port][/path], e.g. ghcr.io/acme or 10.88.0.1:5000. Images: REGISTRY/runway-{operator,activator,
# node,hello}:TAG (TAG defaults to the workspace version). Chart: oci://REGISTRY/charts/runway, version = the workspace
# version, appVersion = TAG. --plain-http for a registry without TLS (the local cluster's). Credentials: whatever
# `skopeo login` and `helm registry login` stored. DIR (default target/release/<registry>) gets release.json (the
# references and digests) and values.yaml (the image digests, for `helm install -f` to pin them). --pushed names an
# image already pushed under that tag by other means (hack/kind/e2e.sh builds with Docker): it is not packed again.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=cluster/lib.sh
source "$repo/hack/cluster/lib.sh"

usage() {
  sed -n '6,15p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

version=$(sed -n '/^\[workspace.package\]/,/^\[/ s/^version = "\(.*\)"/\1/p' "$repo/Cargo.toml")
registry=
tag=$version
plain_http=no
out=
declare -A digests
while [ $# -gt 0 ]; do
  case $1 in
    --registry) registry=${2%/}; shift 2 ;;
    --tag) tag=$2; shift 2 ;;
    --plain-http) plain_http=yes; shift ;;
    --out) out=$2; shift 2 ;;
    --pushed)
      [[ $2 =~ ^(operator|activator|node|hello)=sha256:[0-9a-f]{64}$ ]] || die "release: --pushed takes COMPONENT=sha256:..."
      digests[${2%%=*}]=${2#*=}
      shift 2
      ;;
    -h | --help) usage ;;
    *) echo "release: unknown argument $1" >&2; usage ;;
  esac
done
[ -n "$registry" ] || usage
[[ $tag =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "release: $tag is not a valid image tag"
out=${out:-$repo/target/release/${registry//[:\/]/_}}
need jq
helm=${HELM:-$(command -v helm || echo "$repo/.cluster/bin/helm")}
[ -x "$helm" ] || die "release: no helm (install it, set HELM, or run make up once)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

# The OCI annotations every image carries.
revision=$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)
source_url=$(sed -n '/^\[workspace.package\]/,/^\[/ s/^repository = "\(.*\)"/\1/p' "$repo/Cargo.toml")
labels=(--label "org.opencontainers.image.source=$source_url" --label "org.opencontainers.image.revision=$revision"
  --label "org.opencontainers.image.version=$tag" --label "org.opencontainers.image.licenses=Apache-2.0")

tls=(--dest-tls-verify=true)
helm_tls=()
if [ "$plain_http" = yes ]; then
  tls=(--dest-tls-verify=false)
  helm_tls=(--plain-http)
fi

# push_image COMPONENT: packs target/release/runway-COMPONENT and pushes it; prints its digest.
push_image() {
  local name=runway-$1 binary=$repo/target/release/runway-$1 tarball
  [ -x "$binary" ] || die "release: $binary missing (cargo build --release -p runway-$1)"
  need skopeo # hack/cluster/deps.sh installs it
  tarball=$("$repo/hack/cluster/oci-image.sh" --no-import --out "$work" "${labels[@]}" \
    "$name:$tag" "$binary")
  skopeo copy --quiet --preserve-digests "${tls[@]}" --digestfile "$work/$name.digest" \
    "oci-archive:$tarball" "docker://$registry/$name:$tag" >&2
  cat "$work/$name.digest"
}

for component in operator activator node hello; do
  [ -n "${digests[$component]:-}" ] || digests[$component]=$(push_image "$component")
  echo "$registry/runway-$component:$tag@${digests[$component]}"
done

# The chart, its image defaults pointing at this registry and tag: `helm install oci://.../runway` needs no values.
cp -r "$repo/deploy/runway" "$work/chart"
awk -v registry="$registry" -v tag="$tag" '
  /^[^ #]/ { top = $1 }
  top == "image:" && /^  registry:/ { print "  registry: " registry; next }
  top == "image:" && /^  tag:/ { print "  tag: \"" tag "\""; next }
  { print }' "$repo/deploy/runway/values.yaml" >"$work/chart/values.yaml"
grep -q "^  registry: $registry\$" "$work/chart/values.yaml" || die "release: no image.registry in values.yaml"
"$helm" package "$work/chart" --version "$version" --app-version "$tag" --destination "$work" >/dev/null
pushed=$("$helm" push "$work/runway-$version.tgz" "oci://$registry/charts" "${helm_tls[@]}" 2>&1) ||
  die "release: helm push: $pushed"
chart_digest=$(sed -n 's/^Digest: //p' <<<"$pushed")
echo "oci://$registry/charts/runway:$version@$chart_digest"

cat >"$out/values.yaml" <<EOF
# Written by hack/release.sh: the images it pushed, pinned by digest.
image:
  registry: $registry
  tag: "$tag"
operator: {image: {digest: "${digests[operator]}"}}
activator: {image: {digest: "${digests[activator]}"}}
nodeAgent: {image: {digest: "${digests[node]}"}}
tests: {image: {digest: "${digests[hello]}"}}
EOF
jq -n --arg registry "$registry" --arg tag "$tag" --arg chart "oci://$registry/charts/runway" \
  --arg version "$version" --arg chartDigest "$chart_digest" --argjson plainHttp "$([ "$plain_http" = yes ] &&
    echo true || echo false)" --arg values "$out/values.yaml" \
  --arg operator "$registry/runway-operator:$tag@${digests[operator]}" \
  --arg activator "$registry/runway-activator:$tag@${digests[activator]}" \
  --arg node "$registry/runway-node:$tag@${digests[node]}" \
  --arg hello "$registry/runway-hello:$tag@${digests[hello]}" '{
    registry: $registry, tag: $tag, chart: $chart, chartVersion: $version, chartDigest: $chartDigest,
    plainHttp: $plainHttp, values: $values,
    images: {operator: $operator, activator: $activator, node: $node, hello: $hello}
  }' >"$out/release.json"
log "release: $out/release.json"
