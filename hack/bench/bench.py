#!/usr/bin/env python3
"""Runs the benchmark scenarios against direct, activator and nginx targets and prints a Markdown report.

Placement on the 2-core machine: with one worker each (the default), the proxy under test (activator or nginx) is
pinned to CPU 1 and the backends and the load generator (oha) share CPU 0. With `--workers 2` each proxy runs two
workers on both CPUs, which it then shares with the backends and oha. The direct baseline uses the same placement
without a proxy. `--compare BINARY` adds a second activator build as target "activator-b", interleaved with the
others (A/B runs); the per-round ratios to nginx measured in the same round give the spread.
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


FAST_BACKEND, SLOW_BACKEND, ACTIVATOR, ACTIVATOR_ADMIN, ACTIVATOR_B, ACTIVATOR_B_ADMIN, NGINX_FAST, NGINX_SLOW = (
    free_addr() for _ in range(8))
# Services fast and slow in namespace bench, reached under the activator's domain (external entry point).
DOMAIN = "example.com"
FAST_SERVICE, SLOW_SERVICE = "fast.bench", "slow.bench"
FAST_HOST, SLOW_HOST = f"{FAST_SERVICE}.{DOMAIN}", f"{SLOW_SERVICE}.{DOMAIN}"
PROXY_CPU = "1"
LOAD_CPU = "0"
ALL_CPUS = "0,1"
SCENARIOS = ("fixed", "slow", "uncapped")

NGINX_CONF = """
worker_processes {workers};
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


