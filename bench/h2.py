#!/usr/bin/python3
"""HTTP/2 and gRPC-shaped load: gyrus vs nghttpx vs HAProxy, plus the direct path.

    bench/h2.py --gyrus ./build/gyrus        (run by `make bench` after bench/retries.py)

1. h2load over h2c, 64 connections x 10 concurrent streams, GET / through each proxy to the same
   HTTP/2 nginx backend (and to nginx directly).
2. gRPC-shaped unary calls per second: the same h2load driver POSTs a length-prefixed gRPC
   message with content-type application/grpc and te: trailers; the backend (nghttpd) answers a
   gRPC frame and a grpc-status trailer, so every proxy carries HEADERS + DATA + trailers both ways.

Subjects run one worker/thread pinned to one CPU, the load generator and backend on the other
(as bench/run.py does). p50/p99 come from h2load's per-request log. Appends a section to
docs/BENCHMARKS.md and an "h2" key to bench/results.json.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import measure
import procs
from subjects import (BODY, Context, Running, SubjectFailed, _nginx_common, _start_nginx, _write, free_port,
                      gyrus_argv, wait_until)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
GRPC_PATH = "/bench.Echo/Unary"
GRPC_MESSAGE = b"\x00\x00\x00\x00\x0bhello grpc!"


def h2_ok(port, path="/", grpc=False):
    argv = ["nghttp", "-n", "-s", "-t", "2", f"http://127.0.0.1:{port}{path}"]
    if grpc:
        argv[1:1] = ["-H", "content-type: application/grpc", "-H", "te: trailers"]
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=5)
    except subprocess.TimeoutExpired:
        return False
    return r.returncode == 0 and "200" in r.stdout


def nginx_h2_backend(tmp, port, nofile):
    return _nginx_common(tmp, "h2backend", nofile) + f"""\
    http2_max_requests 1000000;
    server {{
        listen 127.0.0.1:{port} http2 backlog=4096;
        location / {{ return 200 "{BODY.decode()}"; }}
    }}
}}
"""


def start_backends(ctx):
    port = free_port()
    nginx = _start_nginx(ctx, "h2backend", nginx_h2_backend(ctx.tmp, port, ctx.nofile), port, measure.LOAD_CPU)
    wait_until(nginx, lambda: h2_ok(port), "h2c GET / on nginx")
    docs = os.path.join(ctx.tmp, "grpc-docs", "bench.Echo")
    os.makedirs(docs)
    with open(os.path.join(docs, "Unary"), "wb") as f:
        f.write(GRPC_MESSAGE)
    gport = free_port()
    proc = ctx.registry.start(["nghttpd", "--no-tls", "-d", os.path.dirname(docs), "--trailer", "grpc-status: 0",
                               "--trailer", "grpc-message: OK", str(gport)], cpu=measure.LOAD_CPU,
                              log_path=f"{ctx.tmp}/nghttpd.log")
    grpc = Running("nghttpd", proc, gport, [f"{ctx.tmp}/nghttpd.log"])
    wait_until(grpc, lambda: h2_ok(gport, GRPC_PATH, True), "gRPC-shaped POST on nghttpd")
    return nginx, grpc


def gyrus_conf(port, backend, grpc_backend):
    return f"""\
- {{kind: listener, listener_key: ingress, name: ingress, ip: 127.0.0.1, port: {port}, protocol: http_auto, domain_keys: [ingress],
   http2_protocol_options: {{max_concurrent_streams: 1000, initial_stream_window_size: 1048576}}}}
- {{kind: domain, domain_key: ingress, name: "*", port: {port}}}
- {{kind: proxy, proxy_key: bench, name: bench, listener_keys: [ingress]}}
- {{kind: cluster, cluster_key: web, name: web, instances: [{{host: 127.0.0.1, port: {backend}}}],
   http2_protocol_options: {{max_concurrent_streams: 1000, initial_stream_window_size: 1048576}}}}
