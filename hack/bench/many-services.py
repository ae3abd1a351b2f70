#!/usr/bin/env python3
"""Scale benchmark (issue 11, item 3): N Runway Services on the local cluster.

Creates N Services (initial scale 0) through the API concurrently and measures:
- time from the last create until all are Ready, and p50/p95 of each Service's create-to-Ready time;
- the operator's and the activators' RSS and CPU while idle (from /proc: the local cluster runs pods on this host);
- the autoscaler tick's duration (the operator's autoscaler_tick_duration_seconds histogram);
- a cold start of one Service among the N against a cold start of a lone Service, in the same run.
Writes a JSON summary and, with --plot, a PNG of Ready Services over time.

  hack/bench/many-services.py --count 1000 --plot docs/img/many-services.png
"""

import argparse
import concurrent.futures
import json
import os
import pathlib
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

REPO = pathlib.Path(__file__).resolve().parents[2]
KUBECTL = [str(REPO / ".cluster/bin/kubectl"), "--kubeconfig", str(REPO / ".cluster/kubeconfig")]
INGRESS = "10.96.0.80"  # Traefik's Service IP on the local cluster (hack/cluster/lib.sh)
DOMAIN = "example.com"
MANY_NS = "bench-many"
SOLO_NS = "bench-solo"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def kubectl(*args, stdin=None):
    return subprocess.run(KUBECTL + list(args), input=stdin, capture_output=True, text=True, check=True).stdout


def service(name, namespace, image):
    return {
        "apiVersion": "serving.runway.dev/v1alpha1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "template": {"spec": {"containers": [{"image": image, "imagePullPolicy": "IfNotPresent"}]}},
            "containerConcurrency": 50,
            # Short windows, so that the cold-start rounds need not wait minutes for scale to zero.
            "scaling": {"initialScale": 0, "stableWindowSeconds": 6, "scaleToZeroGracePeriodSeconds": 0},
        },
    }


def ready_times(namespace):
    """Each Ready Service's name -> whether Ready, from one list."""
    items = json.loads(kubectl("get", "rsvc", "-n", namespace, "-o", "json"))["items"]
    ready = {}
    for item in items:
        conditions = item.get("status", {}).get("conditions", [])
        ready[item["metadata"]["name"]] = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
    return ready


