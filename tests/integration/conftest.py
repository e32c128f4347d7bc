"""Shared fixtures: the real gyrus binary, real backends, free loopback ports."""
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GYRUS = os.environ.get("GYRUS_BIN") or os.path.join(ROOT, "build", "gyrus")


_handed_out = set()


def free_port():
    """A port nothing listens on now and that this test run has not handed out before: two calls
    before anything binds (a test's listener, then gyrus's admin port) could otherwise get the
    same ephemeral port (seen: "admin: cannot listen ... Address already in use")."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("no fresh free port in 100 tries")


def wait_for(pred, timeout=10.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            if pred():
                return
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}" + (f": {last}" if last else ""))


def http_get(url, timeout=5, headers=None):
    """Returns (status, headers, body) without raising on HTTP errors."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def raw_request(port, data, timeout=3.0, host="127.0.0.1"):
    """Sends raw bytes and returns everything read until close or timeout."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        with contextlib.suppress(socket.timeout, ConnectionResetError):
            while True:
                b = s.recv(65536)
                if not b:
                    break
                out += b
        return out


def status_of(response):
    line = response.split(b"\r\n", 1)[0]
    parts = line.split(b" ")
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


class Process:
    def __init__(self, args, name, env=None):
        self.name = name
        self.sanitizer_report = ""
        self.log_path = tempfile.mktemp(prefix=f"gyrus-{name}-", suffix=".log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=env)

    def output(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def alive(self):
        return self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=20):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.log.closed:
            self.sanitizer_report = sanitizer_findings(self.output())
            self.log.close()
        return self.proc.returncode

    def check_clean_exit(self):
        """Fails the test if the process did not exit cleanly or a sanitizer reported anything."""
        rc = self.stop()
        assert not self.sanitizer_report, f"{self.name}: sanitizer report:\n{self.sanitizer_report}"
        assert rc in (0, -9), f"{self.name} exited with {rc}:\n{self.output()[-3000:]}"


SANITIZER_MARKERS = ("runtime error:", "ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "SUMMARY: UndefinedBehavior")


def sanitizer_findings(text):
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if any(m in line for m in SANITIZER_MARKERS):
            return "\n".join(lines[max(0, i - 2):i + 40])
    return ""


class Gyrus(Process):
    """`gyrus proxy` serving one proxy of a mesh file it owns (self.mesh_path)."""

    def __init__(self, objects, name, workers=1, extra=(), wait=True, fmt=os.environ.get("GYRUS_TEST_MESH_FORMAT", "yaml"),
                 env=None):
        self.dir = tempfile.mkdtemp(prefix="gyrus-test-")
        self.mesh_path = os.path.join(self.dir, "mesh." + fmt)
        self.fmt = fmt
        self.write_mesh(objects)
        self.admin_port = free_port()
        self.access_log = os.path.join(self.dir, "access.log")
        args = [GYRUS, "proxy", "--config", self.mesh_path, "--name", name, "--workers", str(workers),
                "--admin", f"127.0.0.1:{self.admin_port}", "--access-log", self.access_log,
                "--watch-interval", "200ms", "--drain-time", "5s", *extra]
        super().__init__(args, f"proxy-{name}", env={**os.environ, **env} if env else None)
        if wait:
            self.wait_ready()

    def write_mesh(self, objects):
        text = json.dumps(objects, indent=1) if self.fmt == "json" else to_yaml(objects)
        tmp = self.mesh_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, self.mesh_path)

    def admin(self, path):
        return http_get(f"http://127.0.0.1:{self.admin_port}{path}")

    def wait_ready(self, timeout=15):
        def ready():
            if not self.alive():
                raise AssertionError(f"gyrus exited ({self.proc.returncode}):\n{self.output()}")
            return self.admin("/ready")[0] == 200
        wait_for(ready, timeout, what="gyrus /ready")

    def metric(self, name, **labels):
        """Sum of a Prometheus sample's values matching the labels."""
        body = self.admin("/stats/prometheus")[2].decode()
        total, found = 0.0, False
        for line in body.splitlines():
            if line.startswith("#") or not line.startswith(name):
                continue
            head, _, value = line.rpartition(" ")
            metric, _, rest = head.partition("{")
            if metric != name:
                continue
            lab = dict(kv.split("=", 1) for kv in rest.rstrip("}").split(",") if kv)
            lab = {k: v.strip('"') for k, v in lab.items()}
            if all(lab.get(k) == str(v) for k, v in labels.items()):
                total += float(value)
                found = True
        if not found:
            raise KeyError(f"{name}{labels} not in /stats/prometheus")
        return total

    def access_entries(self):
        try:
            with open(self.access_log) as f:
                return [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def generation(self):
        return self.metric("gyrus_config_generation")

    def stop(self, timeout=20):
        rc = super().stop(timeout)
        shutil.rmtree(self.dir, ignore_errors=True)
        return rc


def to_yaml(objects):
    """Mesh objects as a YAML list of flow mappings (JSON is valid YAML flow syntax)."""
    return "".join("- " + json.dumps(o) + "\n" for o in objects)


def simple_mesh(proxy_port, backends, name="test", route_extra=None, cluster_extra=None, listener_extra=None):
    """One listener on proxy_port, domain "*", route "/" to a cluster of `backends` ports."""
    return [
        {"kind": "listener", "listener_key": "ingress", "name": "ingress", "ip": "127.0.0.1", "port": proxy_port,
         "protocol": "http_auto", "domain_keys": ["ingress"], **(listener_extra or {})},
        {"kind": "domain", "domain_key": "ingress", "name": "*", "port": proxy_port},
        {"kind": "proxy", "proxy_key": name, "name": name, "listener_keys": ["ingress"]},
        {"kind": "cluster", "cluster_key": "backend", "name": "backend",
         "instances": [{"host": "127.0.0.1", "port": p} for p in backends], **(cluster_extra or {})},
        {"kind": "route", "route_key": "root", "domain_key": "ingress",
         "route_match": {"path": "/", "match_type": "prefix"},
         "rules": [{"constraints": {"light": [{"cluster_key": "backend", "weight": 1}]}}], **(route_extra or {})},
    ]


class DemoService(Process):
    def __init__(self, name="demo", port=None):
        self.port = port or free_port()
        super().__init__([GYRUS, "demo-service", "--listen", f"127.0.0.1:{self.port}", "--name", name], f"demo-{name}")
        wait_for(lambda: http_get(f"http://127.0.0.1:{self.port}/healthz")[0] == 200, what="demo service")


class Nginx(Process):
    """A real nginx serving a small body and a body sink, one worker, in a temp prefix; with
    http2, HTTP/2 without TLS (prior knowledge); keepalive_requests ends each connection after
    that many requests (for HTTP/2 by GOAWAY)."""

    def __init__(self, port=None, http2=False, keepalive_requests=1000000):
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="gyrus-nginx-")
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""
daemon off;
worker_processes 1;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {self.dir}/body; proxy_temp_path {self.dir}/proxy;
  fastcgi_temp_path {self.dir}/fcgi; uwsgi_temp_path {self.dir}/uwsgi; scgi_temp_path {self.dir}/scgi;
  keepalive_requests {keepalive_requests};
  server {{
    listen 127.0.0.1:{self.port}{" http2" if http2 else ""};
    client_max_body_size 0;
    location / {{ return 200 "hello from nginx\\n"; }}
    location /status {{ stub_status; }}
  }}
}}
""")
        super().__init__(["nginx", "-p", self.dir, "-c", conf], "nginx")
        if http2:
            wait_for(lambda: subprocess.run(["curl", "-s", "-o", "/dev/null", "--http2-prior-knowledge",
                                             f"http://127.0.0.1:{self.port}/"], timeout=5).returncode == 0,
                     what="nginx (h2c)")
        else:
            wait_for(lambda: http_get(f"http://127.0.0.1:{self.port}/")[0] == 200, what="nginx")

    def stop(self, timeout=20):
        rc = super().stop(timeout)
        shutil.rmtree(self.dir, ignore_errors=True)
        return rc


@pytest.fixture
def demo():
    d = DemoService()
    yield d
    d.check_clean_exit()


@pytest.fixture
def nginx():
    n = Nginx()
    yield n
    n.stop()


@pytest.fixture
def gyrus_factory():
    """Starts `gyrus proxy`; at teardown each must exit 0 on SIGTERM with no sanitizer report."""
    started = []

    def make(*args, **kwargs):
        g = Gyrus(*args, **kwargs)
        started.append(g)
        return g
    yield make
    for g in started:
        g.check_clean_exit()


@pytest.fixture
def backend_factory():
    from backend import Backend
    started = []

    def make(name="backend", port=0):
        b = Backend(name, port)
        started.append(b)
        return b
    yield make
    for b in started:
        b.stop()
