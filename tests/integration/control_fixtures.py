"""Fixtures for the control plane tests: `gyrus control` on SQLite or etcd, a real etcd server
(/usr/bin/etcd, temp data dir, free ports), an API helper and a long-poll xds client."""
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request

import pytest

from conftest import GYRUS, Process, free_port, wait_for

ETCD = "/usr/bin/etcd"


def http(method, url, body=None, timeout=10, ca=None):
    """Returns (status, parsed JSON or raw text or None). ca: PEM trust anchors for https://."""
    data = None
    if body is not None:
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        data = data.encode() if isinstance(data, str) else data
    req = urllib.request.Request(url, data=data, method=method)
    try:
        ctx = ssl.create_default_context(cafile=ca) if ca else None
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    if not raw:
        return status, None
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode("utf-8", "replace")


class Etcd(Process):
    """A real single-member etcd with a temporary data dir on free loopback ports."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="gyrus-etcd-")
        self.port = free_port()
        peer = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__([ETCD, "--name", "test", "--data-dir", self.dir,
                          "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
                          "--listen-peer-urls", f"http://127.0.0.1:{peer}",
                          "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
                          "--initial-cluster", f"test=http://127.0.0.1:{peer}",
                          "--max-txn-ops", "100000", "--max-request-bytes", str(64 << 20),
                          "--log-level", "warn"], "etcd")
        wait_for(lambda: http("GET", self.url + "/health", timeout=2)[0] == 200, 20, what="etcd /health")

    def stop(self, timeout=20):
        rc = super().stop(timeout)
        shutil.rmtree(self.dir, ignore_errors=True)
        return rc


class Control(Process):
    """`gyrus control` on a free port; SQLite in its own temp dir unless etcd is given."""

    def __init__(self, data_dir=None, etcd=None, prefix="/gyrus", extra=(), wait=True, env=None, tls=None):
        """tls: (certificate file, key file, CA file): the API over HTTPS, checked against the CA;
        or "auto": --tls-auto, checked against the mesh CA's root in the data directory."""
        self.own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="gyrus-control-")
        self.port = free_port()
        self.ca = os.path.join(self.data_dir, "ca", "root.crt") if tls == "auto" else tls[2] if tls else None
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        args = [GYRUS, "control", "--listen", f"127.0.0.1:{self.port}", "--data-dir", self.data_dir,
                "--drain-time", "3s", *extra]
        if tls == "auto":
            args += ["--tls-auto"]
        elif tls:
            args += ["--tls-cert", tls[0], "--tls-key", tls[1]]
        if etcd is not None:
            args += ["--store", "etcd", "--etcd-endpoints", etcd.url, "--etcd-prefix", prefix]
        super().__init__(args, "control", env=env)
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout=15):
        def ready():
            if not self.alive():
                raise AssertionError(f"gyrus control exited ({self.proc.returncode}):\n{self.output()}")
            return http("GET", self.url + "/ready", timeout=2, ca=self.ca)[0] == 200
        wait_for(ready, timeout, what="gyrus control /ready")

    def api(self, method, path, body=None, timeout=10):
        return http(method, self.url + path, body, timeout, ca=self.ca)

    def ok(self, method, path, body=None):
        status, out = self.api(method, path, body)
        assert 200 <= status < 300, f"{method} {path}: {status} {out}"
        return out["result"]

    def apply(self, objects, prune=False):
        return self.ok("POST", "/v1.0/apply" + ("?prune=true" if prune else ""), objects)

    def status(self):
        return self.ok("GET", "/v1.0/status")

    def metric(self, name, **labels):
        text = self.api("GET", "/metrics")[1]
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            head, _, value = line.rpartition(" ")
            metric, _, rest = head.partition("{")
            lab = dict(kv.split("=", 1) for kv in rest.rstrip("}").split(",") if kv)
            lab = {k: v.strip('"') for k, v in lab.items()}
            if metric == name and all(lab.get(k) == str(v) for k, v in labels.items()):
                return float(value)
        raise KeyError(f"{name}{labels} not in /metrics")

    def stop(self, timeout=20):
        rc = super().stop(timeout)
        if self.own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        return rc


