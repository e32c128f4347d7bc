#!/usr/bin/python3
"""TLS termination: gyrus vs HAProxy vs nginx with the same certificate and ciphers.

    bench/tls.py --gyrus ./build/gyrus        (run by `make bench` after bench/run.py)

Each subject (one worker, pinned to the subject CPU) terminates TLS with the same certificate
and proxies to the same plain-HTTP nginx backend; each runs twice, with an ECDSA P-256 and with
an RSA 2048 certificate. All run at once and --rounds rounds measure each in turn (taking turns at
going first); every figure is the median over the rounds. Figures per subject:

- new TLS handshakes per second: `openssl s_time -new` (full handshakes, no resumption), several
  clients in parallel on the load CPU, for a fixed time. An ECDSA handshake costs the client
  about as much as the server (the client verifies a signature, the server makes one), so on
  a two-CPU machine the client side is the bottleneck and the raw rates come out close; the
  comparable figure is handshakes per second of subject CPU (rate / subject CPU share). An RSA
  signature costs the server far more than its check costs the client, so the RSA rate is
  bounded by the subject itself.
- requests per second and p99 over TLS keep-alive: wrk against https://, 64 connections.

Appends a section to docs/BENCHMARKS.md and a "tls" key to bench/results.json.
"""

import os
import re
import statistics
import subprocess
import sys
import time

import measure
import procs
import section
from subjects import (BODY, NGINX_FORWARDING, Context, Running, SubjectFailed, _nginx_common, _start_nginx, _write,
                      free_port, gyrus_argv, haproxy_forwarding, http_get, start_backend, wait_until)

# The same choices everywhere: OpenSSL's default TLS 1.3 suite order (gyrus has no setting for
# TLS 1.3 suites; it uses OpenSSL's), ECDHE-ECDSA AES-GCM / ChaCha20 for TLS 1.2, server preference,
# OpenSSL's default groups (X25519 first).
SUITES13 = "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"
CIPHERS12 = ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:"
             "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305")
KEYS = {"ecdsa": ("ECDSA P-256", ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]),
        "rsa": ("RSA 2048", ["-newkey", "rsa:2048"])}
GROUPS = "X25519:P-256:X448:P-521:P-384"


def make_certificate(tmp, kind):
    def ossl(*a):
        subprocess.run(["openssl", *a], check=True, capture_output=True, timeout=60)
    newkey = KEYS[kind][1]
    ca_key, ca, key, csr, cert = (f"{tmp}/{kind}-{n}" for n in ("ca.key", "ca.pem", "server.key", "server.csr",
                                                               "server.pem"))
    ossl("req", "-x509", *newkey, "-nodes", "-keyout", ca_key, "-out", ca, "-days", "30", "-subj", "/CN=bench CA")
    ossl("req", "-new", *newkey, "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=localhost")
    ext = _write(f"{tmp}/server.ext", "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    ossl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert, "-days", "30",
         "-extfile", ext)
    with open(cert) as c, open(key) as k:
        pem = _write(f"{tmp}/{kind}-server-haproxy.pem", c.read() + k.read())
    return {"cert": cert, "key": key, "pem": pem, "ca": ca, "kind": kind}


# ---------------------------------------------------------------- subjects

def gyrus_config(port, backend_port, crt):
    return f"""\
- kind: listener
  listener_key: ingress
  name: ingress
  ip: 127.0.0.1
  port: {port}
  domain_keys: [ingress]
  ssl_config:
    cert_key_pairs: [{{certificate_path: {crt['cert']}, key_path: {crt['key']}}}]
    protocols: [TLSv1_2, TLSv1_3]
    cipher_filter: "{CIPHERS12}"
- {{kind: domain, domain_key: ingress, name: "*", port: {port}}}
- {{kind: proxy, proxy_key: bench, name: bench, listener_keys: [ingress]}}
- {{kind: cluster, cluster_key: backend, name: backend, instances: [{{host: 127.0.0.1, port: {backend_port}}}]}}
- kind: route
  route_key: root
  domain_key: ingress
  route_match: {{path: /}}
  rules: [{{constraints: {{light: [{{cluster_key: backend, weight: 1}}]}}}}]
"""


