#!/usr/bin/python3
"""Control plane benchmark: config convergence at scale (issue 4).

    make bench                  # runs this after bench/run.py
    bench/control_bench.py --gyrus ./build/gyrus [--proxies 1000 --services 10000 --instances 10]

One `gyrus control` (SQLite store) holds a mesh of SERVICES clusters with INSTANCES static
instances each (10,000 / 100,000 by default) and PROXIES proxies (1,000), each with a
listener, a domain and 10 routes to 10 clusters of its own. PROXIES simulated proxies
long-poll their views over keep-alive connections (asyncio, raw sockets, the xds protocol of
docs/internals/xds.md, ACKing each version). Then, in ROUNDS rounds, one `POST /v1.0/apply`
changes one cluster of each of AFFECTED proxies (100), and the time from sending the apply to
each affected proxy holding the new version is measured (p50/p99 over all rounds), together
with how many unaffected proxies were woken (should be none), and the control plane's RSS and
CPU. Also: a single-object PUT reaching its one proxy, and the initial load.

Writes bench/control_results.json and docs/BENCHMARKS-control.md (separate from the proxy
benchmark's files, which bench/run.py regenerates). Every wait has a timeout; about 1-3 min.
Standard library only.
"""
import argparse
import asyncio
import json
import os
import platform
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
ROUTES_PER_PROXY = 10
ETCD = "/usr/bin/etcd"


def log(msg):
    print(f"[control-bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, timeout=300):
    data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
    req = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def cluster(s, instances, extra_port=None):
    inst = [{"host": f"10.{s // 250 % 250}.{s % 250}.{i + 1}", "port": 8080} for i in range(instances)]
    if extra_port is not None:
        inst.append({"host": "10.255.255.1", "port": extra_port})
    return {"kind": "cluster", "cluster_key": f"svc-{s}", "name": f"svc-{s}", "zone_key": "bench",
            "instances": inst}


def build_mesh(services, proxies, instances):
    objs = [{"kind": "zone", "zone_key": "bench", "name": "bench"}]
    objs += [cluster(s, instances) for s in range(services)]
    for p in range(proxies):
        port = 10000 + p % 50000
        objs += [
            {"kind": "domain", "domain_key": f"d-{p}", "name": "*", "port": port, "zone_key": "bench"},
            {"kind": "listener", "listener_key": f"l-{p}", "name": f"l-{p}", "ip": "0.0.0.0", "port": port,
             "domain_keys": [f"d-{p}"], "zone_key": "bench"},
            {"kind": "proxy", "proxy_key": f"p-{p}", "name": f"proxy-{p}", "zone_key": "bench",
             "listener_keys": [f"l-{p}"]},
        ]
        for r in range(ROUTES_PER_PROXY):
            objs.append({"kind": "route", "route_key": f"r-{p}-{r}", "domain_key": f"d-{p}", "zone_key": "bench",
                         "route_match": {"path": f"/svc{r}/", "match_type": "prefix"},
                         "rules": [{"constraints": {"light": [
                             {"cluster_key": f"svc-{clusters_of(p, services)[r]}", "weight": 1}]}}]})
    return objs


def clusters_of(p, services):
    """The clusters proxy p's routes reach: 10 of its own when there are enough services."""
    return [(p * ROUTES_PER_PROXY + r) % services for r in range(ROUTES_PER_PROXY)]


def proc_stats(pid):
    with open(f"/proc/{pid}/status") as f:
        st = dict(line.split(":", 1) for line in f if ":" in line)
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return {"rss": int(st["VmRSS"].split()[0]) * 1024, "hwm": int(st["VmHWM"].split()[0]) * 1024,
            "cpu": (int(fields[11]) + int(fields[12])) / tick}


def pct(values, q):
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, max(0, int(round(q / 100 * len(v) + 0.5)) - 1))]


