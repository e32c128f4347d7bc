"""The backend and the subjects under test: their configs, how to start them, readiness.

Each subject is one reverse proxy with one worker in front of the same nginx backend.
The config functions also render the report's appendix (with placeholder ports), so the
printed configs are exactly the ones used.
"""

import http.client
import os
import socket
import time

from procs import tail

BODY = (b"gyrus bench body " * 4)[:64]  # what the backend returns: 64 bytes
READY_TIMEOUT = 10.0


class SubjectFailed(Exception):
    """A subject could not be started or does not proxy correctly."""


class Running:
    """A started process: its Popen, the port to send requests to, its log files."""

    def __init__(self, name, proc, port, logs):
        self.name = name
        self.proc = proc
        self.pid = proc.pid  # taskset execs, so this is the subject's own pid
        self.port = port
        self.logs = logs


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


# ---------------------------------------------------------------- configs

def _nginx_common(tmp, tag, nofile):
    """nginx main/events/http preamble that keeps every path inside tmp."""
    worker_conns = max(1024, nofile - 64)
    return f"""\
worker_processes 1;
worker_rlimit_nofile {nofile};
daemon off;
master_process on;
pid {tmp}/{tag}.pid;
lock_file {tmp}/{tag}.lock;
error_log {tmp}/{tag}.error.log warn;

events {{
    worker_connections {worker_conns};
    multi_accept on;
}}

http {{
    access_log off;
    gzip off;
    server_tokens off;
    keepalive_timeout 300s;
    keepalive_requests 1000000;
    client_body_temp_path {tmp}/{tag}-temp/body;
    proxy_temp_path {tmp}/{tag}-temp/proxy;
    fastcgi_temp_path {tmp}/{tag}-temp/fastcgi;
    uwsgi_temp_path {tmp}/{tag}-temp/uwsgi;
    scgi_temp_path {tmp}/{tag}-temp/scgi;
"""


def backend_config(tmp, port, nofile):
    return _nginx_common(tmp, "backend", nofile) + f"""\
    default_type text/plain;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            return 200 "{BODY.decode()}";
        }}
    }}
}}
"""


def nginx_proxy_config(tmp, port, backend_port, nofile):
    return _nginx_common(tmp, "nginx", nofile) + f"""\
    upstream backend {{
        server 127.0.0.1:{backend_port};
        keepalive 1024;
        keepalive_requests 1000000;
        keepalive_timeout 300s;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
{NGINX_FORWARDING}        }}
    }}
}}
"""


# nginx location lines adding the forwarding headers gyrus adds by default ($scheme is https on a
# TLS server), so that every proxy does the same work.
NGINX_FORWARDING = """\
            # the forwarding headers gyrus adds by default, so that every proxy does the same work
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Request-ID $request_id;
            proxy_set_header Via "1.1 nginx";
            add_header Via "1.1 nginx";
"""


def haproxy_forwarding(via_version, proto="http", request_id=True):
    """HAProxy frontend lines adding the forwarding headers gyrus adds by default, so that every
    proxy does the same work (without X-Request-ID where a compared proxy cannot make one)."""
    rid = "    unique-id-format %[uuid()]\n    unique-id-header X-Request-ID\n" if request_id else ""
    return f"""\
    # the forwarding headers gyrus adds, so that every proxy does the same work
    option forwardfor
    http-request set-header X-Forwarded-Proto {proto}
{rid}    http-request add-header Via "{via_version} haproxy"
    http-response add-header Via "{via_version} haproxy"
"""


