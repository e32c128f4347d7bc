#!/usr/bin/python3
"""Sidecar to sidecar: what mTLS between two proxies adds to latency, for gyrus and HAProxy.

    bench/mtls.py --gyrus ./build/gyrus        (run by `make bench` after bench/tls.py)

A chain as in a mesh: client -> outbound sidecar (plain HTTP in) -> inbound sidecar -> the
nginx backend. The hop between the two sidecars is plain HTTP, or mTLS: the inbound sidecar
requires a client certificate from the mesh CA, the outbound one presents its own and verifies
the inbound one's. Both sidecars of a chain run on the subject CPU (one worker each), the
client and the backend on the load CPU. Connections between the sidecars are kept alive, as
sidecars keep them; the client is wrk with a few connections (light load, so the latency is the
path's own rather than queueing), for a fixed time.

Figures: p50/p99 of each chain plain and mTLS, and the p99 mTLS adds (mTLS p99 − plain p99),
for gyrus and HAProxy in the same run. Appends a section to docs/BENCHMARKS.md and an "mtls"
key to bench/results.json.
"""

import os
import subprocess
import sys

import measure
import procs
import section
from subjects import (BODY, Context, Running, SubjectFailed, _write, free_port, http_get, start_backend,
                      wait_until)

CIPHERS12 = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384"


def make_pki(tmp):
    """A mesh CA, a server certificate for the inbound sidecar and a client one for the outbound."""
    def ossl(*a):
        subprocess.run(["openssl", *a], check=True, capture_output=True, timeout=60)
    ca_key, ca = f"{tmp}/ca.key", f"{tmp}/ca.pem"
    ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", ca_key,
         "-out", ca, "-days", "30", "-subj", "/CN=bench mesh CA")
    out = {"ca": ca}
    for name, ext in (("inbound", "subjectAltName=DNS:localhost,IP:127.0.0.1,URI:spiffe://bench/inbound\n"
                                  "extendedKeyUsage=serverAuth\n"),
                      ("outbound", "subjectAltName=URI:spiffe://bench/outbound\nextendedKeyUsage=clientAuth\n")):
        key, csr, cert = f"{tmp}/{name}.key", f"{tmp}/{name}.csr", f"{tmp}/{name}.pem"
        ossl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
             "-out", csr, "-subj", f"/CN={name}")
        ossl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert, "-days",
             "30", "-extfile", _write(f"{tmp}/{name}.ext", ext))
        with open(cert) as c, open(key) as k:
            pem = _write(f"{tmp}/{name}-haproxy.pem", c.read() + k.read())
        out[name] = {"cert": cert, "key": key, "pem": pem}
    return out


# ---------------------------------------------------------------- gyrus

def gyrus_mesh(name, port, upstream_port, listener_ssl="", cluster_ssl=""):
    return f"""\
- {{kind: listener, listener_key: in, name: in, ip: 127.0.0.1, port: {port}, domain_keys: [in]{listener_ssl}}}
- {{kind: domain, domain_key: in, name: "*", port: {port}}}
- {{kind: proxy, proxy_key: {name}, name: {name}, listener_keys: [in]}}
- {{kind: cluster, cluster_key: up, name: up, instances: [{{host: 127.0.0.1, port: {upstream_port}}}]{cluster_ssl}}}
- {{kind: route, route_key: root, domain_key: in, route_match: {{path: /}},
   rules: [{{constraints: {{light: [{{cluster_key: up, weight: 1}}]}}}}]}}
"""