- {{kind: cluster, cluster_key: grpc, name: grpc, instances: [{{host: 127.0.0.1, port: {grpc_backend}}}],
   http2_protocol_options: {{max_concurrent_streams: 1000, initial_stream_window_size: 1048576}}}}
- {{kind: route, route_key: grpc, domain_key: ingress, route_match: {{path: /bench.Echo/, match_type: prefix}},
   rules: [{{constraints: {{light: [{{cluster_key: grpc, weight: 1}}]}}}}]}}
- {{kind: route, route_key: root, domain_key: ingress, route_match: {{path: /, match_type: prefix}},
   rules: [{{constraints: {{light: [{{cluster_key: web, weight: 1}}]}}}}]}}
"""


def haproxy_conf(port, backend, grpc_backend, nofile):
    maxconn = max(1000, (nofile - 100) // 2)
    return f"""\
global
    nbthread 1
    maxconn {maxconn}
defaults
    mode http
    option http-keep-alive
    http-reuse always
    maxconn {maxconn}
    timeout connect 5s
    timeout client 300s
    timeout server 300s
frontend ingress
    bind 127.0.0.1:{port} proto h2
    use_backend grpc if {{ path_beg /bench.Echo/ }}
    default_backend web
backend web
    server web 127.0.0.1:{backend} proto h2
backend grpc
    server grpc 127.0.0.1:{grpc_backend} proto h2
