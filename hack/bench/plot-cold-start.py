#!/usr/bin/env python3
"""Draws the cold-start timeline (docs/img/cold-start-timeline.png) from the CSV the cold-start benchmark writes.

    ROUNDS=8 cargo test -p runway-tests --features cluster --test bench_cold_start -- --ignored --nocapture
    hack/bench/plot-cold-start.py [target/bench/cold-start-hops.csv] [docs/img/cold-start-timeline.png]

Needs matplotlib (`python3 -m venv ~/.cache/runway/plot-venv && ~/.cache/runway/plot-venv/bin/pip install
matplotlib`, then run this script with that venv's python). One row per round; each hop is a marker at its
milliseconds after the request, so the gaps between hops read as distances.
"""

import collections
import csv
import pathlib
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

repo = pathlib.Path(__file__).resolve().parents[2]
source = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else repo / "target/bench/cold-start-hops.csv"
output = pathlib.Path(sys.argv[2]) if len(sys.argv) > 2 else repo / "docs/img/cold-start-timeline.png"

rounds = collections.defaultdict(dict)
hops = []
with source.open() as f:
    for row in csv.DictReader(f):
        rounds[int(row["round"])][row["hop"]] = int(row["ms"])
        if row["hop"] not in hops:
            hops.append(row["hop"])

fig, ax = plt.subplots(figsize=(10, 0.45 * len(rounds) + 2))
markers = "os^vD<>pP*"
for i, hop in enumerate(hops):
    xs = [rounds[r][hop] for r in sorted(rounds) if hop in rounds[r]]
    ys = [r for r in sorted(rounds) if hop in rounds[r]]
    ax.scatter(xs, ys, label=hop, marker=markers[i % len(markers)], s=40, zorder=3)
for r in sorted(rounds):
    ax.plot([0, rounds[r].get("response head", 0)], [r, r], color="lightgray", zorder=1)
ax.set_xlabel("milliseconds after the request was sent")
ax.set_ylabel("round")
ax.set_yticks(sorted(rounds))
ax.invert_yaxis()
ax.set_title("Cold start through the activator, hop by hop (local cluster)")
ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=4, fontsize="small")
ax.grid(axis="x", linestyle=":")
fig.tight_layout()
output.parent.mkdir(parents=True, exist_ok=True)
fig.savefig(output, dpi=110)
print(f"wrote {output}")