def haproxy_config(port, backend_port, crt, nofile):
    return f"""\
global
    nbthread 1
    maxconn {max(1000, (nofile - 100) // 2)}
    ssl-default-bind-ciphers {CIPHERS12}
    ssl-default-bind-ciphersuites {SUITES13}
    ssl-default-bind-curves {GROUPS}
    ssl-default-bind-options ssl-min-ver TLSv1.2
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-keep-alive 300s
frontend ingress
    bind 127.0.0.1:{port} ssl crt {crt['pem']}
{haproxy_forwarding("1.1", proto="https")}    default_backend backend
backend backend
    server backend 127.0.0.1:{backend_port}
"""


def nginx_config(tmp, tag, port, backend_port, crt, nofile):
    return _nginx_common(tmp, tag, nofile) + f"""\
    upstream backend {{
        server 127.0.0.1:{backend_port};
        keepalive 1024;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port} ssl backlog=4096;
        ssl_certificate {crt['cert']};
        ssl_certificate_key {crt['key']};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ciphers {CIPHERS12};
        ssl_prefer_server_ciphers on;
        ssl_conf_command Ciphersuites {SUITES13};
        ssl_ecdh_curve {GROUPS};
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
{NGINX_FORWARDING}        }}
    }}
}}
"""


def https_ok(port, ca):
    r = subprocess.run(["curl", "-sS", "--cacert", ca, f"https://localhost:{port}/"], capture_output=True, timeout=5)
    if r.returncode != 0:
        return False
    if r.stdout != BODY:
        raise SubjectFailed(f"GET / over TLS returned {r.stdout[:80]!r}")
    return True


def start_subject(ctx, name, args, crt):
    port = free_port()
    if name == "gyrus":
        admin = free_port()
        conf = _write(f"{ctx.tmp}/mesh-tls-{crt['kind']}.yaml", gyrus_config(port, ctx.backend_port, crt))
        log = f"{ctx.tmp}/gyrus-tls-{crt['kind']}.log"
        proc = ctx.registry.start(gyrus_argv(os.path.abspath(args.gyrus), conf, admin), cpu=measure.SUBJECT_CPU,
                                  log_path=log)
        running = Running("gyrus", proc, port, [log])
        wait_until(running, lambda: http_get(admin, "/ready")[0] == 200, "GET /ready on admin")
    elif name == "haproxy":
        conf = _write(f"{ctx.tmp}/haproxy-tls-{crt['kind']}.cfg", haproxy_config(port, ctx.backend_port, crt,
                                                                                 ctx.nofile))
        log = f"{ctx.tmp}/haproxy-tls-{crt['kind']}.log"
        proc = ctx.registry.start(["haproxy", "-db", "-f", conf], cpu=measure.SUBJECT_CPU, log_path=log)
        running = Running("haproxy", proc, port, [log])
    else:
        tag = f"nginx-tls-{crt['kind']}"
        os.makedirs(f"{ctx.tmp}/{tag}-temp", exist_ok=True)
        running = _start_nginx(ctx, tag, nginx_config(ctx.tmp, tag, port, ctx.backend_port, crt, ctx.nofile),
                               port, measure.SUBJECT_CPU)
    wait_until(running, lambda: https_ok(port, crt["ca"]), f"GET / over TLS through {name}")
    return running


def negotiated(port):
    """What a default OpenSSL client gets: protocol, suite, key exchange group."""
    out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost"],
                         input=b"", capture_output=True, timeout=10).stdout.decode("latin1")
    get = lambda pat: (re.search(pat, out) or [None, "?"])[1]  # noqa: E731
    return {"protocol": get(r"New, (TLSv[\d.]+)"), "cipher": get(r"Cipher is (\S+)"),
            "group": get(r"Server Temp Key: ([^,\s]+)")}