"""


def start_gyrus(ctx, binary, backend, grpc_backend):
    port, admin = free_port(), free_port()
    conf = _write(f"{ctx.tmp}/mesh-h2.yaml", gyrus_conf(port, backend, grpc_backend))
    proc = ctx.registry.start(gyrus_argv(os.path.abspath(binary), conf, admin), cpu=measure.SUBJECT_CPU,
                              log_path=f"{ctx.tmp}/gyrus-h2.log")
    return Running("gyrus", proc, port, [f"{ctx.tmp}/gyrus-h2.log"])


def start_nghttpx(ctx, backend, grpc_backend):
    port = free_port()
    argv = ["nghttpx", "--conf=/dev/null", f"--frontend=127.0.0.1,{port};no-tls",
            f"--backend=127.0.0.1,{grpc_backend};/bench.Echo/;proto=h2", f"--backend=127.0.0.1,{backend};/;proto=h2",
            "--workers=1", "--single-thread", "--accesslog-file=/dev/null", "--errorlog-file=" + f"{ctx.tmp}/nghttpx.log",
            "--frontend-http2-max-concurrent-streams=1000", "--backend-http2-max-concurrent-streams=1000",
            f"--pid-file={ctx.tmp}/nghttpx.pid", "--no-ocsp"]
    proc = ctx.registry.start(argv, cpu=measure.SUBJECT_CPU, log_path=f"{ctx.tmp}/nghttpx.out")
    return Running("nghttpx", proc, port, [f"{ctx.tmp}/nghttpx.log", f"{ctx.tmp}/nghttpx.out"])


def start_haproxy(ctx, backend, grpc_backend):
    port = free_port()
    conf = _write(f"{ctx.tmp}/haproxy-h2.cfg", haproxy_conf(port, backend, grpc_backend, ctx.nofile))
    proc = ctx.registry.start(["haproxy", "-db", "-f", conf], cpu=measure.SUBJECT_CPU,
                              log_path=f"{ctx.tmp}/haproxy-h2.log")
    return Running("haproxy", proc, port, [f"{ctx.tmp}/haproxy-h2.log"])


def percentile(sorted_values, p):
    if not sorted_values:
        return 0
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * p / 100))]


def h2load(ctx, port, args, grpc, duration):
    log = f"{ctx.tmp}/h2load-{port}-{grpc}-{time.monotonic_ns()}.log"
    argv = ["h2load", "-t", "1", "-c", str(args.connections), "-m", str(args.streams), "-D", str(duration),
            "--log-file", log]
    if grpc:
        body = _write(f"{ctx.tmp}/grpc-request.bin", GRPC_MESSAGE.decode("latin1"))
        argv += ["-d", body, "-H", "content-type: application/grpc", "-H", "te: trailers"]
        argv.append(f"http://127.0.0.1:{port}{GRPC_PATH}")
    else:
        argv.append(f"http://127.0.0.1:{port}/")
    proc = ctx.registry.start(argv, cpu=measure.LOAD_CPU, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=duration + 60)
    except subprocess.TimeoutExpired:
        ctx.registry.stop(proc)
        raise measure.LoadFailed("h2load did not finish")
    ctx.registry.forget(proc)
    return parse(out, log)


def parse(out, log):
    fig = {}
    for line in out.splitlines():
        if line.startswith("finished in"):
            fig["requests_per_sec"] = float(line.split(",")[1].split()[0])
        elif line.startswith("requests:"):
            parts = line.replace(",", "").split()
            fig["requests"] = int(parts[1])
            fig["succeeded"] = int(parts[parts.index("succeeded") - 1])
            fig["failed"] = int(parts[parts.index("failed") - 1]) + int(parts[parts.index("errored") - 1])
        elif line.startswith("status codes:"):
            fig["status_2xx"] = int(line.split()[2])
    if "requests_per_sec" not in fig:
        raise measure.LoadFailed("h2load printed no figures:\n" + out[-800:])
    lat = []
    try:
        with open(log) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3:
                    lat.append(int(parts[2]))
    except OSError:
        pass
    lat.sort()
    fig["p50_us"], fig["p99_us"] = percentile(lat, 50), percentile(lat, 99)
    return fig


def measure_subject(ctx, port, watched, args, grpc):
    h2load(ctx, port, args, grpc, args.warmup)
    meter = procs.CpuMeter(watched)
    meter.start()
    fig = h2load(ctx, port, args, grpc, args.duration)
    fig["cpu_percent"] = meter.stop()
    return fig


def run(args, tmp, registry, nofile):
    ctx = Context(tmp, registry, nofile)
    nginx, grpc = start_backends(ctx)
    out = {"h2": {}, "grpc": {}}
    for kind, backend in (("h2", nginx), ("grpc", grpc)):
        procs.pin_tree(backend.pid, measure.SUBJECT_CPU)
        try:
            out[kind]["direct"] = measure_subject(ctx, backend.port, {"backend": backend.pid}, args, kind == "grpc")
        except measure.LoadFailed as e:
            out[kind]["direct"] = {"status": "failed", "reason": str(e)}
        finally:
            procs.pin_tree(backend.pid, measure.LOAD_CPU)
    starters = {
        "gyrus": lambda: start_gyrus(ctx, args.gyrus, nginx.port, grpc.port),
        "nghttpx": lambda: start_nghttpx(ctx, nginx.port, grpc.port),
        "haproxy": lambda: start_haproxy(ctx, nginx.port, grpc.port),
    }
    for name, start in starters.items():
        try:
            r = start()
            wait_until(r, lambda: h2_ok(r.port), f"h2c GET / through {name}")
            wait_until(r, lambda: h2_ok(r.port, GRPC_PATH, True), f"gRPC-shaped POST through {name}")
        except SubjectFailed as e:
            out["h2"][name] = out["grpc"][name] = {"status": "failed", "reason": str(e)}
            continue
        for kind, backend in (("h2", nginx), ("grpc", grpc)):
            try:
                out[kind][name] = measure_subject(ctx, r.port, {"subject": r.pid, "backend": backend.pid}, args,
                                                  kind == "grpc")
            except measure.LoadFailed as e:
                out[kind][name] = {"status": "failed", "reason": str(e)}
        registry.stop(r.proc)
    return out


def ratio(res, a, b, key):
    ra, rb = res.get(a, {}), res.get(b, {})
    return ra[key] / rb[key] if key in ra and key in rb and rb[key] else None


def markdown(res, args):
    lines = ["", "## HTTP/2 and gRPC", "",
             f"h2load over h2c, {args.connections} connections × {args.streams} concurrent streams, {args.duration} s "
             f"after {args.warmup} s of warm-up; each proxy speaks HTTP/2 to its backend too (gyrus: "
             "`http2_protocol_options` on the cluster; nghttpx: `proto=h2`; HAProxy: `proto h2` both sides), one "
             "worker/thread pinned to one CPU, h2load and the backend on the other. *h2*: GET / to an nginx http2 "
             "backend. *gRPC*: POST of a 16-byte gRPC message (`content-type: application/grpc`, `te: trailers`) to "
             "nghttpd answering a gRPC frame plus `grpc-status`/`grpc-message` trailers — gRPC-shaped unary calls, "
             "the same driver for every proxy. p50/p99 from h2load's per-request log.", ""]
    for kind, title in (("h2", "h2c GET"), ("grpc", "gRPC-shaped unary")):
        lines += [f"**{title}**", "", "| subject | req/s | p50 | p99 | failed | CPU |", "|---|---|---|---|---|---|"]
        for name in ("direct", "gyrus", "nghttpx", "haproxy"):
            r = res[kind].get(name, {})
            if "requests_per_sec" not in r:
                lines.append(f"| {name} | failed: {r.get('reason', '?')[:120]} | | | | |")
                continue
            lines.append(f"| {name} | {r['requests_per_sec']:,.0f} | {r['p50_us'] / 1000:.2f} ms | "
                         f"{r['p99_us'] / 1000:.2f} ms | {r['failed']:,} | {(r.get('cpu_percent', {}).get('subject') or r.get('cpu_percent', {}).get('backend') or 0):.0f} % |")
        rn, rh = ratio(res[kind], "gyrus", "nghttpx", "requests_per_sec"), ratio(res[kind], "gyrus", "haproxy",
                                                                                  "requests_per_sec")
        pn, ph = ratio(res[kind], "gyrus", "nghttpx", "p99_us"), ratio(res[kind], "gyrus", "haproxy", "p99_us")
        if rn is not None and rh is not None:
            lines += ["", f"gyrus/nghttpx req/s = {rn:.3f} (target ≥ 1), gyrus/HAProxy req/s = {rh:.3f} (target ≥ 1); "
                          f"p99 gyrus/nghttpx = {pn:.3f}, gyrus/HAProxy = {ph:.3f} (target ≤ 1)."]
        lines.append("")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gyrus", default=os.path.join(ROOT, "build", "gyrus"))
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--streams", type=int, default=10)
    ap.add_argument("--markdown", default=os.path.join(ROOT, "docs", "BENCHMARKS.md"))
    ap.add_argument("--json", default=os.path.join(HERE, "results.json"))
    args = ap.parse_args()
    nofile = procs.raise_nofile_limit(65536)
    registry = procs.Registry()
    tmp = tempfile.mkdtemp(prefix="gyrus-bench-h2-")
    os.chmod(tmp, 0o755)
    try:
        res = run(args, tmp, registry, nofile)
    except (SubjectFailed, measure.LoadFailed) as e:
        print(f"h2 benchmark: {e}", file=sys.stderr)
        return 2
    finally:
        registry.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    with open(args.markdown, "a") as f:
        f.write(markdown(res, args))
    try:
        with open(args.json) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        doc = {}
    doc["h2"] = {"connections": args.connections, "streams": args.streams, "duration_s": args.duration,
                 "results": res, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with open(args.json, "w") as f:
        json.dump(doc, f, indent=2)
    for kind in ("h2", "grpc"):
        for name, r in res[kind].items():
            print(f"{kind:5} {name:8} " + (f"{r['requests_per_sec']:>10,.0f} req/s  p50 {r['p50_us'] / 1000:.2f} ms  "
                                           f"p99 {r['p99_us'] / 1000:.2f} ms  failed {r['failed']}"
                                           if "requests_per_sec" in r else r.get("reason", "")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