def gyrus_chain(ctx, args, pki, mtls):
    p_out, p_in = free_port(), free_port()
    lssl = csl = ""
    if mtls:
        lssl = (f", ssl_config: {{cert_key_pairs: [{{certificate_path: {pki['inbound']['cert']}, "
                f"key_path: {pki['inbound']['key']}}}], trust_file: {pki['ca']}, require_client_certs: true, "
                f"protocols: [TLSv1_2, TLSv1_3], cipher_filter: \"{CIPHERS12}\"}}")
        csl = (f", ssl_config: {{cert_key_pairs: [{{certificate_path: {pki['outbound']['cert']}, "
               f"key_path: {pki['outbound']['key']}}}], trust_file: {pki['ca']}, sni: localhost}}")
    tag = "mtls" if mtls else "plain"
    procs_ = []
    for name, port, up, l, c in (("inbound", p_in, ctx.backend_port, lssl, ""), ("outbound", p_out, p_in, "", csl)):
        admin = free_port()
        conf = _write(f"{ctx.tmp}/gyrus-{name}-{tag}.yaml", gyrus_mesh(name, port, up, l, c))
        log = f"{ctx.tmp}/gyrus-{name}-{tag}.log"
        proc = ctx.registry.start([os.path.abspath(args.gyrus), "proxy", "--config", conf, "--name", name,
                                   "--workers", "1", "--admin", f"127.0.0.1:{admin}"],
                                  cpu=measure.SUBJECT_CPU, log_path=log)
        r = Running(f"gyrus-{name}", proc, port, [log])
        wait_until(r, lambda a=admin: http_get(a, "/ready")[0] == 200, f"gyrus {name} /ready")
        procs_.append(r)
    return procs_


# ---------------------------------------------------------------- HAProxy

def haproxy_cfg(port, upstream_port, bind_ssl="", server_ssl=""):
    return f"""\
global
    nbthread 1
    maxconn 4000
    ssl-default-bind-ciphers {CIPHERS12}
    ssl-default-bind-options ssl-min-ver TLSv1.2
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-keep-alive 300s
frontend in
    bind 127.0.0.1:{port}{bind_ssl}
    default_backend up
backend up
    server up 127.0.0.1:{upstream_port}{server_ssl}
"""


def haproxy_chain(ctx, pki, mtls):
    p_out, p_in = free_port(), free_port()
    bind = server = ""
    if mtls:
        bind = f" ssl crt {pki['inbound']['pem']} ca-file {pki['ca']} verify required"
        server = f" ssl crt {pki['outbound']['pem']} ca-file {pki['ca']} verify required sni str(localhost)"
    tag = "mtls" if mtls else "plain"
    out = []
    for name, port, up, b, s in (("inbound", p_in, ctx.backend_port, bind, ""), ("outbound", p_out, p_in, "", server)):
        conf = _write(f"{ctx.tmp}/haproxy-{name}-{tag}.cfg", haproxy_cfg(port, up, b, s))
        log = f"{ctx.tmp}/haproxy-{name}-{tag}.log"
        proc = ctx.registry.start(["haproxy", "-db", "-f", conf], cpu=measure.SUBJECT_CPU, log_path=log)
        out.append(Running(f"haproxy-{name}", proc, port, [log]))
    return out


# ---------------------------------------------------------------- measurement

