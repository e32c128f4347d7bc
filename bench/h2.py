#!/usr/bin/python3
"""HTTP/2 and gRPC-shaped load: gyrus vs nghttpx vs HAProxy, plus the direct path.

    bench/h2.py --gyrus ./build/gyrus        (run by `make bench` after bench/retries.py)

1. h2load over h2c, 64 connections x 10 concurrent streams, GET / through each proxy to the same
   HTTP/2 backend, nghttpd serving a 64-byte file (and to nghttpd directly); and the same GET to
   an nginx http2 backend, which costs the load CPU about three times as much per request (two
   writev calls per response), so that the load CPU rather than the proxy sets the rate: reported, no target.
2. gRPC-shaped unary calls per second: the same h2load driver POSTs a length-prefixed gRPC
   message with content-type application/grpc and te: trailers; the backend (nghttpd) answers a
   gRPC frame and a grpc-status trailer, so every proxy carries HEADERS + DATA + trailers both ways.
3. The same GET to an nginx that ends each connection by GOAWAY after 1,000 requests (its
   default keepalive_requests): how many requests each proxy loses.

Every proxy adds X-Forwarded-For, X-Forwarded-Proto and Via; none adds X-Request-ID, because
nghttpx cannot make one (gyrus: generate_request_id: false; HAProxy: no unique-id-header). A new
id in every request costs the backend a literal to decode; "gyrus-default", gyrus making one as
it does by default, is measured in the two uncapped cases beside the others, with no target.

Subjects run one worker/thread pinned to one CPU, the load generator and backend on the other
(as bench/run.py does); all subjects run at once and are measured in turn for --rounds rounds,
the proxies taking turns at going first; the median round of each counts, and the median of the
per-round gyrus/other ratios is reported beside it. Many short rounds rather than a few long
ones: this VM's speed drifts over minutes, and a pair measured seconds apart sees the same speed. p50/p99 come from h2load's per-request log. Appends a section to
docs/BENCHMARKS.md and an "h2" key to bench/results.json.
"""

import os
import statistics
import subprocess
import sys
import time

import measure
import procs
import section
from subjects import (BODY, Context, Running, SubjectFailed, _nginx_common, _start_nginx, _write, free_port,
                      gyrus_argv, haproxy_forwarding, wait_until)

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


ROTATE_PATH = "/rotate/"
ROTATE_REQUESTS = 1000
NGINX_PATH = "/nginx/"


def nginx_h2_backend(tmp, port, nofile, tag="h2backend", keepalive_requests=1000000):
    return _nginx_common(tmp, tag, nofile) + f"""\
    server {{
        listen 127.0.0.1:{port} http2 backlog=4096;
        keepalive_requests {keepalive_requests};
        location / {{ return 200 "{BODY.decode()}"; }}
    }}
}}
"""


def start_nghttpd(ctx, tag, files, extra=()):
    """nghttpd on the load CPU serving `files` (path -> bytes) from a directory of its own."""
    docs = os.path.join(ctx.tmp, f"{tag}-docs")
    for path, data in files.items():
        os.makedirs(os.path.dirname(os.path.join(docs, path)), exist_ok=True)
        with open(os.path.join(docs, path), "wb") as f:
            f.write(data)
    port = free_port()
    proc = ctx.registry.start(["nghttpd", "--no-tls", "-d", docs, *extra, str(port)], cpu=measure.LOAD_CPU,
                              log_path=f"{ctx.tmp}/nghttpd-{tag}.log")
    return Running("nghttpd", proc, port, [f"{ctx.tmp}/nghttpd-{tag}.log"])