def process_stats(pattern):
    """(pid, rss bytes, cpu seconds) of each process whose command line contains `pattern`."""
    found = []
    for proc in pathlib.Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            if not cmdline.startswith(pattern):
                continue
            stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            rss = int((proc / "statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            found.append((int(proc.name), rss, (int(stat[11]) + int(stat[12])) / CLK_TCK))
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
    return found


def idle_usage(seconds):
    """RSS and CPU share of a core of the operator and the activators over `seconds` of idleness."""
    names = {"operator": "/usr/local/bin/runway-operator", "activator": "/usr/local/bin/runway-activator"}
    before = {name: process_stats(pattern) for name, pattern in names.items()}
    time.sleep(seconds)
    usage = {}
    for name, pattern in names.items():
        after = {pid: (rss, cpu) for pid, rss, cpu in process_stats(pattern)}
        usage[name] = [
            {"pid": pid, "rss_mib": round(after[pid][0] / 2**20, 1), "cpu_percent": round(100 * (after[pid][1] - cpu) / seconds, 2)}
            for pid, _, cpu in before[name]
            if pid in after
        ]
    return usage


def tick_duration():
    """Mean autoscaler tick from the leading operator's histogram (sum / count), in ms."""
    pods = kubectl("get", "pods", "-n", "runway-system", "-l", "app.kubernetes.io/name=runway-operator",
                   "-o", "jsonpath={range .items[*]}{.status.podIP} {end}").split()
    for ip in pods:
        try:
            text = urllib.request.urlopen(f"http://{ip}:8080/metrics", timeout=5).read().decode()
        except OSError:
            continue
        values = {}
        for line in text.splitlines():
            for key in ("sum", "count"):
                if line.startswith(f"runway_operator_autoscaler_tick_duration_seconds_{key} "):
                    values[key] = float(line.split()[1])
        # Only the leader ticks; the standby's histogram is empty.
        if values.get("count"):
            return round(1000 * values["sum"] / values["count"], 2)
    return None


def has_pods(name, namespace):
    selector = f"serving.runway.dev/service={name}"
    return bool(kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "name").strip())


def cold_start(name, namespace, quiet, deadline=120):
    """Waits until every Service in `quiet` (name, namespace) has no pod, so that no other pod starts or stops on
    the node meanwhile, then times one request to `name` through the ingress (seconds to the response head)."""
    end = time.time() + deadline
    while any(has_pods(*other) for other in quiet):
        if time.time() > end:
            raise SystemExit(f"{quiet} did not scale to zero within {deadline}s")
        time.sleep(1)
    request = urllib.request.Request(f"http://{INGRESS}/", headers={"Host": f"{name}.{namespace}.{DOMAIN}"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as response:
        elapsed = time.perf_counter() - started
        response.read()
        if response.status != 200:
            raise SystemExit(f"cold start of {namespace}/{name} answered {response.status}")
    return elapsed


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=32, help="concurrent creates")
    parser.add_argument("--image", default=None, help="default: the hello image the cluster has")
    parser.add_argument("--idle-seconds", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3, help="cold starts of each kind")
    parser.add_argument("--plot", help="PNG of Ready Services over time")
    parser.add_argument("--out", default="many-services.json")
    args = parser.parse_args()
    image = args.image or json.loads(kubectl("get", "rsvc", "hello", "-n", "default", "-o", "json"))[
        "spec"]["template"]["spec"]["containers"][0]["image"]

    for namespace in (MANY_NS, SOLO_NS):
        subprocess.run(KUBECTL + ["delete", "namespace", namespace, "--wait=true"], capture_output=True)
        kubectl("create", "namespace", namespace)
    kubectl("apply", "-f", "-", stdin=json.dumps(service("solo", SOLO_NS, image)))

    names = [f"s{i:04d}" for i in range(args.count)]
    created = {}
    lock = threading.Lock()

    def create(name):
        kubectl("create", "-f", "-", stdin=json.dumps(service(name, MANY_NS, image)))
        with lock:
            created[name] = time.time()

    print(f"creating {args.count} Services with {args.workers} workers", file=sys.stderr)
    start = time.time()
    ready_at = {}
    samples = []
    memory = []  # (seconds since start, leading operator RSS MiB, largest activator RSS MiB)
    sampling = threading.Event()

    def sample_memory():
        while not sampling.wait(1):
            rss = {name: max((r for _, r, _ in process_stats(f"/usr/local/bin/runway-{name}")), default=0)
                   for name in ("operator", "activator")}
            memory.append((time.time() - start, rss["operator"] / 2**20, rss["activator"] / 2**20))

    def poll_ready():
        now = time.time()
        for name, ready in ready_times(MANY_NS).items():
            if ready and name not in ready_at:
                ready_at[name] = now
        samples.append((now - start, len(ready_at)))

    sampler = threading.Thread(target=sample_memory, daemon=True)
    sampler.start()
    with concurrent.futures.ThreadPoolExecutor(args.workers) as pool:
        futures = [pool.submit(create, name) for name in names]
        while not all(f.done() for f in futures):
            poll_ready()
            time.sleep(0.5)
        for future in futures:
            future.result()
    last_create = max(created.values())
    deadline = last_create + 600
    while len(ready_at) < args.count and time.time() < deadline:
        poll_ready()
        time.sleep(0.5)
    if len(ready_at) < args.count:
        raise SystemExit(f"only {len(ready_at)} of {args.count} Services Ready 600 s after the last create")
    per_service = [ready_at[n] - created[n] for n in names]
    result = {
        "count": args.count,
        "create_seconds": round(last_create - start, 1),
        "all_ready_after_last_create_seconds": round(max(ready_at.values()) - last_create, 1),
        "ready_p50_seconds": round(percentile(per_service, 50), 1),
        "ready_p95_seconds": round(percentile(per_service, 95), 1),
    }
    print(json.dumps(result), file=sys.stderr)

    result["idle"] = idle_usage(args.idle_seconds)
    sampling.set()
    result["autoscaler_tick_ms"] = tick_duration()
    print(json.dumps(result["idle"]), file=sys.stderr)

    solo, among = [], []
    both = [("solo", SOLO_NS), (names[len(names) // 2], MANY_NS)]
    for round_ in range(args.rounds):
        # Alternating which goes first, so that neither always follows the other's scale-down.
        for name, namespace in both if round_ % 2 == 0 else reversed(both):
            (solo if namespace == SOLO_NS else among).append(cold_start(name, namespace, both))
    result["cold_start_solo_seconds"] = [round(s, 3) for s in solo]
    result["cold_start_among_seconds"] = [round(s, 3) for s in among]
    result["cold_start_ratio_median"] = round(statistics.median(among) / statistics.median(solo), 2)
    pathlib.Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))

    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (ax, mem) = plt.subplots(2, 1, figsize=(7, 5.5), sharex=True)
        ax.plot([t for t, _ in samples], [n for _, n in samples], label="Services Ready")
        ax.axvline(last_create - start, color="grey", linestyle="--", label="last create")
        ax.set_ylabel("Services Ready")
        ax.set_title(f"{args.count} Services on one node (2 cores)")
        ax.legend(loc="lower right")
        mem.plot([t for t, _, _ in memory], [o for _, o, _ in memory], label="leading operator")
        mem.plot([t for t, _, _ in memory], [a for _, _, a in memory], label="largest activator")
        mem.axhline(60, color="tab:blue", linestyle=":", label="operator goal (60 MiB)")
        mem.axhline(40, color="tab:orange", linestyle=":", label="activator goal (40 MiB)")
        mem.axvline(last_create - start, color="grey", linestyle="--")
        mem.set_xlabel("seconds since the first create")
        mem.set_ylabel("RSS (MiB)")
        mem.legend(loc="lower right", fontsize="small")
        fig.tight_layout()
        fig.savefig(args.plot, dpi=110)


def clean_up():
    for namespace in (MANY_NS, SOLO_NS):
        subprocess.run(KUBECTL + ["delete", "namespace", namespace, "--wait=false"], capture_output=True)


if __name__ == "__main__":
    try:
        main()
    finally:
        # Also when a step failed: 1,000 Services left behind would skew whatever runs next.
        clean_up()
