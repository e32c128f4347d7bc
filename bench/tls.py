#!/usr/bin/python3
"""TLS termination: gyrus vs HAProxy vs nginx with the same certificate and ciphers.

    bench/tls.py --gyrus ./build/gyrus        (run by `make bench` after bench/run.py)

Each subject (one worker, pinned to the subject CPU) terminates TLS with the same ECDSA P-256
certificate and proxies to the same plain-HTTP nginx backend. Two figures per subject:

- new TLS handshakes per second: `openssl s_time -new` (full handshakes, no resumption), several
  clients in parallel on the load CPU, for a fixed time. An ECDSA handshake costs the client
  about as much as the server (the client verifies a signature, the server makes one), so on
  a two-CPU machine the client side is the bottleneck and the raw rates come out close; the
  comparable figure is handshakes per second of subject CPU (rate / subject CPU share).
- requests per second over TLS keep-alive: wrk against https://, 64 connections.

Appends a section to docs/BENCHMARKS.md and a "tls" key to bench/results.json.
"""

import os
import re
import subprocess
import sys
import time

import measure
import procs
import section
from subjects import (BODY, Context, Running, SubjectFailed, _nginx_common, _start_nginx, _write, free_port,
                      gyrus_argv, http_get, start_backend, wait_until)

# The same choices everywhere: OpenSSL's default TLS 1.3 suite order (gyrus has no setting for
# TLS 1.3 suites; it uses OpenSSL's), ECDHE-ECDSA AES-GCM / ChaCha20 for TLS 1.2, server preference,
# OpenSSL's default groups (X25519 first).
SUITES13 = "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"
CIPHERS12 = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305"
GROUPS = "X25519:P-256:X448:P-521:P-384"


def make_certificate(tmp):
    def ossl(*a):
        subprocess.run(["openssl", *a], check=True, capture_output=True, timeout=60)
    ca_key, ca, key, csr, cert = (f"{tmp}/{n}" for n in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem"))
    ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", ca_key,
         "-out", ca, "-days", "30", "-subj", "/CN=bench CA")
    ossl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
         "-out", csr, "-subj", "/CN=localhost")
    ext = _write(f"{tmp}/server.ext", "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    ossl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert, "-days", "30",
         "-extfile", ext)
    with open(cert) as c, open(key) as k:
        pem = _write(f"{tmp}/server-haproxy.pem", c.read() + k.read())
    return {"cert": cert, "key": key, "pem": pem, "ca": ca}


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
    default_backend backend
backend backend
    server backend 127.0.0.1:{backend_port}