def start_backends(ctx):
    """h2: nghttpd serving BODY; h2-nginx: nginx over h2c; grpc: nghttpd answering gRPC frames and
    trailers; rotate: nginx ending each connection by GOAWAY after 1,000 requests (its default
    keepalive_requests)."""
    get = start_nghttpd(ctx, "get", {"index.html": BODY})
    wait_until(get, lambda: h2_ok(get.port), "h2c GET / on nghttpd")
    port = free_port()
    nginx = _start_nginx(ctx, "h2backend", nginx_h2_backend(ctx.tmp, port, ctx.nofile), port, measure.LOAD_CPU)
    wait_until(nginx, lambda: h2_ok(port), "h2c GET / on nginx")
    rport = free_port()
    rotate = _start_nginx(ctx, "h2rotate", nginx_h2_backend(ctx.tmp, rport, ctx.nofile, "h2rotate", ROTATE_REQUESTS),
                          rport, measure.LOAD_CPU)
    wait_until(rotate, lambda: h2_ok(rport), "h2c GET / on the rotating nginx")
    grpc = start_nghttpd(ctx, "grpc", {GRPC_PATH.lstrip("/"): GRPC_MESSAGE},
                         ["--trailer", "grpc-status: 0", "--trailer", "grpc-message: OK"])
    wait_until(grpc, lambda: h2_ok(grpc.port, GRPC_PATH, True), "gRPC-shaped POST on nghttpd")
    return {"h2": get, "h2-nginx": nginx, "grpc": grpc, "rotate": rotate}


def gyrus_conf(port, b, request_id=False):
    """request_id=False: no X-Request-ID, as nghttpx cannot make one (see markdown())."""
    return f"""\
- {{kind: listener, listener_key: ingress, name: ingress, ip: 127.0.0.1, port: {port}, protocol: http_auto, domain_keys: [ingress],
   generate_request_id: {str(request_id).lower()},
   http2_protocol_options: {{max_concurrent_streams: 1000, initial_stream_window_size: 1048576}}}}
- {{kind: domain, domain_key: ingress, name: "*", port: {port}}}
- {{kind: proxy, proxy_key: bench, name: bench, listener_keys: [ingress]}}
- {{kind: cluster, cluster_key: web, name: web, instances: [{{host: 127.0.0.1, port: {b['h2']}}}],
   http2_protocol_options: {{max_concurrent_streams: 1000, initial_stream_window_size: 1048576}}}}
- {{kind: cluster, cluster_key: grpc, name: grpc, instances: [{{host: 127.0.0.1, port: {b['grpc']}}}],
   http2_protocol_options: {{max_concurrent_streams: 1000, initial_stream_window_size: 1048576}}}}
- {{kind: cluster, cluster_key: rotate, name: rotate, instances: [{{host: 127.0.0.1, port: {b['rotate']}}}],
   http2_protocol_options: {{max_concurrent_streams: 1000, initial_stream_window_size: 1048576}}}}
- {{kind: cluster, cluster_key: nginx, name: nginx, instances: [{{host: 127.0.0.1, port: {b['h2-nginx']}}}],
   http2_protocol_options: {{max_concurrent_streams: 1000, initial_stream_window_size: 1048576}}}}
- {{kind: route, route_key: grpc, domain_key: ingress, route_match: {{path: /bench.Echo/, match_type: prefix}},
   rules: [{{constraints: {{light: [{{cluster_key: grpc, weight: 1}}]}}}}]}}
- {{kind: route, route_key: rotate, domain_key: ingress, route_match: {{path: {ROTATE_PATH}, match_type: prefix}},
   rules: [{{constraints: {{light: [{{cluster_key: rotate, weight: 1}}]}}}}]}}
- {{kind: route, route_key: nginx, domain_key: ingress, route_match: {{path: {NGINX_PATH}, match_type: prefix}},
   rules: [{{constraints: {{light: [{{cluster_key: nginx, weight: 1}}]}}}}]}}
- {{kind: route, route_key: root, domain_key: ingress, route_match: {{path: /, match_type: prefix}},
   rules: [{{constraints: {{light: [{{cluster_key: web, weight: 1}}]}}}}]}}
"""


def haproxy_conf(port, b, nofile):
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
{haproxy_forwarding("2", request_id=False)}    use_backend grpc if {{ path_beg /bench.Echo/ }}
    use_backend rotate if {{ path_beg {ROTATE_PATH} }}
    use_backend nginx if {{ path_beg {NGINX_PATH} }}
    default_backend web
