#!/usr/bin/env bash
# Builds the previous release (the last commit before revisions, PREVIOUS_RELEASE in hack/upgrade/previous.env):
# its operator and activator images, imported into the local cluster as runway.local/{operator,activator}:previous,
# and its Helm chart. The build is cached under $RUNWAY_CACHE/previous/<commit>. Prints the chart's directory.
# The e2e upgrade test (t31) installs that chart, then upgrades to this tree's.
#   previous-release.sh              build (once), import the images into the local cluster, print the chart's dir
#   previous-release.sh --archives   build (once), pack the images without importing them, print their tarballs
#                                    (the kind scripts load them into the kind nodes, which the import never reaches)
set -euo pipefail
mode=import
case ${1:-} in
  "") ;;
  --archives) mode=archives ;;
  *) echo "previous-release: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
esac
repo=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=previous.env
source "$repo/hack/upgrade/previous.env"
cache=${RUNWAY_CACHE:-$HOME/.cache/runway}/previous/$PREVIOUS_RELEASE
log() { echo "previous-release: $*" >&2; }

if [ ! -f "$cache/.complete" ]; then
  src=$(mktemp -d)
  trap 'rm -rf "$src"' EXIT
  git -C "$repo" cat-file -e "$PREVIOUS_RELEASE^{commit}" 2>/dev/null ||
    git -C "$repo" fetch --quiet origin "$PREVIOUS_RELEASE"
  git -C "$repo" archive "$PREVIOUS_RELEASE" | tar -x -C "$src"
  start=$SECONDS
  log "building ${PREVIOUS_RELEASE:0:12} (release build of the operator and the activator)"
  # Its own target directory: sharing this tree's would make each build undo the other's artifacts.
  cargo build --quiet --release --locked --manifest-path "$src/Cargo.toml" --target-dir "$cache.target" \
    -p runway-operator -p runway-activator
  mkdir -p "$cache/bin"
  cp "$cache.target/release/runway-operator" "$cache.target/release/runway-activator" "$cache/bin/"
  rm -rf "$cache/chart" && cp -r "$src/deploy/runway" "$cache/chart"
  rm -rf "$cache.target"
  touch "$cache/.complete"
  log "built in $((SECONDS - start)) s"
fi
if [ $mode = archives ]; then
  for component in operator activator; do
    "$repo/hack/cluster/oci-image.sh" --no-import --out "$cache/images" "runway.local/$component:previous" \
      "$cache/bin/runway-$component"
  done
  exit 0
fi
for component in operator activator; do
  "$repo/hack/cluster/oci-image.sh" --out "$cache/images" "runway.local/$component:previous" \
    "$cache/bin/runway-$component" >/dev/null
done
echo "$cache/chart"
