#!/usr/bin/env bash
# Benchmarks the activator (standalone mode) against the same backend reached directly and through nginx, on
# loopback in one run. Writes a Markdown report to stdout (and JSON details to $OUT_DIR).
#
#   hack/bench/run.sh            # needs nginx and oha; installs nginx with apt and oha with cargo if missing
#   DURATION=5 ROUNDS=3 hack/bench/run.sh   (seconds per run, interleaved rounds; these are the defaults)
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
  --duration "${DURATION:-5}" --rounds "${ROUNDS:-3}" \
  --out-dir "${OUT_DIR:-$(mktemp -d)}"
