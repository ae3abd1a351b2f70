#!/usr/bin/env bash
# Benchmarks the activator (standalone mode) against the same backend reached directly and through nginx, on
# loopback in one run. Writes a Markdown report to stdout (and JSON details to $OUT_DIR).
#
#   hack/bench/run.sh            # needs nginx and oha; installs nginx with apt and oha with cargo if missing
#   DURATION=5 ROUNDS=3 WORKERS=1 hack/bench/run.sh   (seconds per run, interleaved rounds, workers per proxy:
#                                                      1 or 2; these are the defaults)
#   SCENARIOS=uncapped COMPARE=path/to/other/runway-activator hack/bench/run.sh   (a subset of fixed,slow,uncapped;
#                                                      an A/B run against another activator build)
#   ARGS="--access-log-percent 100" COMPARE=path/to/same/runway-activator COMPARE_ARGS="--access-log-percent 0" \
#     hack/bench/run.sh                                (extra flags of each activator: an A/B run of one build)
# OUT_DIR/summary.json holds every round; hack/bench/plot-proxy.py draws docs/img/proxy.png from it.
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$repo"

if ! command -v nginx >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null
fi
if ! command -v oha >/dev/null && [ ! -x /opt/oha/bin/oha ]; then
  cargo install oha --locked --root /opt/oha
fi
export PATH="/opt/oha/bin:$PATH"

cargo build --release -q -p runway-activator --bin runway-activator --example bench_backend
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
exec python3 "$repo/hack/bench/bench.py" \
  --activator "$target_dir/release/runway-activator" \
  --backend "$target_dir/release/examples/bench_backend" \
  --duration "${DURATION:-5}" --rounds "${ROUNDS:-3}" --workers "${WORKERS:-1}" \
  --scenarios "${SCENARIOS:-fixed,slow,uncapped}" ${COMPARE:+--compare "$COMPARE"} \
  "--args=${ARGS:-}" "--compare-args=${COMPARE_ARGS:-}" \
  --out-dir "${OUT_DIR:-$(mktemp -d)}"