# ---------------------------------------------------------------- measurements

def handshakes(ctx, port, pid, seconds, clients, cpu_limit=None):
    """Full handshakes per second from `clients` parallel `openssl s_time -new` runs; with
    cpu_limit, the subject is capped at that share of one CPU meanwhile."""
    argv = ["openssl", "s_time", "-connect", f"127.0.0.1:{port}", "-new", "-time", str(seconds)]
    if not cpu_limit:
        return _handshakes(ctx, argv, pid, seconds, clients, None)
    with procs.CpuLimit(pid, cpu_limit, "tls") as cap:  # no cgroup to write: measured without the cap
        return _handshakes(ctx, argv, pid, seconds, clients, cpu_limit if cap.applied else None)


def _handshakes(ctx, argv, pid, seconds, clients, cpu_limit):
    meter = procs.CpuMeter({"subject": pid})
    meter.start()
    t0 = time.monotonic()
    running = [ctx.registry.start(argv, cpu=measure.LOAD_CPU, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True) for _ in range(clients)]
    total = 0
    for p in running:
        out, _ = p.communicate(timeout=seconds + 60)
        ctx.registry.forget(p)
        m = re.search(r"(\d+) connections in [\d.]+ real seconds", out)
        if p.returncode != 0 or m is None:
            raise measure.LoadFailed(f"openssl s_time failed ({p.returncode}): {out[-400:]}")
        total += int(m.group(1))
    wall = time.monotonic() - t0
    cpu = meter.stop()
    rate = total / wall
    share = (cpu.get("subject") or 0) / 100.0
    return {"handshakes": total, "seconds": round(wall, 2), "per_sec": round(rate, 1), "cpu_limit": cpu_limit,
            "subject_cpu_percent": cpu.get("subject"), "per_subject_cpu_sec": round(rate / share, 1) if share else None,
            "cpu": cpu}


def keepalive_capped(ctx, port, pid, args):
    """The same with the subject capped at args.ka_cpu_limit of one CPU (10 ms CFS periods), so
    that the rate is the proxy's and not wrk's: wrk's TLS costs the load CPU as much as the proxy's."""
    with procs.CpuLimit(pid, args.ka_cpu_limit, "tls-ka", 10_000) as cap:
        if not cap.applied:
            raise measure.LoadFailed("no cgroup CPU controller to cap the subject with")
        return keepalive(ctx, port, pid, args)


