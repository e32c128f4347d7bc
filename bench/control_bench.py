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
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
ROUTES_PER_PROXY = 10


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
        self.name = f"proxy-{idx}"
        self.version = ""
        self.status = ""
        self.updates = []        # (monotonic time the body arrived, version)
        self.reader = self.writer = None

    async def connect(self):
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.bench.port)

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
    def __init__(self, args):
        self.args = args
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stopping = False
        self.wait = 120
        self.proc = None
        self.tmp = tempfile.mkdtemp(prefix="gyrus-control-bench-")

    def start(self):
        self.log = open(os.path.join(self.tmp, "control.log"), "wb")
        self.proc = subprocess.Popen([self.args.gyrus, "control", "--listen", f"127.0.0.1:{self.port}",
                                      "--data-dir", os.path.join(self.tmp, "data"), "--log-level", "warn"],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("gyrus control did not become ready")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
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
    log(f"{a.proxies} proxies hold their first view after {results['first_views_s']:.2f} s; "
        f"RSS {st['rss'] / 2**20:.1f} MiB")

    rng = random.Random(1)
    samples, spurious, apply_ms, rounds = [], 0, [], []
    cpu_before = proc_stats(bench.proc.pid)["cpu"]
    wall_before = time.monotonic()
    for rnd in range(a.rounds):
        affected = rng.sample(range(a.proxies), min(a.affected, a.proxies))
        changed = [cluster(clusters_of(p, a.services)[rnd % ROUTES_PER_PROXY], a.instances, 20000 + rnd)
                   for p in affected]
        before = {s.idx: len(s.updates) for s in sims}
        body = json.dumps(changed).encode()
        t_send = time.monotonic()
        status, out = await loop.run_in_executor(None, lambda: http("POST", bench.url + "/v1.0/apply", body))
        t_done = time.monotonic()
        if status != 200 or out["result"]["updated"] != len(changed):
            raise RuntimeError(f"apply failed: {status} {out}")
        apply_ms.append((t_done - t_send) * 1000)
        targets = [sims[p] for p in affected]
        await until(lambda: all(len(s.updates) > before[s.idx] for s in targets), 30, "affected proxies")
        await asyncio.sleep(0.3)  # let any wrongly woken proxy show up
        lat = [(s.updates[before[s.idx]][0] - t_send) * 1000 for s in targets]
        samples += lat
        woken = sum(1 for s in sims if len(s.updates) > before[s.idx]) - len(targets)
        spurious += woken
        rounds.append({"p50_ms": pct(lat, 50), "max_ms": max(lat), "apply_ms": apply_ms[-1], "spurious": woken})
        log(f"round {rnd + 1}/{a.rounds}: {len(targets)} proxies converged, p50 {pct(lat, 50):.1f} ms, "
            f"max {max(lat):.1f} ms (apply answered after {apply_ms[-1]:.1f} ms), {woken} others woken")
    cpu_after = proc_stats(bench.proc.pid)["cpu"]
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

    st = proc_stats(bench.proc.pid)
    results["rss_end"], results["rss_peak"] = st["rss"], st["hwm"]
    results["control_cpu_total_s"] = st["cpu"]
    bench.stopping = True
    for s in sims:
        s.writer.close()
    await asyncio.gather(*tasks, return_exceptions=True)


def write_outputs(args, r):
    conv = r["convergence"]
    targets = [
        ("p99 apply → every affected proxy holds the new version", "< 1 s", f"{conv['p99_ms']:.0f} ms",
         conv["p99_ms"] < 1000),
        ("control plane RSS (peak)", "< 500 MiB", f"{r['rss_peak'] / 2**20:.0f} MiB", r["rss_peak"] < 500 * 2**20),
        ("unaffected proxies woken", "0", str(conv["spurious_wakeups"]), conv["spurious_wakeups"] == 0),
    ]
    r["targets"] = [{"target": t, "goal": g, "value": v, "met": m} for t, g, v, m in targets]
    with open(args.json, "w") as f:
        json.dump({"schema_version": 1, "control": r}, f, indent=2)
        f.write("\n")
    mi = lambda b: f"{b / 2**20:.0f} MiB"  # noqa: E731
    lines = [
        "# Benchmarks: control plane",
        "",
        "Generated by `bench/control_bench.py` (`make bench`); do not edit by hand, rerun it. "
        "Figures also in `bench/control_results.json` (key `control`).",
        "",
        "## Config convergence",
        "",
        f"One `gyrus control` (SQLite store) holding {args.services:,} services (clusters) with "
        f"{args.services * args.instances:,} static instances and {args.proxies:,} proxies "
        f"({r['objects']:,} objects); {args.proxies:,} simulated proxies long-poll their views "
        "(keep-alive, asyncio, ACKing each version). Each round, one `POST /v1.0/apply` changes one "
        f"cluster of each of {args.affected} random proxies; latency = from sending the apply to each "
        "affected proxy having received its new view.",
        "",
        "| target | goal | this run | result |",
        "|---|---|---|---|",
    ]
    lines += [f"| {t} | {g} | {v} | **{'met' if m else 'missed'}** |" for t, g, v, m in targets]
    lines += [
        "",
        "| measure | value |",
        "|---|---|",
        f"| initial `apply` of the whole mesh ({r['objects']:,} objects, {r['mesh_bytes'] / 2**20:.1f} MiB JSON) "
        f"| {r['initial_apply_s']:.2f} s |",
        f"| {args.proxies:,} proxies connected and holding their first view | {r['first_views_s']:.2f} s |",
        f"| convergence over {conv['samples']:,} samples ({conv['rounds']} rounds × {conv['affected_per_round']}) "
        f"| p50 {conv['p50_ms']:.0f} ms, p90 {conv['p90_ms']:.0f} ms, p99 {conv['p99_ms']:.0f} ms, "
        f"max {conv['max_ms']:.0f} ms |",
        f"| `apply` answered (validate whole mesh, commit, recompute, wake) | p50 {conv['apply_answer_p50_ms']:.0f} ms |",
        f"| one-object `PUT` → its one proxy ({r['single_put']['samples']} samples) "
        f"| p50 {r['single_put']['p50_ms']:.0f} ms, max {r['single_put']['max_ms']:.0f} ms |",
        f"| unaffected proxies woken | {conv['spurious_wakeups']} |",
        f"| control plane CPU during the rounds | {conv['control_cpu_s']:.2f} s over {conv['wall_s']:.1f} s "
        f"({100 * conv['control_cpu_s'] / conv['wall_s']:.0f} % of a core) |",
        f"| control plane CPU, whole run | {r['control_cpu_total_s']:.1f} s |",
        f"| RSS: mesh loaded / with proxies polling / end / peak | {mi(r['rss_loaded'])} / "
        f"{mi(r['rss_with_proxies'])} / {mi(r['rss_end'])} / {mi(r['rss_peak'])} |",
        "",
        "Per round: " + ", ".join(f"{x['p50_ms']:.0f}/{x['max_ms']:.0f} ms" for x in conv["per_round"]) +
        " (p50/max).",
        "",
        "## How",
        "",
        "- The latency includes the whole write path: parse, a checksum per object, validation of the "
        "whole resulting mesh as one unit (the same validator as `gyrus validate`), the SQLite commit "
        "(WAL, synchronous=FULL), recomputing only the views registered under the changed objects, and "
        "writing each parked poll's answer; plus the simulated proxy reading it (one Python thread for "
        "all proxies, so the client adds its own delay to the later ones).",
        "- Views are versioned by a hash of their canonical JSON; a proxy is woken only when its own "
        "view's content changed (the 'unaffected proxies woken' row checks it).",
        f"- Machine: {platform.platform()}, {os.cpu_count()} CPUs; control plane and client share it.",
        f"- Command: `bench/control_bench.py --proxies {args.proxies} --services {args.services} "
        f"--instances {args.instances} --affected {args.affected} --rounds {args.rounds}`.",
        "",
    ]
    with open(args.markdown, "w") as f:
        f.write("\n".join(lines))
    log(f"wrote {args.markdown} and {args.json}")


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
    args = ap.parse_args()
    if args.affected > args.proxies:
        ap.error("--affected must not exceed --proxies")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    bench = Bench(args)
    results = {"proxies": args.proxies, "services": args.services, "instances": args.services * args.instances}
    try:
        bench.start()
        mesh = build_mesh(args.services, args.proxies, args.instances)
        body = json.dumps(mesh).encode()
        results["objects"], results["mesh_bytes"] = len(mesh), len(body)
        log(f"applying {len(mesh):,} objects ({len(body) / 2**20:.1f} MiB)")
        t0 = time.monotonic()
        status, out = http("POST", bench.url + "/v1.0/apply", body)
        if status != 200:
            raise RuntimeError(f"initial apply: {status} {out}")
        results["initial_apply_s"] = time.monotonic() - t0
        results["rss_loaded"] = proc_stats(bench.proc.pid)["rss"]
        log(f"initial apply took {results['initial_apply_s']:.2f} s; RSS {results['rss_loaded'] / 2**20:.1f} MiB")
        asyncio.run(asyncio.wait_for(measure(bench, args, results), timeout=240))
        write_outputs(args, results)
        return 0
    except (RuntimeError, OSError, asyncio.TimeoutError) as e:
        log(f"failed: {e}")
        return 2
    finally:
        bench.stop()


if __name__ == "__main__":
    sys.exit(main())