def haproxy_config(port, backend_port, nofile):
    maxconn = max(1000, (nofile - 100) // 2)  # each proxied connection needs 2 fds
    return f"""\
global
    nbthread 1
    maxconn {maxconn}
    # no 'log' line: no logging at all

defaults
    mode http
    option http-keep-alive
    http-reuse always
    maxconn {maxconn}
    backlog 4096
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-keep-alive 300s
    timeout http-request 300s

frontend ingress
    bind 127.0.0.1:{port}
{haproxy_forwarding("1.1")}    default_backend backend

backend backend
    server backend 127.0.0.1:{backend_port}
"""


def gyrus_config(port, backend_port):
    return f"""\
- kind: listener
  listener_key: ingress
  name: ingress
  ip: 127.0.0.1
  port: {port}
  protocol: http_auto
  domain_keys: [ingress]
- kind: domain
  domain_key: ingress
  name: "*"
  port: {port}
- kind: proxy
  proxy_key: bench
  name: bench
  listener_keys: [ingress]
  domain_keys: [ingress]
- kind: cluster
  cluster_key: backend
  name: backend
  instances: [{{host: 127.0.0.1, port: {backend_port}}}]
- kind: shared_rules
  shared_rules_key: backend
  default: {{light: [{{cluster_key: backend, weight: 1}}]}}
- kind: route
  route_key: root
  domain_key: ingress
  route_match: {{path: /, match_type: prefix}}
  shared_rules_key: backend
"""


# ---------------------------------------------------------------- readiness

def http_get(port, path="/", timeout=2.0):
    """One GET on a fresh connection: (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": "bench"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _check_alive(running):
    code = running.proc.poll()
    if code is not None:
        logs = "\n".join(t for t in (tail(p) for p in running.logs) if t)
        raise SubjectFailed(f"exited with code {code} during startup; log tail:\n{logs}")


def wait_until(running, probe, what, timeout=READY_TIMEOUT):
    """Call probe() until it returns True; fail on timeout or if the process exits."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        _check_alive(running)
        try:
            if probe():
                return
            last = "probe returned not-ready"
        except SubjectFailed as e:  # answers, but wrongly: may still be starting
            last = str(e)
        except (OSError, http.client.HTTPException) as e:
            last = f"{type(e).__name__}: {e}"
        time.sleep(0.05)
    raise SubjectFailed(f"not ready after {timeout:.0f}s ({what}): {last}")


def proxies_correctly(port):
    """True when a GET through `port` returns the backend's exact 200 body."""
    status, body = http_get(port)
    if status != 200 or body != BODY:
        raise SubjectFailed(f"GET / through the proxy returned {status} with "
                            f"{len(body)} bytes, expected 200 with the backend's "
                            f"{len(BODY)}-byte body")
    return True


# ---------------------------------------------------------------- starting

class Context:
    """What every subject needs: temp dir, process registry, fd limit, backend port."""

    def __init__(self, tmp, registry, nofile, backend_port=None):
        self.tmp = tmp
        self.registry = registry
        self.nofile = nofile
        self.backend_port = backend_port


def _start_nginx(ctx, tag, config_text, port, cpu):
    os.makedirs(f"{ctx.tmp}/{tag}-temp", exist_ok=True)
    conf = _write(f"{ctx.tmp}/{tag}.conf", config_text)
    log, error_log = f"{ctx.tmp}/{tag}.stderr.log", f"{ctx.tmp}/{tag}.error.log"
    argv = ["nginx", "-p", ctx.tmp, "-e", error_log, "-c", conf]
    proc = ctx.registry.start(argv, cpu=cpu, log_path=log)
    return Running(tag, proc, port, [log, error_log])


def start_backend(ctx, cpu):
    port = free_port()
    running = _start_nginx(ctx, "backend", backend_config(ctx.tmp, port, ctx.nofile), port, cpu)
    wait_until(running, lambda: http_get(port) == (200, BODY), "GET / on the backend")
    ctx.backend_port = port
    return running


def start_nginx_proxy(ctx, cpu):
    port = free_port()
    text = nginx_proxy_config(ctx.tmp, port, ctx.backend_port, ctx.nofile)
    running = _start_nginx(ctx, "nginx", text, port, cpu)
    wait_until(running, lambda: proxies_correctly(port), "GET / through nginx")
    return running


def start_haproxy(ctx, cpu):
    port = free_port()
    text = haproxy_config(port, ctx.backend_port, ctx.nofile)
    conf = _write(f"{ctx.tmp}/haproxy.cfg", text)
    log = f"{ctx.tmp}/haproxy.stderr.log"
    proc = ctx.registry.start(["haproxy", "-db", "-f", conf], cpu=cpu, log_path=log)
    running = Running("haproxy", proc, port, [log])
    wait_until(running, lambda: proxies_correctly(port), "GET / through haproxy")
    return running


def gyrus_argv(binary, conf, admin_port):
    return [binary, "proxy", "--config", conf, "--name", "bench", "--workers", "1",
            "--admin", f"127.0.0.1:{admin_port}"]


def start_gyrus(ctx, cpu, binary):
    if not binary:
        raise SubjectFailed("no --gyrus binary given")
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        raise SubjectFailed(f"binary {binary!r} not found or not executable")
    port, admin = free_port(), free_port()
    text = gyrus_config(port, ctx.backend_port)
    conf = _write(f"{ctx.tmp}/mesh.yaml", text)
    log = f"{ctx.tmp}/gyrus.stderr.log"
    proc = ctx.registry.start(gyrus_argv(os.path.abspath(binary), conf, admin),
                              cpu=cpu, log_path=log)
    running = Running("gyrus", proc, port, [log])
    wait_until(running, lambda: http_get(admin, "/ready")[0] == 200, "GET /ready on admin")
    wait_until(running, lambda: proxies_correctly(port), "GET / through gyrus")
    return running


STARTERS = {
    "gyrus": lambda ctx, cpu, args: start_gyrus(ctx, cpu, args.gyrus),
    "haproxy": lambda ctx, cpu, args: start_haproxy(ctx, cpu),
    "nginx": lambda ctx, cpu, args: start_nginx_proxy(ctx, cpu),
}