class Poll:
    """One xds long-poll, run in a thread so that a test can change the mesh meanwhile."""

    def __init__(self, control, name, version="", wait=30, zone="", node="test-node", status="", error="",
                 timeout=None):
        q = {"zone": zone, "node": node, "version": version, "wait": str(wait)}
        if status:
            q["status"] = status
        if error:
            q["error"] = error
        self.url = f"{control.url}/v1.0/xds/{urllib.parse.quote(name, safe='')}?{urllib.parse.urlencode(q)}"
        self.timeout = timeout if timeout is not None else wait + 10
        self.result = None
        self.started = time.monotonic()
        self.elapsed = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.result = http("GET", self.url, timeout=self.timeout)
        self.elapsed = time.monotonic() - self.started

    def done(self):
        return not self.thread.is_alive()

    def wait(self, timeout=None):
        self.thread.join(timeout if timeout is not None else self.timeout + 5)
        assert not self.thread.is_alive(), "poll did not finish"
        return self.result


def poll(control, name, version="", wait=0, **kw):
    """A poll answered right away (version differs, or wait=0)."""
    return Poll(control, name, version, wait, **kw).wait()


def view_objects(body):
    return {(o["kind"], o[o["kind"] + "_key"]) for o in body["objects"]}


def run_cli(*args, env=None, timeout=30, input=None):
    return subprocess.run([GYRUS, *args], capture_output=True, timeout=timeout, text=True, env=env, input=input)


def cli_env(control, **extra):
    env = dict(os.environ)
    env["GYRUS_CONTROL"] = control.url
    env.update(extra)
    return env


@pytest.fixture
def control_factory():
    """Starts `gyrus control`; at teardown each must exit 0 on SIGTERM with no sanitizer report."""
    started = []

    def make(*args, **kwargs):
        c = Control(*args, **kwargs)
        started.append(c)
        return c
    yield make
    for c in started:
        c.check_clean_exit()


@pytest.fixture
def control(control_factory):
    return control_factory()


@pytest.fixture
def etcd():
    if not os.access(ETCD, os.X_OK):
        pytest.skip("etcd-server is not installed (scripts/install-deps installs it)")
    e = Etcd()
    yield e
    e.stop()


def small_mesh(prefix="", port=10808, cluster_port=8080, zone="zone-1"):
    """A zone, a proxy with a listener, domain and route to a cluster via shared rules."""
    p = prefix
    return [
        {"kind": "zone", "zone_key": zone, "name": zone},
        {"kind": "cluster", "cluster_key": f"{p}svc", "name": f"{p}svc", "zone_key": zone,
         "instances": [{"host": "127.0.0.1", "port": cluster_port}]},
        {"kind": "shared_rules", "shared_rules_key": f"{p}svc-rules", "zone_key": zone,
         "default": {"light": [{"cluster_key": f"{p}svc", "weight": 1}]}},
        {"kind": "domain", "domain_key": f"{p}ingress", "name": "*", "port": port, "zone_key": zone},
        {"kind": "listener", "listener_key": f"{p}ingress", "name": f"{p}ingress", "ip": "127.0.0.1", "port": port,
         "protocol": "http_auto", "domain_keys": [f"{p}ingress"], "zone_key": zone},
        {"kind": "route", "route_key": f"{p}root", "domain_key": f"{p}ingress", "zone_key": zone,
         "route_match": {"path": "/", "match_type": "prefix"}, "shared_rules_key": f"{p}svc-rules"},
        {"kind": "proxy", "proxy_key": f"{p}proxy", "name": f"{p}svc", "zone_key": zone,
         "listener_keys": [f"{p}ingress"], "domain_keys": [f"{p}ingress"]},
    ]


def to_yaml_file(path, objects):
    """Writes a mesh as YAML (flow mappings, one per item); returns the path as a string."""
    with open(path, "w") as f:
        f.write("".join("- " + json.dumps(o) + "\n" for o in objects))
    return str(path)