class SimProxy:
    """One simulated proxy: a keep-alive connection long-polling /v1.0/xds/<name>."""

    def __init__(self, bench, idx):
        self.bench = bench
        self.idx = idx
        self.replica = idx % len(bench.ports)
        self.name = f"proxy-{idx}"
        self.version = ""
        self.status = ""
        self.updates = []        # (monotonic time the body arrived, version)
        self.reader = self.writer = None

    async def connect(self):
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.bench.ports[self.replica])

    async def poll_once(self, wait):
        q = f"zone=bench&node={self.name}-0&version={self.version}&wait={wait}"
        if self.status:
            q += f"&status={self.status}"
        self.writer.write(f"GET /v1.0/xds/{self.name}?{q} HTTP/1.1\r\nHost: control\r\n\r\n".encode())
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v.strip())
        body = await self.reader.readexactly(length) if length else b""
        t = time.monotonic()
        if status == 200:
            version = json.loads(body)["version"]
            self.updates.append((t, version))
            self.version, self.status = version, "ack"
        elif status != 304:
            raise RuntimeError(f"{self.name}: HTTP {status}: {body[:200]!r}")
        return status

    async def run(self):
        while not self.bench.stopping:
            try:
                await self.poll_once(self.bench.wait)
            except (asyncio.IncompleteReadError, ConnectionError, OSError) as e:
                if self.bench.stopping:
                    return
                raise RuntimeError(f"{self.name}: connection lost: {e}") from e


class Bench:
    """The control plane(s) under test: one on SQLite, or `replicas` on one etcd."""

    def __init__(self, args, store="sqlite", replicas=1):
        self.args = args
        self.store = store
        self.ports = [free_port() for _ in range(replicas)]
        self.urls = [f"http://127.0.0.1:{p}" for p in self.ports]
        self.url, self.port = self.urls[0], self.ports[0]
        self.stopping = False
        self.wait = 120
        self.procs = []
        self.etcd = None
        self.tmp = tempfile.mkdtemp(prefix=f"gyrus-control-bench-{store}-")

    @property
    def proc(self):
        return self.procs[0]

    def _spawn(self, args, name):
        log_file = open(os.path.join(self.tmp, name + ".log"), "wb")
        p = subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT)
        log_file.close()
        return p

    def _ready(self, url, proc, path="/ready", timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url + path, timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"{url} did not become ready (logs in {self.tmp} with --keep-tmp)")

    def start(self):
        extra = []
        if self.store == "etcd":
            client, peer = free_port(), free_port()
            etcd_url = f"http://127.0.0.1:{client}"
            self.etcd = self._spawn([ETCD, "--name", "bench", "--data-dir", os.path.join(self.tmp, "etcd"),
                                     "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
                                     "--listen-peer-urls", f"http://127.0.0.1:{peer}",
                                     "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
                                     "--initial-cluster", f"bench=http://127.0.0.1:{peer}",
                                     "--max-txn-ops", "1000000", "--max-request-bytes", str(64 << 20),
                                     "--quota-backend-bytes", str(4 << 30), "--log-level", "warn"], "etcd")
            self._ready(etcd_url, self.etcd, "/health")
            extra = ["--store", "etcd", "--etcd-endpoints", etcd_url]
        for i, port in enumerate(self.ports):
            self.procs.append(self._spawn([self.args.gyrus, "control", "--listen", f"127.0.0.1:{port}",
                                           "--data-dir", os.path.join(self.tmp, f"data{i}"), "--log-level", os.environ.get("GYRUS_BENCH_LOG", "warn"),
                                           *extra], f"control{i}"))
        for url, proc in zip(self.urls, self.procs):
            self._ready(url, proc)

    def stop(self):
        for p in self.procs + ([self.etcd] if self.etcd else []):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        if not self.args.keep_tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            log(f"kept {self.tmp}")