def check_ok(url, host):
    """Fails the run at once if a target does not answer 200 (a wrong route would otherwise measure 404s)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Host": host}), timeout=5) as response:
            response.read()
    except OSError as error:
        raise SystemExit(f"{url} (Host: {host}) does not answer 200: {error}")


def start(cmd, cpu, **kwargs):
    return subprocess.Popen(["taskset", "-c", cpu, *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)


def oha(url, host, duration, rate=None, connections=50, out=None, load_cpus=LOAD_CPU):
    cmd = ["taskset", "-c", load_cpus, "oha", "--no-tui", "--output-format", "json", "-z", f"{duration}s",
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
    """Per metric, the median over the rounds (errors are summed); the rounds themselves are kept too."""
    import statistics

    merged = {key: statistics.median(v[key] for v in values) for key in ("rps", "p50_ms", "p99_ms")}
    merged["errors"] = sum(v["errors"] for v in values)
    merged["ok"] = sum(v["ok"] for v in values)
    merged["rounds"] = values
    return merged


def start_activator(binary, listen, admin, cpus, workers, extra):
    return start([binary, "--standalone", "--listen", listen, "--admin-listen", admin, "--worker-threads", str(workers),
                  "--domain", DOMAIN, "--route", f"{FAST_SERVICE}={FAST_BACKEND}", "--route", f"{SLOW_SERVICE}={SLOW_BACKEND}",
                  *extra],
                 cpus, env={**os.environ, "RUNWAY_LOG_LEVEL": "warn", "RUNWAY_INTERNAL_LISTEN": "127.0.0.1:0"})


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
    parser.add_argument("--compare", help="a second activator binary, run as target activator-b")
    parser.add_argument("--args", default="", help="extra flags of the activator (space-separated)")
    parser.add_argument("--compare-args", default="", help="extra flags of activator-b (space-separated)")
    parser.add_argument("--workers", type=int, choices=(1, 2), default=1, help="workers per proxy")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated subset of " + ",".join(SCENARIOS))
    args = parser.parse_args()
    scenario_names = [name for name in args.scenarios.split(",") if name]
    if not set(scenario_names) <= set(SCENARIOS):
        raise SystemExit(f"unknown scenario in {args.scenarios}")
    proxy_cpus = PROXY_CPU if args.workers == 1 else ALL_CPUS
    load_cpus = LOAD_CPU if args.workers == 1 else ALL_CPUS
    out = pathlib.Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)

    procs = []
    try:
        procs.append(start([args.backend, FAST_BACKEND, "0"], load_cpus))
        procs.append(start([args.backend, SLOW_BACKEND, "100"], load_cpus))
        activator = start_activator(args.activator, ACTIVATOR, ACTIVATOR_ADMIN, proxy_cpus, args.workers, args.args.split())
        procs.append(activator)
        listening = [FAST_BACKEND, SLOW_BACKEND, ACTIVATOR, NGINX_FAST, NGINX_SLOW]
        if args.compare:
            procs.append(start_activator(args.compare, ACTIVATOR_B, ACTIVATOR_B_ADMIN, proxy_cpus, args.workers,
                                         args.compare_args.split()))
            listening.append(ACTIVATOR_B)
        nginx_dir = pathlib.Path(tempfile.mkdtemp(prefix="runway-bench-nginx-"))
        (nginx_dir / "nginx.conf").write_text(NGINX_CONF.format(
            dir=nginx_dir, fast=FAST_BACKEND, slow=SLOW_BACKEND, nginx_fast=NGINX_FAST, nginx_slow=NGINX_SLOW,
            workers=args.workers))
        procs.append(start(["nginx", "-c", str(nginx_dir / "nginx.conf"), "-p", str(nginx_dir)], proxy_cpus))
        for addr in listening:
            wait_for_port(addr)
        for p in procs:
            if p.poll() is not None:
                raise SystemExit(f"{p.args} exited with {p.returncode}")

        targets = {
            "direct": {"fast": f"http://{FAST_BACKEND}/", "slow": f"http://{SLOW_BACKEND}/", "fh": FAST_BACKEND, "sh": SLOW_BACKEND},
            "activator": {"fast": f"http://{ACTIVATOR}/", "slow": f"http://{ACTIVATOR}/", "fh": FAST_HOST, "sh": SLOW_HOST},
            "nginx": {"fast": f"http://{NGINX_FAST}/", "slow": f"http://{NGINX_SLOW}/", "fh": NGINX_FAST, "sh": NGINX_SLOW},
        }
        if args.compare:
            targets["activator-b"] = {"fast": f"http://{ACTIVATOR_B}/", "slow": f"http://{ACTIVATOR_B}/", "fh": FAST_HOST,
                                      "sh": SLOW_HOST}
        for t in targets.values():
            check_ok(t["fast"], t["fh"])
            check_ok(t["slow"], t["sh"])
        d = args.duration
        for name, t in targets.items():
            oha(t["fast"], t["fh"], 2, connections=50, load_cpus=load_cpus)  # warm-up: connection pools, page cache
        # Scenarios run in rounds that interleave the targets, and the median round is reported: other work on
        # the machine then disturbs every target alike instead of whichever happened to run at the time.
        scenarios = [s for s in [
            ("fixed", "fast", "fh", 1000, 50),
            ("slow", "slow", "sh", 1000, 200),
            ("uncapped", "fast", "fh", None, 64),
        ] if s[0] in scenario_names]
        runs = {}
        rss_at_1000 = None
        for scenario, url_key, host_key, rate, connections in scenarios:
            for round_ in range(args.rounds):
                for name, t in targets.items():
                    runs.setdefault((name, scenario), []).append(
                        oha(t[url_key], t[host_key], d, rate=rate, connections=connections, load_cpus=load_cpus,
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

    summary = {"workers": args.workers, "rounds": args.rounds, "duration": d, "rss_at_1000_kib": rss_at_1000,
               "rss_after_all_kib": rss_after_all,
               "results": {f"{name}/{scenario}": value for (name, scenario), value in results.items()}}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    report(results, list(targets), scenario_names, rss_at_1000, rss_after_all, d, args.rounds, args.workers)
    print(f"\nDetails: {out} (summary.json: all rounds)")


def ratio_spread(r, name, scenario):
    """Per-round throughput ratios to nginx (same round): median, min and max."""
    import statistics

    ratios = [a["rps"] / n["rps"] for a, n in zip(r[(name, scenario)]["rounds"], r[("nginx", scenario)]["rounds"])]
    return statistics.median(ratios), min(ratios), max(ratios)


def report(r, names, scenarios, rss_1000, rss_all, duration, rounds, workers):
    def row(label, key, fmt):
        return f"| {label} | " + " | ".join(fmt(r[(n, key)]) for n in names) + " |"

    lat = lambda x: f"{x['p50_ms']:.2f} / {x['p99_ms']:.2f}"
    print(f"{rounds} rounds of {duration} s per scenario and target, interleaved; medians of the rounds; {workers}"
          " worker(s) per proxy. Latencies in ms (p50 / p99).\n")
    print("| scenario | " + " | ".join(names) + " |")
    print("| --- |" + " --- |" * len(names))
    rows = {
        "fixed": [("1,000 rps, fast backend: p50 / p99", lat)],
        "slow": [("1,000 rps, 100 ms backend: p50 / p99", lat)],
        "uncapped": [("uncapped, 64 connections: rps", lambda x: f"{x['rps']:.0f}"), ("uncapped: p50 / p99", lat)],
    }
    for scenario in scenarios:
        for label, fmt in rows[scenario]:
            print(row(label, scenario, fmt))
    print()
    for n in names:
        errs = " / ".join(str(r[(n, k)]["errors"]) for k in scenarios)  # over all rounds
        print(f"- {n}: non-200 responses or errors ({' / '.join(scenarios)}): {errs}")
    print()
    activators = [n for n in names if n.startswith("activator")]
    for n in activators:
        if "fixed" in scenarios:
            a, d, g = r[(n, "fixed")], r[("direct", "fixed")], r[("nginx", "fixed")]
            print(f"- {n}: added p99 at 1,000 rps: {a['p99_ms'] - d['p99_ms']:+.2f} ms, nginx {g['p99_ms'] - d['p99_ms']:+.2f} ms (goal: activator <= 1 ms)")
        if "slow" in scenarios:
            sa, sd = r[(n, "slow")], r[("direct", "slow")]
            print(f"- {n}: added p99 at 1,000 rps with the 100 ms backend: {sa['p99_ms'] - sd['p99_ms']:+.2f} ms")
        if "uncapped" in scenarios:
            median, low, high = ratio_spread(r, n, "uncapped")
            direct = r[(n, "uncapped")]["rps"] / r[("direct", "uncapped")]["rps"]
            print(f"- {n}: uncapped throughput / nginx, per round: median {median:.2f}, range {low:.2f}-{high:.2f} (goal >= 1.00); / direct: {direct:.2f}")
    if rss_1000 is not None:
        print(f"- activator peak RSS after the 1,000 rps runs: {rss_1000 / 1024:.1f} MiB (goal <= 30 MiB); after all runs: {rss_all / 1024:.1f} MiB")
    else:
        print(f"- activator peak RSS after all runs: {rss_all / 1024:.1f} MiB (goal <= 30 MiB)")


if __name__ == "__main__":
    sys.exit(main())
