#!/usr/bin/env bash
# The soak and abuse harness (docs/benchmarks.md, "Soak and abuse"). Not part of CI: a soak lasts minutes.
#
#   hack/soak/soak.sh [--duration 10m] [--interval 20s]    soak the local cluster (after `make up`)
#   hack/soak/soak.sh --flood [--connections 2500 ...]     flood a standalone activator on 127.0.0.1
#   hack/soak/soak.sh --help                                every flag of both modes
#
# Soak mode builds the sample app and imports it into the cluster as runway.local/hello:soak, since the soak needs
# its /ws route and the cluster may hold an older build of runway.local/hello. Flood mode builds the activator of
# the working tree, unless --activator-bin or --address says which activator to flood.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"

flood=no
own_activator=yes
for arg in "$@"; do
  case $arg in
    --flood) flood=yes ;;
    --address | --address=* | --activator-bin | --activator-bin=*) own_activator=no ;;
  esac
done

target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
packages=(-p runway-soak)
if [ $flood = no ]; then
  packages+=(-p runway-hello)
elif [ $own_activator = yes ]; then
  packages+=(-p runway-activator)
fi
cargo build --release -q "${packages[@]}"

if [ $flood = no ]; then
  export KUBECONFIG=${KUBECONFIG:-$repo/.cluster/kubeconfig}
  export PATH=$repo/.cluster/bin:$PATH
  # Out of target/images, so that `make up` does not import it again and again.
  hack/cluster/oci-image.sh --import --out "$target_dir/soak-images" runway.local/hello:soak \
    "$target_dir/release/runway-hello" >/dev/null
else
  # Thousands of sockets on both ends (the activator started by the flood inherits the limit).
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
fi
if [ $flood = yes ] && [ $own_activator = yes ]; then
  exec "$target_dir/release/runway-soak" --activator-bin "$target_dir/release/runway-activator" "$@"
fi
exec "$target_dir/release/runway-soak" "$@"