backend web
    server web 127.0.0.1:{b['h2']} proto h2
backend grpc
    server grpc 127.0.0.1:{b['grpc']} proto h2
backend rotate
    server rotate 127.0.0.1:{b['rotate']} proto h2
backend nginx
    server nginx 127.0.0.1:{b['h2-nginx']} proto h2
"""


def start_gyrus(ctx, binary, b, name="gyrus", request_id=False):
    port, admin = free_port(), free_port()
    conf = _write(f"{ctx.tmp}/mesh-{name}.yaml", gyrus_conf(port, b, request_id))
    proc = ctx.registry.start(gyrus_argv(os.path.abspath(binary), conf, admin), cpu=measure.SUBJECT_CPU,
                              log_path=f"{ctx.tmp}/{name}.log")
    return Running(name, proc, port, [f"{ctx.tmp}/{name}.log"])


def start_nghttpx(ctx, b):
    port = free_port()
    argv = ["nghttpx", "--conf=/dev/null", f"--frontend=127.0.0.1,{port};no-tls",
            f"--backend=127.0.0.1,{b['grpc']};/bench.Echo/;proto=h2", f"--backend=127.0.0.1,{b['h2']};/;proto=h2",
            f"--backend=127.0.0.1,{b['rotate']};{ROTATE_PATH};proto=h2",
            f"--backend=127.0.0.1,{b['h2-nginx']};{NGINX_PATH};proto=h2",
            "--workers=1", "--single-thread", "--accesslog-file=/dev/null", "--errorlog-file=" + f"{ctx.tmp}/nghttpx.log",
            "--frontend-http2-max-concurrent-streams=1000", "--backend-http2-max-concurrent-streams=1000",
            f"--pid-file={ctx.tmp}/nghttpx.pid", "--no-ocsp",
            # the forwarding headers gyrus adds by default (nghttpx adds Via itself and cannot
            # generate a request id), so that the proxies do about the same work
            "--add-x-forwarded-for", "--add-request-header=X-Forwarded-Proto: http"]
    proc = ctx.registry.start(argv, cpu=measure.SUBJECT_CPU, log_path=f"{ctx.tmp}/nghttpx.out")
    return Running("nghttpx", proc, port, [f"{ctx.tmp}/nghttpx.log", f"{ctx.tmp}/nghttpx.out"])


def start_haproxy(ctx, b):
    port = free_port()
    conf = _write(f"{ctx.tmp}/haproxy-h2.cfg", haproxy_conf(port, b, ctx.nofile))
    proc = ctx.registry.start(["haproxy", "-db", "-f", conf], cpu=measure.SUBJECT_CPU,
                              log_path=f"{ctx.tmp}/haproxy-h2.log")
    return Running("haproxy", proc, port, [f"{ctx.tmp}/haproxy-h2.log"])


def percentile(sorted_values, p):
    if not sorted_values:
        return 0
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * p / 100))]


def h2load(ctx, port, args, kind, duration):
    grpc = kind == "grpc"
    log = f"{ctx.tmp}/h2load-{port}-{kind}-{time.monotonic_ns()}.log"
    argv = ["h2load", "-t", "1", "-c", str(args.connections), "-m", str(args.streams), "-D", str(duration),
            "--log-file", log]
    if grpc:
        body = _write(f"{ctx.tmp}/grpc-request.bin", GRPC_MESSAGE.decode("latin1"))
        argv += ["-d", body, "-H", "content-type: application/grpc", "-H", "te: trailers"]
        argv.append(f"http://127.0.0.1:{port}{GRPC_PATH}")
    else:
        argv.append(f"http://127.0.0.1:{port}{ {'rotate': ROTATE_PATH, 'h2-nginx': NGINX_PATH}.get(kind, '/')}")
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


def measure_subject(ctx, port, watched, args, kind):
    h2load(ctx, port, args, kind, args.warmup)
    meter = procs.CpuMeter(watched)
    meter.start()
    fig = h2load(ctx, port, args, kind, args.duration)
    fig["cpu_percent"] = meter.stop()
    return fig


def run(args, tmp, registry, nofile):
    """All proxies are started first (an idle one costs nothing); then `rounds` rounds measure
    every subject in turn, so that a disturbance of this shared machine falls on all of them
    alike, and the round with the median req/s of each subject counts."""
    ctx = Context(tmp, registry, nofile)
    backends = start_backends(ctx)
    ports = {kind: b.port for kind, b in backends.items()}
    starters = {
        "gyrus": lambda: start_gyrus(ctx, args.gyrus, ports),
        DEFAULT: lambda: start_gyrus(ctx, args.gyrus, ports, DEFAULT, request_id=True),
        "nghttpx": lambda: start_nghttpx(ctx, ports),
        "haproxy": lambda: start_haproxy(ctx, ports),
    }
    running, failed = {}, {}
    for name, start in starters.items():
        try:
            r = start()
            wait_until(r, lambda: h2_ok(r.port), f"h2c GET / through {name}")
            wait_until(r, lambda: h2_ok(r.port, GRPC_PATH, True), f"gRPC-shaped POST through {name}")
            wait_until(r, lambda: h2_ok(r.port, NGINX_PATH), f"h2c GET {NGINX_PATH} through {name}")
            running[name] = r
        except SubjectFailed as e:
            failed[name] = {"status": "failed", "reason": str(e)}
    rounds = {kind: {name: [] for name in ["direct", *starters]} for kind in KINDS}
    proxies = list(starters)
    for i in range(args.rounds):
        # The proxies take turns at going first. In a fixed order, the first of four gyrus builds that
        # differed only in their epoll batch size was the slowest in 4 of 5 rounds; taking turns,
        # the four tied.
        order = ["direct", *proxies[i % len(proxies):], *proxies[:i % len(proxies)]]
        for kind in KINDS:
            backend = backends[kind.removesuffix(CAPPED)]
            for name in order:
                if name in failed or (name == "direct" and kind in ("rotate", *CAPPED_KINDS)):
                    continue  # h2load does not reconnect after a GOAWAY: no direct path for "rotate"
                if name == DEFAULT and kind not in DEFAULT_KINDS:
                    continue
                try:
                    if kind in CAPPED_KINDS:
                        with procs.CpuLimit(running[name].pid, args.cpu_limit, "h2", CAP_PERIOD_US) as cap:
                            if not cap.applied:
                                raise measure.LoadFailed("no cgroup CPU controller to cap the proxy with")
                            fig = measure_subject(ctx, running[name].port, {"subject": running[name].pid,
                                                                            "backend": backend.pid}, args,
                                                  kind.removesuffix(CAPPED))
                    elif name == "direct":
                        procs.pin_tree(backend.pid, measure.SUBJECT_CPU)
                        try:
                            fig = measure_subject(ctx, backend.port, {"backend": backend.pid}, args, kind)
                        finally:
                            procs.pin_tree(backend.pid, measure.LOAD_CPU)
                    else:
                        fig = measure_subject(ctx, running[name].port,
                                              {"subject": running[name].pid, "backend": backend.pid}, args, kind)
                except measure.LoadFailed as e:
                    fig = {"status": "failed", "reason": str(e)}
                rounds[kind][name].append(fig)
                print(f"round {i + 1} {kind:6} {name:8} {fig.get('requests_per_sec', 0):>10,.0f} req/s  "
                      f"failed {fig.get('failed', '?')}", flush=True)
    out = {}
    for kind in KINDS:
        out[kind] = {}
        for name in ["direct", *starters]:
            if name in failed:
                out[kind][name] = failed[name]
                continue
            if not rounds[kind][name]:
                continue
            good = sorted((f for f in rounds[kind][name] if "requests_per_sec" in f),
                          key=lambda f: f["requests_per_sec"])
            if len(good) < len(rounds[kind][name]) or not good:
                bad = [f for f in rounds[kind][name] if "requests_per_sec" not in f]
                out[kind][name] = bad[0] if bad else {"status": "failed", "reason": "no round"}
                continue
            med = dict(good[(len(good) - 1) // 2])
            med["rounds_requests_per_sec"] = [f["requests_per_sec"] for f in rounds[kind][name]]
            med["rounds_failed"] = [f["failed"] for f in rounds[kind][name]]
            med["rounds_requests"] = [f["requests"] for f in rounds[kind][name]]
            med["rounds_p99_us"] = [f["p99_us"] for f in rounds[kind][name]]
            who = "subject" if name != "direct" else "backend"
            med["rounds_cpu_us_per_request"] = [f["cpu_percent"][who] / 100 * 1e6 / f["requests_per_sec"]
                                                for f in rounds[kind][name] if f.get("cpu_percent", {}).get(who)]
            if med["rounds_cpu_us_per_request"]:  # the median over the rounds, not the median round's
                med["cpu_us_per_request"] = statistics.median(med["rounds_cpu_us_per_request"])
            out[kind][name] = med
    return out


CAPPED = "-capped"
DEFAULT = "gyrus-default"  # gyrus as it comes: a new X-Request-ID for every request
DEFAULT_KINDS = ("h2", "grpc")
CAPPED_KINDS = ("h2" + CAPPED, "grpc" + CAPPED)
KINDS = ("h2", "h2-nginx", "grpc", "rotate", *CAPPED_KINDS)
CAP_PERIOD_US = 10_000  # a short CFS period: a throttled proxy waits at most a few ms


def ratio(res, a, b, key):
    ra, rb = res.get(a, {}), res.get(b, {})
    return ra[key] / rb[key] if key in ra and key in rb and rb[key] else None


def paired(res, other, key="rounds_requests_per_sec", who="gyrus"):
    """Median over the rounds of `who`'s figure (req/s, p99) over `other`'s in the same round."""
    g, o = res.get(who, {}), res.get(other, {})
    ratios = [a / b for a, b in zip(g.get(key, []), o.get(key, [])) if b]
    return statistics.median(ratios) if ratios else 0.0


def backend_us(r):
    """The backend's CPU µs per request in the median round (it is pinned with the load)."""
    cpu = r.get("cpu_percent", {}).get("backend")
    return cpu / 100 * 1e6 / r["requests_per_sec"] if cpu and r.get("requests_per_sec") else None


