#!/usr/bin/env python3
"""Runs the benchmark scenarios against direct, activator and nginx targets and prints a Markdown report.

Placement on the 2-core machine: the proxy under test (activator or nginx, one worker each) is pinned to CPU 1;
the backends and the load generator (oha) share CPU 0. The direct baseline uses the same placement without a proxy.
"""

import argparse
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request



def free_addr():
    """A loopback address with a port nothing listens on now (others may run servers on this machine too)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


FAST_BACKEND, SLOW_BACKEND, ACTIVATOR, ACTIVATOR_ADMIN, NGINX_FAST, NGINX_SLOW = (free_addr() for _ in range(6))
FAST_HOST = "fast.bench"
SLOW_HOST = "slow.bench"
PROXY_CPU = "1"
LOAD_CPU = "0"

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  upstream fast {{ server {fast}; keepalive 256; }}
  upstream slow {{ server {slow}; keepalive 256; }}
  server {{
    listen {nginx_fast};
    location / {{ proxy_pass http://fast; proxy_http_version 1.1; proxy_set_header Connection ""; }}
  }}
  server {{
    listen {nginx_slow};
    location / {{ proxy_pass http://slow; proxy_http_version 1.1; proxy_set_header Connection ""; }}
  }}
}}
"""


def wait_for_port(addr, timeout=10.0):
    host, port = addr.rsplit(":", 1)
    deadline = time.time() + timeout
    import socket

    while time.time() < deadline:
        try:
            socket.create_connection((host, int(port)), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {addr}")


def start(cmd, cpu, **kwargs):
    return subprocess.Popen(["taskset", "-c", cpu, *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)


def oha(url, host, duration, rate=None, connections=50, out=None):
    cmd = ["taskset", "-c", LOAD_CPU, "oha", "--no-tui", "--output-format", "json", "-z", f"{duration}s",
           "-c", str(connections), "-H", f"Host: {host}", url]
    if rate:
        cmd[5:5] = ["-q", str(rate)]
    result = subprocess.run(cmd, check=True, capture_output=True, text=True)
    if out:
        out.write_text(result.stdout)
    data = json.loads(result.stdout)
    summary, pct = data["summary"], data["latencyPercentiles"]
    codes = data.get("statusCodeDistribution", {})
    ok = codes.get("200", 0)
    # Requests still running when the duration ends are reported as "aborted due to deadline": not errors.
    failures = {k: v for k, v in data.get("errorDistribution", {}).items() if "aborted due to deadline" not in k}
    errors = sum(v for k, v in codes.items() if k != "200") + sum(failures.values())
    return {
        "rps": summary["requestsPerSec"],
        "p50_ms": pct["p50"] * 1000,
        "p99_ms": pct["p99"] * 1000,
        "ok": ok,
        "errors": errors,
    }


def median_run(values):
    """Per metric, the median over the rounds (errors are summed)."""
    import statistics

    merged = {key: statistics.median(v[key] for v in values) for key in ("rps", "p50_ms", "p99_ms")}
    merged["errors"] = sum(v["errors"] for v in values)
    merged["ok"] = sum(v["ok"] for v in values)
    return merged


def proc_status_kib(pid, field):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--activator", required=True)
    parser.add_argument("--backend", required=True)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out-dir", required=True)
    args = parser.parse_args()
    out = pathlib.Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)

    procs = []
    try:
        procs.append(start([args.backend, FAST_BACKEND, "0"], LOAD_CPU))
        procs.append(start([args.backend, SLOW_BACKEND, "100"], LOAD_CPU))
        activator = start([args.activator, "--standalone", "--listen", ACTIVATOR, "--admin-listen", ACTIVATOR_ADMIN,
                           "--route", f"{FAST_HOST}={FAST_BACKEND}", "--route", f"{SLOW_HOST}={SLOW_BACKEND}"],
                          PROXY_CPU, env={**os.environ, "RUNWAY_LOG_LEVEL": "warn", "RUNWAY_INTERNAL_LISTEN": "127.0.0.1:0"})
        procs.append(activator)
        nginx_dir = pathlib.Path(tempfile.mkdtemp(prefix="runway-bench-nginx-"))
        (nginx_dir / "nginx.conf").write_text(NGINX_CONF.format(
            dir=nginx_dir, fast=FAST_BACKEND, slow=SLOW_BACKEND, nginx_fast=NGINX_FAST, nginx_slow=NGINX_SLOW))
        procs.append(start(["nginx", "-c", str(nginx_dir / "nginx.conf"), "-p", str(nginx_dir)], PROXY_CPU))
        for addr in (FAST_BACKEND, SLOW_BACKEND, ACTIVATOR, NGINX_FAST, NGINX_SLOW):
            wait_for_port(addr)
        for p in procs:
            if p.poll() is not None:
                raise SystemExit(f"{p.args} exited with {p.returncode}")

        targets = {
            "direct": {"fast": f"http://{FAST_BACKEND}/", "slow": f"http://{SLOW_BACKEND}/", "fh": FAST_BACKEND, "sh": SLOW_BACKEND},
            "activator": {"fast": f"http://{ACTIVATOR}/", "slow": f"http://{ACTIVATOR}/", "fh": FAST_HOST, "sh": SLOW_HOST},
            "nginx": {"fast": f"http://{NGINX_FAST}/", "slow": f"http://{NGINX_SLOW}/", "fh": NGINX_FAST, "sh": NGINX_SLOW},
        }
        d = args.duration
        for name, t in targets.items():
            oha(t["fast"], t["fh"], 2, connections=50)  # warm-up: connection pools, page cache
        # Scenarios run in rounds that interleave the targets, and the median round is reported: other work on
        # the machine then disturbs every target alike instead of whichever happened to run at the time.
        scenarios = [
            ("fixed", "fast", "fh", 1000, 50),
            ("slow", "slow", "sh", 1000, 200),
            ("uncapped", "fast", "fh", None, 64),
        ]
        runs = {}
        for scenario, url_key, host_key, rate, connections in scenarios:
            for round_ in range(args.rounds):
                for name, t in targets.items():
                    runs.setdefault((name, scenario), []).append(
                        oha(t[url_key], t[host_key], d, rate=rate, connections=connections,
                            out=out / f"{name}-{scenario}-{round_}.json"))
            if scenario == "slow":
                rss_at_1000 = proc_status_kib(activator.pid, "VmHWM")
        results = {key: median_run(values) for key, values in runs.items()}
        rss_after_all = proc_status_kib(activator.pid, "VmHWM")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()

    report(results, rss_at_1000, rss_after_all, d, args.rounds)


def report(r, rss_1000, rss_all, duration, rounds):
    def row(label, key, fmt):
        return f"| {label} | " + " | ".join(fmt(r[(n, key)]) for n in ("direct", "activator", "nginx")) + " |"

    lat = lambda x: f"{x['p50_ms']:.2f} / {x['p99_ms']:.2f}"
    print(f"{rounds} rounds of {duration} s per scenario and target, interleaved; medians of the rounds."
          " Latencies in ms (p50 / p99).\n")
    print("| scenario | direct | activator | nginx |")
    print("| --- | --- | --- | --- |")
    print(row("1,000 rps, fast backend: p50 / p99", "fixed", lat))
    print(row("1,000 rps, 100 ms backend: p50 / p99", "slow", lat))
    print(row("uncapped, 64 connections: rps", "uncapped", lambda x: f"{x['rps']:.0f}"))
    print(row("uncapped: p50 / p99", "uncapped", lat))
    print()
    for n in ("direct", "activator", "nginx"):
        errs = [r[(n, k)]["errors"] for k in ("fixed", "slow", "uncapped")]  # over all rounds
        print(f"- {n}: non-200 responses or errors (1,000 rps / 100 ms backend / uncapped): {errs[0]} / {errs[1]} / {errs[2]}")
    a, d, g = r[("activator", "fixed")], r[("direct", "fixed")], r[("nginx", "fixed")]
    sa, sd = r[("activator", "slow")], r[("direct", "slow")]
    ua, un = r[("activator", "uncapped")], r[("nginx", "uncapped")]
    print()
    print(f"- added p99 at 1,000 rps: activator {a['p99_ms'] - d['p99_ms']:+.2f} ms, nginx {g['p99_ms'] - d['p99_ms']:+.2f} ms (goal: activator <= 1 ms)")
    print(f"- added p99 at 1,000 rps with the 100 ms backend: activator {sa['p99_ms'] - sd['p99_ms']:+.2f} ms")
    print(f"- uncapped throughput, activator / nginx: {ua['rps'] / un['rps']:.2f} (goal >= 1.00); activator / direct: {ua['rps'] / r[('direct', 'uncapped')]['rps']:.2f}")
    print(f"- activator peak RSS after the 1,000 rps runs: {rss_1000 / 1024:.1f} MiB (goal <= 30 MiB); after all runs: {rss_all / 1024:.1f} MiB")


if __name__ == "__main__":
    sys.exit(main())