def measure_chain(ctx, chain, args):
    entry = chain[-1]  # the outbound sidecar, where the client connects
    wait_until(entry, lambda: http_get(entry.port)[1] == BODY, "GET / through the chain")

    def run(duration):
        argv = ["wrk", "-t1", f"-c{args.connections}", f"-d{duration}s", "--timeout", "5s",
                "-s", measure.WRK_LUA, f"http://127.0.0.1:{entry.port}/"]
        p = ctx.registry.start(argv, cpu=measure.LOAD_CPU, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        out, _ = p.communicate(timeout=duration + 30)
        ctx.registry.forget(p)
        if p.returncode != 0:
            raise measure.LoadFailed(f"wrk exited with {p.returncode}: {out[-400:]}")
        return measure.parse_wrk(out)
    run(args.warmup)
    meter = procs.CpuMeter({r.name: r.pid for r in chain})
    meter.start()
    raw = run(args.duration)
    cpu = meter.stop()
    for r in chain:
        if r.proc.poll() is not None:
            raise SubjectFailed(f"{r.name} exited with {r.proc.returncode} during the run")
    return {"requests_per_sec": raw["requests_per_sec"], "requests": raw["requests"],
            "errors": sum(raw["errors"].values()), "p50_us": raw["latency_us"]["p50"],
            "p99_us": raw["latency_us"]["p99"], "cpu_percent": cpu}


def median_run(runs):
    """The run with the median p99 of several (its own p50 and rate go with it), and the spread."""
    ordered = sorted(runs, key=lambda r: r["p99_us"])
    mid = dict(ordered[len(ordered) // 2])
    mid["p99_runs_us"] = [r["p99_us"] for r in runs]
    mid["errors"] = sum(r["errors"] for r in runs)
    return mid


def run(args, tmp, registry, nofile):
    """All four chains are started first; then `rounds` rounds measure each in turn, so that a
    disturbance of the machine falls on all of them alike, and the median round counts."""
    ctx = Context(tmp, registry, nofile)
    pki = make_pki(tmp)
    backend = start_backend(ctx, measure.LOAD_CPU)
    starters = {"gyrus": lambda m: gyrus_chain(ctx, args, pki, m), "haproxy": lambda m: haproxy_chain(ctx, pki, m)}
    chains, out = {}, {}
    for subject, start in starters.items():
        try:
            chains[subject] = {hop: start(hop == "mtls") for hop in ("plain", "mtls")}
        except SubjectFailed as e:
            out[subject] = {"status": "failed", "reason": str(e)}
    runs = {(s, hop): [] for s in chains for hop in ("plain", "mtls")}
    for _ in range(args.rounds):
        for (subject, hop), got in runs.items():
            if subject in out:
                continue
            try:
                got.append(measure_chain(ctx, chains[subject][hop], args))
            except (SubjectFailed, measure.LoadFailed, subprocess.TimeoutExpired) as e:
                out[subject] = {"status": "failed", "reason": str(e)}
    for subject in chains:
        if subject not in out:
            res = {hop: median_run(runs[(subject, hop)]) for hop in ("plain", "mtls")}
            res["added_p99_us"] = res["mtls"]["p99_us"] - res["plain"]["p99_us"]
            res["added_p50_us"] = res["mtls"]["p50_us"] - res["plain"]["p50_us"]
            out[subject] = res
        for chain in chains[subject].values():
            for r in chain:
                registry.stop(r.proc)
    registry.stop(backend.proc)
    return out


def markdown(res, args):
    lines = ["", "## mTLS between sidecars", "",
             "client → outbound sidecar → inbound sidecar → backend; the hop between the sidecars plain, or "
             "mTLS (ECDSA P-256 certificates from one CA, client certificate required and verified, server "
             "name verified), kept alive. Both sidecars on the subject CPU, one worker each; wrk with "
             f"{args.connections} connections for {args.duration} s (light load: the path's latency, not a queue). "
             f"{args.rounds} rounds, each chain measured once per round in turn; the round with the median p99 is "
             "shown, with every round's p99.",
             "", "| chain | hop | req/s | p50 | p99 | p99 of each round | errors |", "|---|---|---|---|---|---|---|"]
    for name in ("gyrus", "haproxy"):
        r = res.get(name, {})
        if "plain" not in r or "mtls" not in r:
            why = " ".join(r.get("reason", "?").split())[-200:].replace("|", "/")
            lines.append(f"| {name} | failed: {why} | | | | | |")
            continue
        for hop in ("plain", "mtls"):
            m = r[hop]
            each = ", ".join(f"{v / 1000:.2f}" for v in m["p99_runs_us"])
            lines.append(f"| {name} | {hop} | {m['requests_per_sec']:,.0f} | {m['p50_us'] / 1000:.3f} ms | "
                         f"{m['p99_us'] / 1000:.3f} ms | {each} ms | {m['errors']} |")
    g, h = res.get("gyrus", {}), res.get("haproxy", {})
    if "added_p99_us" in g and "added_p99_us" in h:
        lines += ["", f"p99 added by mTLS: gyrus {g['added_p99_us'] / 1000:+.3f} ms, HAProxy "
                      f"{h['added_p99_us'] / 1000:+.3f} ms; mTLS chain p99 gyrus / HAProxy "
                      f"{g['mtls']['p99_us'] / h['mtls']['p99_us']:.3f} (target: ≤ 1)."]
    return "\n".join(lines) + "\n"


def main():
    ap = section.parser(__doc__, connections=4)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    res = section.run("mtls", args, run, markdown, "mtls",
                      {"connections": args.connections, "duration_s": args.duration, "rounds": args.rounds})
    if res is None:
        return 2
    for name, r in res.items():
        if "added_p99_us" in r:
            print(f"{name:8} plain p99 {r['plain']['p99_us'] / 1000:.3f} ms  mTLS p99 {r['mtls']['p99_us'] / 1000:.3f} ms"
                  f"  added {r['added_p99_us'] / 1000:+.3f} ms  ({r['mtls']['requests_per_sec']:,.0f} req/s mTLS)")
        else:
            print(f"{name:8} {r.get('reason', '')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
