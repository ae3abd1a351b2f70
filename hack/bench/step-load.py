#!/usr/bin/env python3
"""Autoscaler reaction benchmark (issue 11, item 4) on the local cluster.

Runs a step load against one Service (containerConcurrency 10, target utilisation 70%, so 7 requests in flight
per pod): 0 -> 20 -> 60 -> 10 -> 0 clients, each client sending `/sleep?ms=SLEEP` requests back to back through the
ingress. Every second it samples the pods the formula needs (ceil(clients / 7)), the pods the autoscaler asks for
(the revision's Deployment spec.replicas), the ready pods, and the p99 latency of the requests finished in that
second. Prints the reaction figures, writes a CSV and, with --plot, a PNG.

  hack/bench/step-load.py --plot docs/img/step-load.png
"""

import argparse
import csv
import json
import math
import pathlib
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

REPO = pathlib.Path(__file__).resolve().parents[2]
KUBECTL = [str(REPO / ".cluster/bin/kubectl"), "--kubeconfig", str(REPO / ".cluster/kubeconfig")]
INGRESS = "10.96.0.80"  # Traefik's Service IP on the local cluster (hack/cluster/lib.sh)
NAMESPACE = "bench-step"
NAME = "step"
PER_POD = 7  # containerConcurrency 10 x 70%


def kubectl(*args, stdin=None):
    return subprocess.run(KUBECTL + list(args), input=stdin, capture_output=True, text=True, check=True).stdout


class Load:
    """Clients that each send one request after another while their number is at most `wanted`."""

    def __init__(self, url, host):
        self.url, self.host = url, host
        self.wanted = 0
        self.finished = []  # (finish time, latency seconds, status)
        self.lock = threading.Lock()
        self.threads = []
        self.stop = False

    def set_clients(self, n):
        self.wanted = n
        while len(self.threads) < n:
            index = len(self.threads)
            thread = threading.Thread(target=self.client, args=(index,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def client(self, index):
        while not self.stop:
            if index >= self.wanted:
                time.sleep(0.05)
                continue
            request = urllib.request.Request(self.url, headers={"Host": self.host})
            started = time.perf_counter()
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    response.read()
                    status = response.status
            except urllib.error.HTTPError as error:
                status = error.code
            except OSError:
                status = 0
            with self.lock:
                self.finished.append((time.time(), time.perf_counter() - started, status))


def deployment_state():
    """(spec.replicas, readyReplicas) of the Service's latest ready revision."""
    service = json.loads(kubectl("get", "rsvc", NAME, "-n", NAMESPACE, "-o", "json"))
    revision = service.get("status", {}).get("latestReadyRevisionName") or NAME
    deployment = json.loads(kubectl("get", "deployment", revision, "-n", NAMESPACE, "-o", "json"))
    return deployment["spec"].get("replicas", 0), deployment.get("status", {}).get("readyReplicas", 0)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", default="0:10,20:60,60:60,10:60,0:150", help="clients:seconds,...")
    parser.add_argument("--sleep-ms", type=int, default=200)
    parser.add_argument("--csv", default="step-load.csv")
    parser.add_argument("--plot")
    args = parser.parse_args()
    steps = [tuple(int(x) for x in step.split(":")) for step in args.steps.split(",")]

    image = json.loads(kubectl("get", "rsvc", "hello", "-n", "default", "-o", "json"))["spec"]["template"]["spec"][
        "containers"][0]["image"]
    subprocess.run(KUBECTL + ["delete", "namespace", NAMESPACE, "--wait=true"], capture_output=True)
    kubectl("create", "namespace", NAMESPACE)
    service = {
        "apiVersion": "serving.runway.dev/v1alpha1",
        "kind": "Service",
        "metadata": {"name": NAME, "namespace": NAMESPACE},
        "spec": {
            "template": {"spec": {"containers": [{"image": image, "imagePullPolicy": "IfNotPresent"}]}},
            "containerConcurrency": 10,
            "scaling": {"initialScale": 0, "targetUtilizationPercentage": 70},
        },
    }
    kubectl("apply", "-f", "-", stdin=json.dumps(service))
    kubectl("wait", f"rsvc/{NAME}", "-n", NAMESPACE, "--for=condition=Ready", "--timeout=120s")

    load = Load(f"http://{INGRESS}/sleep?ms={args.sleep_ms}", f"{NAME}.{NAMESPACE}.example.com")
    rows = []
    start = time.time()
    schedule = []
    at = 0
    for clients, seconds in steps:
        schedule.append((at, clients))
        at += seconds
    total = at
    print(f"step load for {total} s: {steps}", file=sys.stderr)
    while (elapsed := time.time() - start) < total:
        clients = [c for t, c in schedule if t <= elapsed][-1]
        load.set_clients(clients)
        desired, ready = deployment_state()
        second_ago = time.time() - 1
        with load.lock:
            recent = [latency for finish, latency, _ in load.finished if finish >= second_ago]
        p99 = sorted(recent)[max(0, math.ceil(0.99 * len(recent)) - 1)] if recent else None
        rows.append({
            "t": round(elapsed, 1), "clients": clients, "wanted": math.ceil(clients / PER_POD),
            "desired": desired, "ready": ready, "p99_ms": round(1000 * p99, 1) if p99 is not None else "",
        })
        time.sleep(max(0.0, 1 - (time.time() - start - elapsed)))
    load.stop = True
    failed = sum(1 for _, _, status in load.finished if status != 200)

    with open(args.csv, "w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    # Reaction per step: seconds until ready pods reach the wanted count, and the overshoot of desired over it.
    report = {"requests": len(load.finished), "failed": failed, "steps": []}
    for index, (begin, clients) in enumerate(schedule):
        end = schedule[index + 1][0] if index + 1 < len(schedule) else total
        window = [r for r in rows if begin <= r["t"] < end]
        wanted = math.ceil(clients / PER_POD)
        reached = next((r["t"] - begin for r in window if r["ready"] >= wanted and r["desired"] >= wanted), None)
        if wanted == 0:
            reached = next((r["t"] - begin for r in window if r["desired"] == 0 and r["ready"] == 0), None)
        peak = max((r["desired"] for r in window), default=0)
        report["steps"].append({
            "clients": clients, "wanted": wanted, "seconds_to_reach": reached, "peak_desired": peak,
            "overshoot_percent": round(100 * (peak - wanted) / wanted, 1) if wanted else None,
        })
    print(json.dumps(report, indent=2))

    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (pods, latency) = plt.subplots(2, 1, figsize=(8, 5), sharex=True, height_ratios=[2, 1])
        t = [r["t"] for r in rows]
        pods.step(t, [r["wanted"] for r in rows], where="post", label="pods the load needs", linestyle="--")
        pods.step(t, [r["desired"] for r in rows], where="post", label="pods desired (autoscaler)")
        pods.step(t, [r["ready"] for r in rows], where="post", label="pods ready")
        pods.set_ylabel("pods")
        pods.legend(loc="upper right")
        pods.set_title("Step load 0 → 20 → 60 → 10 → 0 clients, containerConcurrency 10, target 70%")
        latency.plot([r["t"] for r in rows if r["p99_ms"] != ""], [r["p99_ms"] for r in rows if r["p99_ms"] != ""],
                     color="tab:red")
        latency.set_ylabel("p99 ms")
        latency.set_xlabel("seconds")
        fig.tight_layout()
        fig.savefig(args.plot, dpi=110)

    subprocess.run(KUBECTL + ["delete", "namespace", NAMESPACE, "--wait=false"], capture_output=True)


if __name__ == "__main__":
    main()