def markdown(res, args):
    lines = ["", "## HTTP/2 and gRPC", "",
             f"h2load over h2c, {args.connections} connections × {args.streams} concurrent streams, {args.duration} s "
             f"after {args.warmup} s of warm-up; each proxy speaks HTTP/2 to its backend too (gyrus: "
             "`http2_protocol_options` on the cluster; nghttpx: `proto=h2`; HAProxy: `proto h2` both sides), one "
             "worker/thread pinned to one CPU, h2load and the backend on the other. *h2c GET*: GET / to nghttpd "
             "serving a 64-byte file. *h2c GET to nginx*: the same GET to an nginx http2 backend (`return 200`). "
             "*gRPC*: POST of a 16-byte gRPC message (`content-type: application/grpc`, `te: trailers`) to "
             "nghttpd answering a gRPC frame plus `grpc-status`/`grpc-message` trailers — gRPC-shaped unary calls, "
             "the same driver for every proxy. p50/p99 from h2load's per-request log. Every proxy adds "
             "X-Forwarded-For, X-Forwarded-Proto and Via, as gyrus does by default. None adds an X-Request-ID: "
             "nghttpx cannot make one, so gyrus runs with `generate_request_id: false` and HAProxy without "
             "`unique-id-header`. A new id in every request is a literal the backend must decode each time "
             f"(a value that never repeats gains nothing from the HPACK table). *{DEFAULT}* is gyrus as it comes, "
             "making one for every request, measured in the two uncapped cases with no target: it shows what the "
             "id costs. "
             f"All proxies run at once and {args.rounds} rounds measure each subject in turn, the proxies taking "
             "turns at going first; the row shows the round with the subject's median req/s, then every round's "
             "req/s and p99. CPU is the subject's (the "
             "backend's for *direct*), and CPU µs per request is that CPU divided by the rate (the median over the "
             "rounds).", ""]
    cap = f"each proxy capped at {args.cpu_limit:g} CPU"
    for kind, title in (("h2", "h2c GET"), ("grpc", "gRPC-shaped unary"), ("h2-nginx", "h2c GET to nginx"),
                        ("h2" + CAPPED, f"h2c GET, {cap}"),
                        ("grpc" + CAPPED, f"gRPC-shaped unary, {cap}")):  # "rotate": its own table below
        if kind == "h2-nginx":
            cost = ratio({"a": res[kind].get("direct", {}), "b": res["h2"].get("direct", {})}, "a", "b",
                         "cpu_us_per_request")
            times = f"{cost:.1f} times" if cost else "several times"
            lines += ["**The same GET to nginx: a measure of the load CPU, no target.** nginx sends each response in "
                      f"two writev calls (HEADERS, then DATA) and costs {times} the CPU per request that nghttpd "
                      "costs (the *direct* rows). With it as the backend the load CPU, which also runs h2load, is "
                      "full before any proxy is: no proxy reaches 100 % of its CPU, the rate is the load CPU's, and "
                      "the proxies tie within this machine's noise, ahead or behind from one run to the next. That is "
                      "why the h2c GET above goes to nghttpd. The ratios are shown, with no target.", ""]
        if kind == "h2" + CAPPED:
            lines += [f"**With a CPU limit.** Without one, a proxy is short of CPU only when it needs more per "
                      "request than the load CPU, which runs h2load and the backend (see the CPU column). These two "
                      "cases give each proxy the same CPU budget, "
                      f"{args.cpu_limit:g} of one CPU (a cgroup CPU quota over {CAP_PERIOD_US // 1000} ms periods, "
                      f"as `limits.cpu: {args.cpu_limit * 1000:g}m` would a sidecar), so that the rate is the "
                      "proxy's: what it does with the CPU it is given.", ""]
        lines += [f"**{title}**", "",
                  "| subject | req/s (median round) | p50 | p99 | failed | CPU | CPU µs / request | req/s of each round "
                  "| p99 of each round (ms) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for name in ("direct", "gyrus", "nghttpx", "haproxy", DEFAULT):
            if (name == "direct" and kind.endswith(CAPPED)) or (name == DEFAULT and name not in res[kind]):
                continue
            r = res[kind].get(name, {})
            if "requests_per_sec" not in r:
                lines.append(f"| {name} | failed: {r.get('reason', '?')[:120]} | | | | | | | |")
                continue
            cpu = r.get("cpu_percent", {}).get("subject" if name != "direct" else "backend") or 0
            each = ", ".join(f"{x:,.0f}" for x in r.get("rounds_requests_per_sec", []))
            each_p99 = ", ".join(f"{x / 1000:.1f}" for x in r.get("rounds_p99_us", []))
            lines.append(f"| {name} | {r['requests_per_sec']:,.0f} | {r['p50_us'] / 1000:.2f} ms | "
                         f"{r['p99_us'] / 1000:.2f} ms | {r['failed']:,} | {cpu:.0f} % | "
                         f"{r.get('cpu_us_per_request', 0):.1f} | {each} | {each_p99} |")
        rn, rh = ratio(res[kind], "gyrus", "nghttpx", "requests_per_sec"), ratio(res[kind], "gyrus", "haproxy",
                                                                                  "requests_per_sec")
        pn, ph = ratio(res[kind], "gyrus", "nghttpx", "p99_us"), ratio(res[kind], "gyrus", "haproxy", "p99_us")
        cn, ch = (ratio(res[kind], "gyrus", "nghttpx", "cpu_us_per_request"),
                  ratio(res[kind], "gyrus", "haproxy", "cpu_us_per_request"))
        if rn is not None and rh is not None:
            pr = {other: paired(res[kind], other) for other in ("nghttpx", "haproxy")}
            pp = {other: paired(res[kind], other, "rounds_p99_us") for other in ("nghttpx", "haproxy")}
            target = kind != "h2-nginx"
            lines += ["", f"gyrus/nghttpx req/s = {rn:.3f}, gyrus/HAProxy req/s = {rh:.3f} ({'target ≥ 1; ' * target}the median "
                          f"of the per-round ratios, each pair measured seconds apart, one case's subjects back to back, so "
                          f"that a drift of this machine's speed cancels out: {pr['nghttpx']:.3f} and {pr['haproxy']:.3f}); "
                          f"p99 gyrus/nghttpx = {pn:.3f}, gyrus/HAProxy = {ph:.3f} ({'target ≤ 1; ' * target}per-round: "
                          f"{pp['nghttpx']:.3f} and {pp['haproxy']:.3f})"
                          + (f"; CPU per request gyrus/nghttpx = {cn:.3f}, gyrus/HAProxy = {ch:.3f} (lower is better)."
                             if cn is not None and ch is not None else ".")]
        dn = ratio(res[kind], DEFAULT, "nghttpx", "requests_per_sec")
        dp = ratio(res[kind], DEFAULT, "nghttpx", "p99_us")
        if dn is not None and dp is not None:
            be = {name: backend_us(res[kind].get(name, {})) for name in ("gyrus", DEFAULT, "nghttpx")}
            lines += ["", f"{DEFAULT} (with X-Request-ID, no target): req/s over nghttpx's = {dn:.3f} (per-round: "
                          f"{paired(res[kind], 'nghttpx', who=DEFAULT):.3f}), p99 = {dp:.3f} (per-round: "
                          f"{paired(res[kind], 'nghttpx', 'rounds_p99_us', DEFAULT):.3f}); the backend's CPU per "
                          "request in the median round behind gyrus without the id, with it, and behind nghttpx: "
                          + ", ".join(f"{be[n]:.2f} µs" if be[n] else "?" for n in ("gyrus", DEFAULT, "nghttpx")) + "."]
        lines.append("")
    lines += ["**An upstream that ends its connections**", "",
              f"h2c GET through each proxy to nginx with `keepalive_requests {ROTATE_REQUESTS}` (its default): every "
              f"upstream connection ends by GOAWAY after {ROTATE_REQUESTS:,} requests, and the streams past the "
              "GOAWAY's last stream id were not processed (RFC 9113 §6.8), so a proxy may send them again on "
              "another connection. Failed = requests h2load saw fail (5xx or reset streams), summed over the "
              "rounds.", "",
              "| subject | req/s (median round) | failed, all rounds | requests, all rounds | failed per million |",
              "|---|---|---|---|---|"]
    for name in ("gyrus", "nghttpx", "haproxy"):
        r = res.get("rotate", {}).get(name, {})
        if "requests_per_sec" not in r:
            lines.append(f"| {name} | failed: {r.get('reason', '?')[:120]} | | | |")
            continue
        nf, nr = sum(r["rounds_failed"]), sum(r["rounds_requests"])
        lines.append(f"| {name} | {r['requests_per_sec']:,.0f} | {nf:,} | {nr:,} | {nf / nr * 1e6 if nr else 0:,.1f} |")
    lines.append("")
    return "\n".join(lines)


def main():
    ap = section.parser(__doc__, connections=64, duration=5, warmup=1)
    ap.add_argument("--streams", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--cpu-limit", type=float, default=0.5,
                    help="share of one CPU each proxy may use in the *capped* cases")
    ap.add_argument("--rerender", action="store_true",
                    help="write the markdown section again from the JSON results, without measuring")
    args = ap.parse_args()
    if args.rerender:
        section.rerender(args, markdown, "h2")
        return 0
    res = section.run("h2", args, run, markdown, "h2",
                      {"connections": args.connections, "streams": args.streams, "duration_s": args.duration,
                       "rounds": args.rounds})
    if res is None:
        return 2
    for kind in KINDS:
        for name, r in res[kind].items():
            print(f"{kind:6} {name:8} " + (f"{r['requests_per_sec']:>10,.0f} req/s  p50 {r['p50_us'] / 1000:.2f} ms  "
                                           f"p99 {r['p99_us'] / 1000:.2f} ms  failed {r['failed']}"
                                           if "requests_per_sec" in r else r.get("reason", "")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