"""


def nginx_config(tmp, port, backend_port, crt, nofile):
    return _nginx_common(tmp, "nginx-tls", nofile) + f"""\
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
        }}
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
        conf = _write(f"{ctx.tmp}/mesh-tls.yaml", gyrus_config(port, ctx.backend_port, crt))
        log = f"{ctx.tmp}/gyrus-tls.log"
        proc = ctx.registry.start(gyrus_argv(os.path.abspath(args.gyrus), conf, admin), cpu=measure.SUBJECT_CPU,
                                  log_path=log)
        running = Running("gyrus", proc, port, [log])
        wait_until(running, lambda: http_get(admin, "/ready")[0] == 200, "GET /ready on admin")
    elif name == "haproxy":
        conf = _write(f"{ctx.tmp}/haproxy-tls.cfg", haproxy_config(port, ctx.backend_port, crt, ctx.nofile))
        log = f"{ctx.tmp}/haproxy-tls.log"
        proc = ctx.registry.start(["haproxy", "-db", "-f", conf], cpu=measure.SUBJECT_CPU, log_path=log)
        running = Running("haproxy", proc, port, [log])
    else:
        os.makedirs(f"{ctx.tmp}/nginx-tls-temp", exist_ok=True)
        running = _start_nginx(ctx, "nginx-tls", nginx_config(ctx.tmp, port, ctx.backend_port, crt, ctx.nofile),
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

def handshakes(ctx, port, pid, seconds, clients):
    """Full handshakes per second from `clients` parallel `openssl s_time -new` runs."""
    argv = ["openssl", "s_time", "-connect", f"127.0.0.1:{port}", "-new", "-time", str(seconds)]
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
    return {"handshakes": total, "seconds": round(wall, 2), "per_sec": round(rate, 1),
            "subject_cpu_percent": cpu.get("subject"), "per_subject_cpu_sec": round(rate / share, 1) if share else None,
            "cpu": cpu}


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


def run(args, tmp, registry, nofile):
    ctx = Context(tmp, registry, nofile)
    crt = make_certificate(tmp)
    backend = start_backend(ctx, measure.LOAD_CPU)
    out = {}
    for name in ("gyrus", "haproxy", "nginx"):
        try:
            r = start_subject(ctx, name, args, crt)
        except SubjectFailed as e:
            out[name] = {"status": "failed", "reason": str(e)}
            continue
        try:
            res = {"negotiated": negotiated(r.port)}
            handshakes(ctx, r.port, r.pid, 1, args.clients)  # warm-up
            res["handshakes"] = handshakes(ctx, r.port, r.pid, args.duration, args.clients)
            res["keepalive"] = keepalive(ctx, r.port, r.pid, args)
            if r.proc.poll() is not None:
                raise SubjectFailed(f"exited with {r.proc.returncode} during the run")
            out[name] = res
        except (measure.LoadFailed, SubjectFailed, subprocess.TimeoutExpired) as e:
            out[name] = {"status": "failed", "reason": str(e)}
        finally:
            registry.stop(r.proc)
    registry.stop(backend.proc)
    return out


def markdown(res, args):
    lines = ["", "## TLS termination", "",
             "Each proxy (one worker) terminates TLS with the same ECDSA P-256 certificate, TLS 1.2–1.3, the "
             "same suites and groups, and proxies to the plain-HTTP backend. Handshakes: "
             f"{args.clients} parallel `openssl s_time -new` clients (full handshakes, no resumption) for "
             f"{args.duration} s on the load CPU. The client side of an ECDSA handshake costs about as much "
             "as the server side, so with one load CPU the raw rate is bounded by the clients; "
             "\"per subject CPU-second\" (rate ÷ the subject's CPU share) is the comparable cost figure. "
             f"Keep-alive: wrk over https, {args.connections} connections, {args.duration} s.", "",
             "| subject | negotiated | handshakes/s | subject CPU | handshakes per subject CPU-second | "
             "keep-alive req/s | p50 | p99 | subject CPU |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name in ("gyrus", "haproxy", "nginx"):
        r = res.get(name, {})
        if "handshakes" not in r:
            why = " ".join(r.get("reason", "?").split())[-200:].replace("|", "/")
            lines.append(f"| {name} | failed: {why} | | | | | | | |")
            continue
        h, k, n = r["handshakes"], r["keepalive"], r["negotiated"]
        lines.append(f"| {name} | {n['protocol']} {n['cipher']} {n['group']} | {h['per_sec']:,.0f} | "
                     f"{h['subject_cpu_percent']:.0f} % | {h['per_subject_cpu_sec'] or 0:,.0f} | "
                     f"{k['requests_per_sec']:,.0f} | {k['p50_us'] / 1000:.2f} ms | {k['p99_us'] / 1000:.2f} ms | "
                     f"{k['subject_cpu_percent']:.0f} % |")
    g, h = res.get("gyrus", {}), res.get("haproxy", {})
    if "handshakes" in g and "handshakes" in h:
        gh, hh = g["handshakes"], h["handshakes"]
        ratio = (gh["per_subject_cpu_sec"] or 0) / hh["per_subject_cpu_sec"] if hh["per_subject_cpu_sec"] else 0
        lines += ["", f"gyrus / HAProxy: handshakes/s {gh['per_sec'] / hh['per_sec']:.3f}, handshakes per subject "
                      f"CPU-second {ratio:.3f}, keep-alive req/s "
                      f"{g['keepalive']['requests_per_sec'] / h['keepalive']['requests_per_sec']:.3f} "
                      "(target: ≥ 1)."]
    return "\n".join(lines) + "\n"


def main():
    ap = section.parser(__doc__)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--clients", type=int, default=4, help="parallel s_time clients")
    args = ap.parse_args()
    res = section.run("tls", args, run, markdown, "tls",
                      {"certificate": "ECDSA P-256", "tls13_suites": SUITES13, "tls12_ciphers": CIPHERS12,
                       "groups": GROUPS, "handshake_client": f"openssl s_time -new x{args.clients}"})
    if res is None:
        return 2
    for name, r in res.items():
        if "handshakes" in r:
            print(f"{name:8} {r['handshakes']['per_sec']:>8,.0f} handshakes/s "
                  f"({r['handshakes']['per_subject_cpu_sec'] or 0:,.0f} per subject CPU-s)  "
                  f"{r['keepalive']['requests_per_sec']:>9,.0f} req/s keep-alive")
        else:
            print(f"{name:8} {r.get('reason', '')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