def keepalive(ctx, port, pid, args):
    """wrk over https:// (keep-alive), warm-up then a measured run."""
    def run(duration):
        argv = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{duration}s", "--timeout", "5s",
                "-s", measure.WRK_LUA, f"https://127.0.0.1:{port}/"]
        p = ctx.registry.start(argv, cpu=measure.LOAD_CPU, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        out, _ = p.communicate(timeout=duration + 30)
        ctx.registry.forget(p)
        if p.returncode != 0:
            raise measure.LoadFailed(f"wrk exited with {p.returncode}: {out[-400:]}")
        return measure.parse_wrk(out)
    run(args.warmup)
    meter = procs.CpuMeter({"subject": pid})
    meter.start()
    raw = run(args.duration)
    cpu = meter.stop()
    errors = sum(raw["errors"].values())
    return {"requests_per_sec": raw["requests_per_sec"], "requests": raw["requests"], "errors": errors,
            "p50_us": raw["latency_us"]["p50"], "p99_us": raw["latency_us"]["p99"],
            "subject_cpu_percent": cpu.get("subject")}


SUBJECTS = ("gyrus", "haproxy", "nginx")


def median_of(rounds, key):
    """The round with the median value of key (rounds that failed are left out)."""
    good = sorted((r for r in rounds if key(r) is not None), key=key)
    return good[(len(good) - 1) // 2] if good else None


def run(args, tmp, registry, nofile):
    """Every subject runs twice at once, once with each key type; then `rounds` rounds measure each
    subject in turn, so that a disturbance of this shared machine falls on all of them alike. Each
    figure is the median over the rounds."""
    ctx = Context(tmp, registry, nofile)
    crts = {kind: make_certificate(tmp, kind) for kind in KEYS}
    start_backend(ctx, measure.LOAD_CPU)
    running, out = {}, {}
    for name in SUBJECTS:
        try:
            running[name] = {kind: start_subject(ctx, name, args, crt) for kind, crt in crts.items()}
            out[name] = {"negotiated": negotiated(running[name]["ecdsa"].port), "rounds": []}
        except (SubjectFailed, subprocess.TimeoutExpired) as e:
            out[name] = {"status": "failed", "reason": str(e)}
    for i in range(args.rounds):
        # The subjects take turns at going first: in a fixed order the first one is at a
        # disadvantage (found in bench/h2.py with four builds of one gyrus).
        for name in [*SUBJECTS[i % len(SUBJECTS):], *SUBJECTS[:i % len(SUBJECTS)]]:
            if name not in running or "status" in out[name]:
                continue
            try:
                rnd = {}
                for kind, r in running[name].items():
                    handshakes(ctx, r.port, r.pid, 1, args.clients)  # warm-up
                    rnd[f"handshakes_{kind}"] = handshakes(ctx, r.port, r.pid, args.duration, args.clients,
                                                           args.cpu_limit)
                r = running[name]["ecdsa"]
                rnd["keepalive"] = keepalive(ctx, r.port, r.pid, args)
                if args.ka_cpu_limit:
                    rnd["keepalive_capped"] = keepalive_capped(ctx, r.port, r.pid, args)
                for r in running[name].values():
                    if r.proc.poll() is not None:
                        raise SubjectFailed(f"exited with {r.proc.returncode} during the run")
                out[name]["rounds"].append(rnd)
                print(f"round {i + 1} {name:8} " + "  ".join(
                    f"{k}: {rnd[f'handshakes_{k}']['per_sec']:,.0f}/s" for k in KEYS) +
                    f"  keep-alive {rnd['keepalive']['requests_per_sec']:,.0f} req/s "
                    f"p99 {rnd['keepalive']['p99_us'] / 1000:.2f} ms", flush=True)
            except (measure.LoadFailed, SubjectFailed, subprocess.TimeoutExpired) as e:
                out[name] = {"status": "failed", "reason": str(e)}
    for name in SUBJECTS:
        r = out[name]
        if "status" in r:
            continue
        for kind in KEYS:
            hs = [x[f"handshakes_{kind}"] for x in r["rounds"]]
            r[f"handshakes_{kind}"] = {"per_sec": median_of(hs, lambda h: h["per_sec"])["per_sec"],
                                       "per_subject_cpu_sec": (median_of(hs, lambda h: h["per_subject_cpu_sec"])
                                                               or {}).get("per_subject_cpu_sec"),
                                       "subject_cpu_percent": median_of(hs, lambda h: h["per_sec"])
                                       ["subject_cpu_percent"],
                                       "rounds_per_sec": [h["per_sec"] for h in hs]}
        for key in ("keepalive", "keepalive_capped"):
            ks = [x[key] for x in r["rounds"] if key in x]
            if not ks:
                continue
            best = median_of(ks, lambda k: k["requests_per_sec"])
            r[key] = {**best, "p99_us": median_of(ks, lambda k: k["p99_us"])["p99_us"],
                      "rounds_requests_per_sec": [k["requests_per_sec"] for k in ks],
                      "rounds_p99_us": [k["p99_us"] for k in ks]}
    return out


def markdown(res, args):
    capped = [x[f"handshakes_{k}"].get("cpu_limit") for r in res.values() for x in r.get("rounds", []) for k in KEYS]
    cap = (f"while each subject is capped at {args.cpu_limit:g} of one CPU (a cgroup CPU quota, like a container's "
           f"`limits.cpu: {args.cpu_limit * 1000:g}m`)" if args.cpu_limit and capped and all(capped) else
           "with no CPU cap on the subject (none could be set here)")
    lines = ["", "## TLS termination", "",
             "Each proxy (one worker) terminates TLS, TLS 1.2–1.3 with the same suites and groups, and proxies to "
             "the plain-HTTP backend; each runs twice at once, once with an ECDSA P-256 certificate and once with "
             f"an RSA 2048 one. {args.rounds} rounds measure every subject in turn, the subjects taking turns at "
             "going first, and each figure is the median "
             "over the rounds (every round's value follows it). Handshakes: "
             f"{args.clients} parallel `openssl s_time -new` clients (full handshakes, no resumption) for "
             f"{args.duration} s on the load CPU, {cap}. The client side of a handshake costs about as much as the "
             "server side (more, for ECDSA: verifying costs more than signing), so one load CPU cannot saturate a "
             "whole server CPU: without a cap every proxy shows the clients' rate. With the cap the rate is the "
             "subject's, as for a sidecar under a CPU limit, and \"per subject CPU-second\" (rate ÷ the subject's "
             "CPU share) is its cost in another form. "
             f"Keep-alive: wrk over https (ECDSA), {args.connections} connections, {args.duration} s. HAProxy and "
             "nginx add the forwarding headers gyrus adds by default (X-Forwarded-For, X-Forwarded-Proto: https, a "
             "generated X-Request-ID, Via both ways), so every proxy does the same work per request.", "",
             "| subject | negotiated | ECDSA handshakes/s | per subject CPU-second | RSA handshakes/s | "
             "per subject CPU-second | keep-alive req/s | p50 | p99 | subject CPU |",
             "|---|---|---|---|---|---|---|---|---|---|"]

    def each(values, fmt):
        return " (" + ", ".join(fmt(v) for v in values) + ")" if len(values) > 1 else ""
    for name in SUBJECTS:
        r = res.get(name, {})
        if "keepalive" not in r:
            why = " ".join(r.get("reason", "?").split())[-200:].replace("|", "/")
            lines.append(f"| {name} | failed: {why} | | | | | | | | |")
            continue
        e, rsa, k, n = r["handshakes_ecdsa"], r["handshakes_rsa"], r["keepalive"], r["negotiated"]
        lines.append(f"| {name} | {n['protocol']} {n['cipher']} {n['group']} | {e['per_sec']:,.0f}"
                     f"{each(e['rounds_per_sec'], lambda v: f'{v:,.0f}')} | {e['per_subject_cpu_sec'] or 0:,.0f} | "
                     f"{rsa['per_sec']:,.0f}{each(rsa['rounds_per_sec'], lambda v: f'{v:,.0f}')} | "
                     f"{rsa['per_subject_cpu_sec'] or 0:,.0f} | "
                     f"{k['requests_per_sec']:,.0f}{each(k['rounds_requests_per_sec'], lambda v: f'{v:,.0f}')} | "
                     f"{k['p50_us'] / 1000:.2f} ms | {k['p99_us'] / 1000:.2f} ms"
                     f"{each(k['rounds_p99_us'], lambda v: f'{v / 1000:.1f}')} | {k['subject_cpu_percent']:.0f} % |")
    if any("keepalive_capped" in r for r in res.values()):
        lines += ["", f"Keep-alive again with each subject capped at {args.ka_cpu_limit:g} of one CPU (a cgroup CPU quota "
                      "over 10 ms periods): without a cap, wrk's own TLS work fills the load CPU first and every proxy "
                      "shows about wrk's rate; with it, the rate is what each proxy does with the same CPU.", "",
                  "| subject | keep-alive req/s, capped | p50 | p99 | subject CPU |", "|---|---|---|---|---|"]
        for name in SUBJECTS:
            k = res.get(name, {}).get("keepalive_capped")
            if k is None:
                continue
            lines.append(f"| {name} | {k['requests_per_sec']:,.0f}{each(k['rounds_requests_per_sec'], lambda v: f'{v:,.0f}')}"
                         f" | {k['p50_us'] / 1000:.2f} ms | {k['p99_us'] / 1000:.2f} ms"
                         f"{each(k['rounds_p99_us'], lambda v: f'{v / 1000:.1f}')} | {k['subject_cpu_percent']:.0f} % |")
    g, h = res.get("gyrus", {}), res.get("haproxy", {})
    if "keepalive" in g and "keepalive" in h:
        def q(a, b):
            return a / b if a and b else 0

        def paired(key):
            """Median over the rounds of gyrus's figure over HAProxy's in the same round: the two
            ran a minute apart, so a drift of this machine's speed cancels out."""
            ratios = [q(key(a), key(b)) for a, b in zip(g["rounds"], h["rounds"])]
            return statistics.median([x for x in ratios if x]) if any(ratios) else 0
        figures = (("ECDSA handshakes/s", lambda x: x["handshakes_ecdsa"]["per_sec"]),
                   ("ECDSA per subject CPU-second", lambda x: x["handshakes_ecdsa"]["per_subject_cpu_sec"]),
                   ("RSA handshakes/s", lambda x: x["handshakes_rsa"]["per_sec"]),
                   ("RSA per subject CPU-second", lambda x: x["handshakes_rsa"]["per_subject_cpu_sec"]),
                   ("keep-alive req/s", lambda x: x["keepalive"]["requests_per_sec"]),
                   ("keep-alive p99 (lower is better)", lambda x: x["keepalive"]["p99_us"]))
        if "keepalive_capped" in g and "keepalive_capped" in h:
            figures += (("keep-alive req/s, capped", lambda x: x["keepalive_capped"]["requests_per_sec"]),
                        ("keep-alive p99, capped (lower is better)", lambda x: x["keepalive_capped"]["p99_us"]))
        lines += ["", "gyrus / HAProxy (target: ≥ 1, p99 ≤ 1), as the ratio of the medians above and as the median of "
                      "the per-round ratios:", "", "| figure | ratio of medians | median per-round ratio |", "|---|---|---|"]
        for label, key in figures:  # the medians have the shape of one round
            lines.append(f"| {label} | {q(key(g), key(h)):.3f} | {paired(key):.3f} |")
    return "\n".join(lines) + "\n"


def main():
    ap = section.parser(__doc__, duration=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--clients", type=int, default=4, help="parallel s_time clients")
    ap.add_argument("--cpu-limit", type=float, default=0.2,
                    help="share of one CPU each subject may use while handshakes are measured (0: no cap)")
    ap.add_argument("--ka-cpu-limit", type=float, default=0.5,
                    help="share of one CPU for the capped keep-alive case (0: no such case)")
    args = ap.parse_args()
    res = section.run("tls", args, run, markdown, "tls",
                      {"certificates": [v[0] for v in KEYS.values()], "rounds": args.rounds, "tls13_suites": SUITES13, "tls12_ciphers": CIPHERS12,
                       "groups": GROUPS, "handshake_client": f"openssl s_time -new x{args.clients}"})
    if res is None:
        return 2
    for name, r in res.items():
        if "keepalive" in r:
            print(f"{name:8} {r['handshakes_ecdsa']['per_sec']:>8,.0f} ECDSA handshakes/s "
                  f"({r['handshakes_ecdsa']['per_subject_cpu_sec'] or 0:,.0f} per subject CPU-s)  "
                  f"{r['handshakes_rsa']['per_sec']:>8,.0f} RSA handshakes/s  "
                  f"{r['keepalive']['requests_per_sec']:>9,.0f} req/s keep-alive p99 "
                  f"{r['keepalive']['p99_us'] / 1000:.2f} ms")
        else:
            print(f"{name:8} {r.get('reason', '')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
