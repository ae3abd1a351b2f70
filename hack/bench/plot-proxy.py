#!/usr/bin/env python3
"""Draws the proxy benchmark chart (docs/img/proxy.png) from the summary.json files hack/bench/run.sh writes.

    OUT_DIR=target/bench/proxy-1 WORKERS=1 hack/bench/run.sh
    OUT_DIR=target/bench/proxy-2 WORKERS=2 hack/bench/run.sh
    ~/.cache/runway/plot-venv/bin/python hack/bench/plot-proxy.py \\
        target/bench/proxy-1/summary.json target/bench/proxy-2/summary.json [docs/img/proxy.png]

Left: uncapped throughput per target, one group per worker count; bars are the median round, whiskers the lowest
and highest round. Right: each round's activator / nginx throughput ratio (both measured in the same round), with
the goal of 1.0.
"""

import json
import pathlib
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

repo = pathlib.Path(__file__).resolve().parents[2]
args = sys.argv[1:]
output = pathlib.Path(args.pop()) if args and args[-1].endswith(".png") else repo / "docs/img/proxy.png"
if not args:
    raise SystemExit(__doc__)
summaries = [json.loads(pathlib.Path(path).read_text()) for path in args]

targets = [t for t in ("direct", "activator", "activator-b", "nginx")
           if any(f"{t}/uncapped" in s["results"] for s in summaries)]
colours = {"direct": "#9e9e9e", "activator": "#1f77b4", "activator-b": "#aec7e8", "nginx": "#2ca02c"}

fig, (bars, ratios) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 2]})
width = 0.8 / len(targets)
for g, summary in enumerate(summaries):
    for i, target in enumerate(targets):
        result = summary["results"].get(f"{target}/uncapped")
        if result is None:
            continue
        rounds = [r["rps"] for r in result["rounds"]]
        median = result["rps"]
        x = g + (i - (len(targets) - 1) / 2) * width
        bars.bar(x, median, width, color=colours[target], label=target if g == 0 else None,
                 yerr=[[median - min(rounds)], [max(rounds) - median]], capsize=3)
        bars.text(x, median / 2, f"{median / 1000:.0f}k", ha="center", va="center", fontsize=8, rotation=90)
bars.set_xticks(range(len(summaries)), [f"{s['workers']} worker(s) per proxy" for s in summaries])
bars.set_ylabel("requests/s (uncapped, 64 connections)")
bars.set_title("Throughput: median round, whiskers min-max")
bars.legend(fontsize=8)

for g, summary in enumerate(summaries):
    nginx = [r["rps"] for r in summary["results"]["nginx/uncapped"]["rounds"]]
    for i, target in enumerate(t for t in targets if t.startswith("activator")):
        result = summary["results"].get(f"{target}/uncapped")
        if result is None:
            continue
        values = [a["rps"] / n for a, n in zip(result["rounds"], nginx)]
        x = g + (i - 0.5) * 0.3 if "activator-b" in targets else g
        ratios.scatter([x] * len(values), values, color=colours[target], label=target if g == 0 else None, zorder=3)
ratios.axhline(1.0, color="#d62728", linestyle="--", label="goal (= nginx)")
ratios.set_xticks(range(len(summaries)), [f"{s['workers']} worker(s)" for s in summaries])
ratios.set_xlim(-0.6, len(summaries) - 0.4)
ratios.set_ylabel("activator / nginx, per round")
ratios.set_title("Ratio to nginx in the same round")
ratios.legend(fontsize=8)

fig.tight_layout()
output.parent.mkdir(parents=True, exist_ok=True)
fig.savefig(output, dpi=110)
print(f"wrote {output}")
