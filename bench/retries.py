#!/usr/bin/python3
"""Retries under a failing backend: gyrus vs HAProxy with equivalent retry settings.

    bench/retries.py --gyrus ./build/gyrus        (run by `make bench` after bench/run.py)

A backend nginx answers 503 to 10% of requests at random ($request_id split). Each subject
retries 503s up to twice; the figures are the success rate seen by wrk's clients and the
added p99 against the same failing backend without a proxy (the direct path). Appends a
section to docs/BENCHMARKS.md and a "retries" key to bench/results.json.
"""

import os
import sys

import measure
import section
import procs
from subjects import (BODY, Context, SubjectFailed, _nginx_common, _start_nginx, _write, free_port, gyrus_argv,
                      http_get, wait_until)

FAIL_PERCENT = 10
RETRIES = 2


def failing_backend_config(tmp, port, nofile):
    return _nginx_common(tmp, "failing", nofile) + f"""\
    default_type text/plain;
    split_clients "$request_id" $fail {{
        {FAIL_PERCENT}% 1;
        * 0;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            if ($fail) {{ return 503 "failed\\n"; }}
            return 200 "{BODY.decode()}";
        }}
    }}
}}
"""


def haproxy_retry_config(port, backend_port):
    return f"""\
global
    nbthread 1
    maxconn 4096
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend ingress
    bind 127.0.0.1:{port}
    default_backend backend
backend backend
    retries {RETRIES}
    retry-on 503
    server backend 127.0.0.1:{backend_port}
"""


def gyrus_retry_config(port, backend_port):
    return f"""\
- {{kind: listener, listener_key: ingress, name: ingress, ip: 127.0.0.1, port: {port}, domain_keys: [ingress]}}
- {{kind: domain, domain_key: ingress, name: "*", port: {port}}}
- {{kind: proxy, proxy_key: bench, name: bench, listener_keys: [ingress]}}
- {{kind: cluster, cluster_key: backend, name: backend, instances: [{{host: 127.0.0.1, port: {backend_port}}}],
   retry_budget: {{budget_percent: 100, min_retry_concurrency: 64}}, circuit_breakers: {{max_retries: 1024}}}}
- kind: route
  route_key: root
  domain_key: ingress
  route_match: {{path: /}}
  rules: [{{constraints: {{light: [{{cluster_key: backend, weight: 1}}]}}}}]
  retry_policy: {{num_retries: {RETRIES}, retry_on: "retriable-status-codes", retriable_status_codes: [503],
                 retry_back_off: {{base_interval: 0ms, max_interval: 0ms}}}}
"""


def start_failing_backend(ctx):
    port = free_port()
    running = _start_nginx(ctx, "failing", failing_backend_config(ctx.tmp, port, ctx.nofile), port, measure.LOAD_CPU)
    wait_until(running, lambda: http_get(port)[0] in (200, 503), "GET / on the failing backend")
    ctx.backend_port = port
    return running


def start_haproxy(ctx):
    port = free_port()
    conf = _write(f"{ctx.tmp}/haproxy-retry.cfg", haproxy_retry_config(port, ctx.backend_port))
    proc = ctx.registry.start(["haproxy", "-db", "-f", conf], cpu=measure.SUBJECT_CPU,
                              log_path=f"{ctx.tmp}/haproxy-retry.log")
    from subjects import Running
    running = Running("haproxy", proc, port, [f"{ctx.tmp}/haproxy-retry.log"])
    wait_until(running, lambda: http_get(port)[0] == 200, "GET / through haproxy")
    return running


def start_gyrus(ctx, binary):
    from subjects import Running
    port, admin = free_port(), free_port()
    conf = _write(f"{ctx.tmp}/mesh-retry.yaml", gyrus_retry_config(port, ctx.backend_port))
    proc = ctx.registry.start(gyrus_argv(os.path.abspath(binary), conf, admin), cpu=measure.SUBJECT_CPU,
                              log_path=f"{ctx.tmp}/gyrus-retry.log")
    running = Running("gyrus", proc, port, [f"{ctx.tmp}/gyrus-retry.log"])
    wait_until(running, lambda: http_get(admin, "/ready")[0] == 200, "GET /ready on admin")
    wait_until(running, lambda: http_get(port)[0] == 200, "GET / through gyrus")
    return running