async def until(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out ({timeout} s) waiting for {what}")
        await asyncio.sleep(0.005)


async def measure(bench, args, results):
    a = args
    loop = asyncio.get_running_loop()
    sims = [SimProxy(bench, i) for i in range(a.proxies)]
    t0 = time.monotonic()
    for i in range(0, len(sims), 100):
        await asyncio.gather(*(s.connect() for s in sims[i:i + 100]))
    tasks = [asyncio.create_task(s.run()) for s in sims]
    await until(lambda: all(s.updates for s in sims) or any(t.done() for t in tasks), 120, "every first view")
    for t in tasks:
        if t.done() and t.exception():
            raise t.exception()
    results["first_views_s"] = time.monotonic() - t0
    await asyncio.sleep(1.0)  # the ACK polls park
    st = proc_stats(bench.proc.pid)
    results["rss_with_proxies"] = st["rss"]
    log(f"[{bench.store}] {a.proxies} proxies hold their first view after {results['first_views_s']:.2f} s; "
        f"RSS {st['rss'] / 2**20:.1f} MiB")

    rng = random.Random(1)
    samples, spurious, apply_ms, rounds = [], 0, [], []
    local, remote = [], []  # proxies on the replica that took the write, and on the others
    cpu_before = sum(proc_stats(p.pid)["cpu"] for p in bench.procs)
    wall_before = time.monotonic()
    for rnd in range(a.rounds):
        writer = rnd % len(bench.urls)
        affected = rng.sample(range(a.proxies), min(a.affected, a.proxies))
        changed = [cluster(clusters_of(p, a.services)[rnd % ROUTES_PER_PROXY], a.instances, 20000 + rnd)
                   for p in affected]
        before = {s.idx: len(s.updates) for s in sims}
        body = json.dumps(changed).encode()
        t_send = time.monotonic()
        status, out = await loop.run_in_executor(None, lambda: http("POST", bench.urls[writer] + "/v1.0/apply", body))
        t_done = time.monotonic()
        if status != 200 or out["result"]["updated"] != len(changed):
            raise RuntimeError(f"apply failed: {status} {out}")
        apply_ms.append((t_done - t_send) * 1000)
        targets = [sims[p] for p in affected]
        await until(lambda: all(len(s.updates) > before[s.idx] for s in targets), 30, "affected proxies")
        await asyncio.sleep(0.3)  # let any wrongly woken proxy show up
        lat = [(s.updates[before[s.idx]][0] - t_send) * 1000 for s in targets]
        samples += lat
        local += [x for x, s in zip(lat, targets) if s.replica == writer]
        remote += [x for x, s in zip(lat, targets) if s.replica != writer]
        woken = sum(1 for s in sims if len(s.updates) > before[s.idx]) - len(targets)
        spurious += woken
        rounds.append({"p50_ms": pct(lat, 50), "max_ms": max(lat), "apply_ms": apply_ms[-1], "spurious": woken})
        log(f"[{bench.store}] round {rnd + 1}/{a.rounds}: {len(targets)} proxies converged, p50 {pct(lat, 50):.1f} ms, "
            f"max {max(lat):.1f} ms (apply answered after {apply_ms[-1]:.1f} ms), {woken} others woken")
    cpu_after = sum(proc_stats(p.pid)["cpu"] for p in bench.procs)
    if len(bench.urls) > 1:
        results["through_other_replica"] = {"samples": len(remote), "p50_ms": pct(remote, 50),
                                            "p99_ms": pct(remote, 99), "max_ms": max(remote)}
        results["through_same_replica"] = {"samples": len(local), "p50_ms": pct(local, 50),
                                           "p99_ms": pct(local, 99), "max_ms": max(local)}
    results["convergence"] = {
        "rounds": a.rounds, "affected_per_round": a.affected, "samples": len(samples),
        "p50_ms": pct(samples, 50), "p90_ms": pct(samples, 90), "p99_ms": pct(samples, 99), "max_ms": max(samples),
        "apply_answer_p50_ms": pct(apply_ms, 50), "spurious_wakeups": spurious, "per_round": rounds,
        "control_cpu_s": cpu_after - cpu_before, "wall_s": time.monotonic() - wall_before,
    }

    # One object, one proxy: a PUT of one cluster.
    single = []
    for i in range(a.rounds):
        p = rng.randrange(a.proxies)
        s = sims[p]
        n = len(s.updates)
        c = cluster(clusters_of(p, a.services)[0], a.instances, 30000 + i)
        t_send = time.monotonic()
        status, _ = await loop.run_in_executor(None, lambda: http("PUT", f"{bench.url}/v1.0/cluster/{c['cluster_key']}", c))
        if status != 200:
            raise RuntimeError(f"PUT failed: {status}")
        await until(lambda: len(s.updates) > n, 30, "the proxy of a single PUT")
        single.append((s.updates[n][0] - t_send) * 1000)
    results["single_put"] = {"samples": len(single), "p50_ms": pct(single, 50), "max_ms": max(single)}
    log(f"single-object PUT → its proxy: p50 {pct(single, 50):.1f} ms, max {max(single):.1f} ms")

    st = [proc_stats(p.pid) for p in bench.procs]
    results["rss_end"], results["rss_peak"] = max(x["rss"] for x in st), max(x["hwm"] for x in st)
    results["control_cpu_total_s"] = sum(x["cpu"] for x in st)
    bench.stopping = True
    for s in sims:
        s.writer.close()
    await asyncio.gather(*tasks, return_exceptions=True)


def mi(b):
    return f"{b / 2**20:.0f} MiB"


def scenario_rows(args, r):
    conv = r["convergence"]
    rows = [
        f"| initial `apply` of the whole mesh ({r['objects']:,} objects, {r['mesh_bytes'] / 2**20:.1f} MiB JSON) "
        f"| {r['initial_apply_s']:.2f} s |",
    ]
    if "replica_catch_up_s" in r:
        rows.append(f"| ... until the other replica holds it too (watch) | {r['replica_catch_up_s']:.2f} s |")
    rows += [
        f"| {args.proxies:,} proxies connected and holding their first view | {r['first_views_s']:.2f} s |",
        f"| convergence over {conv['samples']:,} samples ({conv['rounds']} rounds × {conv['affected_per_round']}) "
        f"| p50 {conv['p50_ms']:.0f} ms, p90 {conv['p90_ms']:.0f} ms, p99 {conv['p99_ms']:.0f} ms, "
        f"max {conv['max_ms']:.0f} ms |",
    ]
    for k, label in (("through_same_replica", "proxies on the replica that took the write"),
                     ("through_other_replica", "proxies on the other replica")):
        if k in r:
            rows.append(f"| ... {label} | p50 {r[k]['p50_ms']:.0f} ms, p99 {r[k]['p99_ms']:.0f} ms |")
    rows += [
        f"| `apply` answered (validate, commit, recompute the touched views, answer their polls) "
        f"| p50 {conv['apply_answer_p50_ms']:.0f} ms |",
        f"| one-object `PUT` → its one proxy ({r['single_put']['samples']} samples) "
        f"| p50 {r['single_put']['p50_ms']:.0f} ms, max {r['single_put']['max_ms']:.0f} ms |",
        f"| unaffected proxies woken | {conv['spurious_wakeups']} |",
        f"| control plane CPU during the rounds | {conv['control_cpu_s']:.2f} s over {conv['wall_s']:.1f} s |",
        f"| control plane CPU, whole run | {r['control_cpu_total_s']:.1f} s |",
        f"| RSS: mesh loaded / with proxies polling / end / peak | {mi(r['rss_loaded'])} / "
        f"{mi(r['rss_with_proxies'])} / {mi(r['rss_end'])} / {mi(r['rss_peak'])} |",
    ]
    return rows


def write_outputs(args, all_results):
    r = all_results["sqlite"]
    conv = r["convergence"]
    targets = [
        ("p99 apply → every affected proxy holds the new version", "< 1 s", f"{conv['p99_ms']:.0f} ms",
         conv["p99_ms"] < 1000),
        ("control plane RSS (peak), SQLite", "< 500 MiB", mi(r["rss_peak"]), r["rss_peak"] < 500 * 2**20),
        ("unaffected proxies woken", "0", str(conv["spurious_wakeups"]), conv["spurious_wakeups"] == 0),
    ]
    if "etcd" in all_results:
        e = all_results["etcd"]["convergence"]
        targets.insert(1, ("p99 with 2 replicas on etcd (half the proxies on each)", "< 1 s",
                           f"{e['p99_ms']:.0f} ms", e["p99_ms"] < 1000))
        peak = all_results["etcd"]["rss_peak"]
        targets.insert(3, ("control plane RSS (peak), each etcd replica", "< 500 MiB", mi(peak), peak < 500 * 2**20))
    all_results["targets"] = [{"target": t, "goal": g, "value": v, "met": m} for t, g, v, m in targets]
    with open(args.json, "w") as f:
        json.dump({"schema_version": 1, "control": all_results}, f, indent=2)
        f.write("\n")
    lines = [
        "# Benchmarks: control plane",
        "",
        "Generated by `bench/control_bench.py` (`make bench`); do not edit by hand, rerun it. "
        "Figures also in `bench/control_results.json` (key `control`).",
        "",
        "## Targets",
        "",
        "| target | goal | this run | result |",
        "|---|---|---|---|",
    ]
    lines += [f"| {t} | {g} | {v} | **{'met' if m else 'missed'}** |" for t, g, v, m in targets]
    lines += [
        "",
        "Missed targets are reported, never fatal: this file is a report, not a test.",
        "",
        "## Config convergence, one control plane on SQLite",
        "",
        f"`gyrus control` holding {args.services:,} services (clusters) with {args.services * args.instances:,} "
        f"static instances and {args.proxies:,} proxies ({r['objects']:,} objects); {args.proxies:,} simulated "
        "proxies long-poll their views (keep-alive, asyncio, ACKing each version). Each round, one "
        f"`POST /v1.0/apply` changes one cluster of each of {args.affected} random proxies; latency = from "
        "sending the apply to each affected proxy having received its new view.",
        "",
        "| measure | value |",
        "|---|---|",
        *scenario_rows(args, r),
        "",
    ]
    if "etcd" in all_results:
        lines += [
            "## Two control planes on one etcd",
            "",
            "The same mesh and proxies, with two `gyrus control --store etcd` replicas on one local etcd "
            "(started with raised `--max-txn-ops` and `--max-request-bytes` for the one-batch initial load). "
            "Even proxies poll replica 0, odd ones replica 1; rounds alternate the replica that takes the "
            "write, so half of the affected proxies learn of it through the other replica's etcd watch. "
            "CPU and RSS are summed / the larger of the two.",
            "",
            "| measure | value |",
            "|---|---|",
            *scenario_rows(args, all_results["etcd"]),
            "",
        ]
    elif "etcd_skipped" in all_results:
        lines += ["## Two control planes on one etcd", "", f"Not run: {all_results['etcd_skipped']}.", ""]
    lines += [
        "## How",
        "",
        "- The latency includes the whole write path: parsing, a checksum per object, validation (the same "
        "validator as `gyrus validate`; a batch that only creates or replaces is validated with everything "
        "it refers to, a batch that deletes with the whole mesh), the store commit (SQLite: WAL, "
        "synchronous=FULL; etcd: one txn), recomputing only the views registered under the changed "
        "objects, and writing each parked poll's answer; plus the simulated proxy reading it (one Python "
        "thread for all proxies, so the client adds its own delay to the later ones).",
        "- Views are versioned by a hash of their canonical JSON; a proxy is woken only when its own "
        "view's content changed (the 'unaffected proxies woken' row checks it).",
        f"- Machine: {platform.platform()}, {os.cpu_count()} CPUs, shared by the control plane(s), etcd "
        "and the client.",
        f"- Command: `bench/control_bench.py --proxies {args.proxies} --services {args.services} "
        f"--instances {args.instances} --affected {args.affected} --rounds {args.rounds}`.",
        "",
    ]
    with open(args.markdown, "w") as f:
        f.write("\n".join(lines))
    log(f"wrote {args.markdown} and {args.json}")


def run_scenario(args, store, replicas):
    bench = Bench(args, store, replicas)
    r = {"store": store, "replicas": replicas, "proxies": args.proxies, "services": args.services,
         "instances": args.services * args.instances}
    try:
        bench.start()
        mesh = build_mesh(args.services, args.proxies, args.instances)
        body = json.dumps(mesh).encode()
        r["objects"], r["mesh_bytes"] = len(mesh), len(body)
        log(f"[{store}] applying {len(mesh):,} objects ({len(body) / 2**20:.1f} MiB)")
        t0 = time.monotonic()
        status, out = http("POST", bench.url + "/v1.0/apply", body)
        if status != 200:
            raise RuntimeError(f"initial apply: {status} {out}")
        r["initial_apply_s"] = time.monotonic() - t0
        for url in bench.urls[1:]:
            deadline = time.monotonic() + 60
            while sum(http("GET", url + "/v1.0/status")[1]["result"]["objects"].values()) < len(mesh):
                if time.monotonic() > deadline:
                    raise RuntimeError("the other replica did not catch up within 60 s")
                time.sleep(0.05)
            r["replica_catch_up_s"] = time.monotonic() - t0
        r["rss_loaded"] = max(proc_stats(p.pid)["rss"] for p in bench.procs)
        if len(bench.procs) > 1:
            log(f"[{store}] RSS per replica: " + ", ".join(f"{proc_stats(p.pid)['rss'] / 2**20:.0f} MiB"
                                                          for p in bench.procs))
        log(f"[{store}] initial apply took {r['initial_apply_s']:.2f} s; RSS {r['rss_loaded'] / 2**20:.1f} MiB")
        asyncio.run(asyncio.wait_for(measure(bench, args, r), timeout=240))
        return r
    finally:
        bench.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gyrus", default=os.path.join(ROOT, "build", "gyrus"))
    ap.add_argument("--proxies", type=int, default=1000)
    ap.add_argument("--services", type=int, default=10000)
    ap.add_argument("--instances", type=int, default=10, help="static instances per service")
    ap.add_argument("--affected", type=int, default=100, help="proxies whose view one apply changes")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--markdown", default=os.path.join(ROOT, "docs", "BENCHMARKS-control.md"))
    ap.add_argument("--json", default=os.path.join(HERE, "control_results.json"))
    ap.add_argument("--keep-tmp", action="store_true")
    ap.add_argument("--no-etcd", action="store_true", help="skip the two-replica etcd run")
    ap.add_argument("--no-sqlite", action="store_true", help="skip the SQLite run (for a quick etcd check)")
    args = ap.parse_args()
    if args.affected > args.proxies:
        ap.error("--affected must not exceed --proxies")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    results = {}
    try:
        if not args.no_sqlite:
            results["sqlite"] = run_scenario(args, "sqlite", 1)
        if args.no_etcd:
            results["etcd_skipped"] = "--no-etcd"
        elif not os.access(ETCD, os.X_OK):
            results["etcd_skipped"] = f"{ETCD} not installed"
        else:
            results["etcd"] = run_scenario(args, "etcd", 2)
        if "sqlite" in results:
            write_outputs(args, results)
        return 0
    except (RuntimeError, OSError, asyncio.TimeoutError, KeyError) as e:
        log(f"failed: {e!r}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
