#!/usr/bin/env python3
"""Draws a trace as a timeline (docs/img/cold-start-trace.png) from the spans the e2e test t41 exported.

    cargo test -p runway-tests --features cluster --test e2e_observability -- t41 --test-threads=1
    hack/bench/plot-trace.py [target/observability/cold-start-trace.json] [docs/img/cold-start-trace.png]

Needs matplotlib (`python3 -m venv ~/.cache/runway/plot-venv && ~/.cache/runway/plot-venv/bin/pip install
matplotlib`, then run this script with that venv's python). The input is a JSON list of spans, each with `name`,
`span_id`, `parent_span_id` (empty for a root), `start_unix_nano` and `end_unix_nano`; one bar per span, children
under their parent, in milliseconds from the first span's start.
"""

import json
import pathlib
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

repo = pathlib.Path(__file__).resolve().parents[2]
source = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else repo / "target/observability/cold-start-trace.json"
output = pathlib.Path(sys.argv[2]) if len(sys.argv) > 2 else repo / "docs/img/cold-start-trace.png"

spans = json.loads(source.read_text())
by_id = {span["span_id"]: span for span in spans}
children = {}
for span in spans:
    parent = span["parent_span_id"] if span["parent_span_id"] in by_id else ""
    children.setdefault(parent, []).append(span)
for siblings in children.values():
    siblings.sort(key=lambda span: span["start_unix_nano"])

# Depth-first: each span, then its children, one row each.
rows = []


def walk(parent, depth):
    for span in children.get(parent, []):
        rows.append((span, depth))
        walk(span["span_id"], depth + 1)


walk("", 0)
origin = min(span["start_unix_nano"] for span in spans)


def ms(nanos):
    return (nanos - origin) / 1e6


fig, ax = plt.subplots(figsize=(10, 0.45 * len(rows) + 1.2))
colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b"]
for index, (span, depth) in enumerate(rows):
    start, end = ms(span["start_unix_nano"]), ms(span["end_unix_nano"])
    ax.barh(index, max(end - start, 0.3), left=start, color=colours[depth % len(colours)], height=0.6)
    ax.text(end + 8, index, f"{end - start:.0f} ms", va="center", fontsize=8)
ax.set_yticks(range(len(rows)))
ax.set_yticklabels(["  " * depth + span["name"] for span, depth in rows], fontsize=9)
ax.invert_yaxis()
ax.set_xlabel("milliseconds since the request reached the activator")
ax.set_title("A cold start, as the activator traces it")
ax.grid(axis="x", alpha=0.3)
fig.tight_layout()
output.parent.mkdir(parents=True, exist_ok=True)
fig.savefig(output, dpi=110)
print(f"wrote {output}")
