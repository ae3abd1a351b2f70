#!/usr/bin/env bash
# The warm-zero benchmark (docs/benchmarks.md, "Warm zero") on the local cluster after `make up`: time to first byte
# of a warm request, of a request to a frozen pod and of a cold start, for the same app in one run, and the app's CPU
# while frozen; then the plot docs/img/warm-zero.png.
#   hack/bench/warm-zero/run.sh            ROUNDS=20 warm and frozen rounds, COLD_ROUNDS=5 cold starts
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
cd "$repo"
export KUBECONFIG=${KUBECONFIG:-$repo/.cluster/kubeconfig}
cargo test -q -p runway-tests --features cluster --test bench_warm_zero -- --ignored --nocapture
venv=${PLOT_VENV:-$HOME/.cache/runway/plot-venv}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q matplotlib
fi
"$venv/bin/python" "$here/plot.py" target/bench/warm-zero.json docs/img/warm-zero.png