def figures(raw):
    errors = raw["errors"]["status_ge_400"]
    return {
        "requests_per_sec": raw["requests_per_sec"],
        "requests": raw["requests"],
        "failed": errors,
        "success_rate": 1 - errors / raw["requests"] if raw["requests"] else 0.0,
        "p50_us": raw["latency_us"]["p50"],
        "p99_us": raw["latency_us"]["p99"],
        "socket_errors": sum(v for k, v in raw["errors"].items() if k != "status_ge_400"),
    }


def run(args, tmp, registry, nofile):
    ctx = Context(tmp, registry, nofile)
    backend = start_failing_backend(ctx)
    out = {}
    procs.pin_tree(backend.pid, measure.SUBJECT_CPU)
    try:
        out["direct"] = figures(measure.load(ctx, backend.port, {"backend": backend.pid}, args))
    finally:
        procs.pin_tree(backend.pid, measure.LOAD_CPU)
    for name, start in (("gyrus", lambda: start_gyrus(ctx, args.gyrus)), ("haproxy", lambda: start_haproxy(ctx))):
        try:
            r = start()
        except SubjectFailed as e:
            out[name] = {"status": "failed", "reason": str(e)}
            continue
        try:
            out[name] = figures(measure.load(ctx, r.port, {"subject": r.pid, "backend": backend.pid}, args))
        except measure.LoadFailed as e:
            out[name] = {"status": "failed", "reason": str(e)}
        finally:
            registry.stop(r.proc)
    for name in ("gyrus", "haproxy"):
        if "p99_us" in out.get(name, {}) and "p99_us" in out["direct"]:
            out[name]["added_p99_us"] = out[name]["p99_us"] - out["direct"]["p99_us"]
    return out


def markdown(res, args):
    lines = ["", "## Retries under a failing backend", "",
             f"The backend answers 503 to {FAIL_PERCENT}% of requests at random; each proxy retries 503s up to "
             f"{RETRIES} times (gyrus: `retry_policy` with `retriable_status_codes: [503]`, no backoff; HAProxy: "
             f"`retries {RETRIES}` + `retry-on 503`). Same wrk load as above ({args.connections} connections, "
             f"{args.duration} s). Expected success with two retries: 1 − 0.1³ = 99.9%.", "",
             "| subject | req/s | success rate | failed | p50 | p99 | added p99 vs direct |",
             "|---|---|---|---|---|---|---|"]
    for name in ("direct", "gyrus", "haproxy"):
        r = res.get(name, {})
        if "success_rate" not in r:
            lines.append(f"| {name} | failed: {r.get('reason', '?')} | | | | | |")
            continue
        added = f"{r['added_p99_us'] / 1000:.2f} ms" if "added_p99_us" in r else "—"
        lines.append(f"| {name} | {r['requests_per_sec']:,.0f} | {100 * r['success_rate']:.3f} % | {r['failed']:,} | "
                     f"{r['p50_us'] / 1000:.2f} ms | {r['p99_us'] / 1000:.2f} ms | {added} |")
    g, h = res.get("gyrus", {}), res.get("haproxy", {})
    if "success_rate" in g and "success_rate" in h:
        lines += ["", f"gyrus success rate {100 * g['success_rate']:.3f}% vs HAProxy {100 * h['success_rate']:.3f}%; "
                      f"gyrus req/s / HAProxy req/s = {g['requests_per_sec'] / h['requests_per_sec']:.3f}."]
    return "\n".join(lines) + "\n"


def main():
    ap = section.parser(__doc__)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    res = section.run("retries", args, run, markdown, "retries", {"fail_percent": FAIL_PERCENT, "retries": RETRIES})
    if res is None:
        return 2
    for name, r in res.items():
        print(f"{name:8} " + (f"{r['requests_per_sec']:>9,.0f} req/s  success {100 * r['success_rate']:.3f}%  "
                              f"p99 {r['p99_us'] / 1000:.2f} ms" if "success_rate" in r else r.get("reason", "")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
