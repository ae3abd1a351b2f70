#!/usr/bin/env python3
"""Draws the warm-zero plot (docs/img/warm-zero.png) from the JSON the warm-zero benchmark writes.

    hack/bench/warm-zero/run.sh   (runs the benchmark, then this script with matplotlib's venv)
    plot.py [target/bench/warm-zero.json] [docs/img/warm-zero.png]

Every request is a dot at its time to first byte, on a log scale, one row per kind of request (warm, resumed from
frozen, cold start), with each row's median marked.
"""

import json
import math
import pathlib
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

repo = pathlib.Path(__file__).resolve().parents[3]
source = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else repo / "target/bench/warm-zero.json"
output = pathlib.Path(sys.argv[2]) if len(sys.argv) > 2 else repo / "docs/img/warm-zero.png"
report = json.loads(source.read_text())

rows = [
    ("warm", report["warm_ms"]),
    ("resumed from frozen", report["resumed_ms"]),
    ("cold start", report["cold_ms"]),
]
fig, ax = plt.subplots(figsize=(8, 2.8))
for y, (name, values) in enumerate(rows):
    ax.scatter(values, [y] * len(values), s=18, alpha=0.6)
    # Nearest rank, as the benchmark's table computes it.
    median = sorted(values)[max(1, math.ceil(len(values) / 2)) - 1]
    ax.plot([median, median], [y - 0.3, y + 0.3], color="black")
    ax.annotate(f"p50 {median:.1f} ms", (median, y + 0.32), ha="center", fontsize=8)
ax.set_xscale("log")
ax.set_yticks(range(len(rows)), [name for name, _ in rows])
ax.set_ylim(-0.6, len(rows) - 0.2)
ax.set_xlabel("time to first byte (ms, log scale)")
ax.set_title(
    f"Same app, one run: {len(report['resumed_ms'])} resumes, {len(report['cold_ms'])} cold starts; "
    f"CPU while frozen {report['frozen_cpu_ms_per_s']:.3f} ms/s",
    fontsize=9,
)
fig.tight_layout()
fig.savefig(output, dpi=120)
print(f"wrote {output}")
